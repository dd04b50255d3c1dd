"""Bad input never crashes nemod, never blocks, never loses the source: each case gets a
clear one-line error or a correct result. (Part of the reliability suite.)"""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from nemod import config as config_module
from nemod.app import build_backend
from nemod.errors import JobError, PermanentJobError
from nemod.media import ffmpeg
from nemod.pipeline import JobOutcome, choose_rule, run_job
from nemod.samples import make_clip

EDIT = os.environ.get("NEMOD_BAD_INPUT_EDIT", "export 720p MP4")


@pytest.fixture
def project(tmp_path: Path) -> config_module.Config:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "nemod.yaml").write_text(textwrap.dedent(f"""\
        watch:
          - path: ./inbox
            output: ./outbox
        rules:
          - name: any
            edit: "{EDIT}"
        """))
    return config_module.load(tmp_path / "nemod.yaml")


def process(config: config_module.Config, source: Path) -> JobOutcome:
    rule = choose_rule(config, source, config.watches[0])
    return run_job(config, build_backend(config), source, config.watches[0].output,
                   job_id="t", rule=rule)


def snapshot(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def assert_refused(config: config_module.Config, source: Path, expected: str) -> None:
    before = snapshot(source)
    started = time.monotonic()
    with pytest.raises(PermanentJobError) as caught:
        process(config, source)
    message = str(caught.value)
    assert expected in message, message
    assert "\n" not in message.strip()
    assert time.monotonic() - started < 60
    assert snapshot(source) == before, "the source must be left exactly as it was"
    output = config.watches[0].output
    assert not output.exists() or not [p for p in output.rglob("*") if p.is_file()]


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "zero bytes": (lambda d: write_bytes(d / "empty.mp4", b""), "is empty (0 bytes)"),
    "text renamed .mp4": (lambda d: write_bytes(d / "notes.mp4", b"hello, not a video\n" * 20),
                          "is not a readable video or audio file"),
    "random bytes": (lambda d: write_bytes(d / "noise.mov", os.urandom(50_000)),
                     "is not a readable video or audio file"),
    "unaccepted type": (lambda d: write_bytes(d / "doc.pdf", b"%PDF-1.4"), "not an accepted type"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_unusable_files_are_refused_in_one_line(project: config_module.Config, case: str) -> None:
    make, expected = CASES[case]
    assert_refused(project, make(project.watches[0].path), expected)


def test_truncated_mp4(project: config_module.Config) -> None:
    good = make_clip(project.watches[0].path / "whole.mp4", width=320, height=240, seconds=2)
    data = good.read_bytes()
    good.unlink()
    # +faststart puts the index first, so cutting the tail leaves a header that promises
    # more than the file holds; cutting the head removes the header.
    head_only = write_bytes(project.watches[0].path / "cut-tail.mp4", data[: len(data) // 3])
    tail_only = write_bytes(project.watches[0].path / "cut-head.mp4", data[len(data) // 2 :])
    assert_refused(project, tail_only, "is not a readable video or audio file")
    before = head_only.read_bytes()
    try:
        outcome = process(project, head_only)
    except JobError as exc:
        assert "\n" not in str(exc).strip()
    else:
        assert outcome.outputs[".mp4"].stat().st_size > 0
    assert head_only.read_bytes() == before


def test_audio_only_file_is_refused_by_a_video_rule(project: config_module.Config) -> None:
    source = project.watches[0].path / "voice.mp3"
    ffmpeg.run(["-y", "-f", "lavfi", "-i", "sine=d=1", str(source)])
    assert_refused(project, source, "has no video stream")


def test_image_only_file_is_refused_by_a_video_rule(project: config_module.Config) -> None:
    source = project.watches[0].path / "still.png"
    ffmpeg.run(["-y", "-f", "lavfi", "-i", "testsrc2=s=64x64:d=1", "-frames:v", "1", str(source)])
    assert_refused(project, source, "still image")


def test_a_directory_named_like_a_video(project: config_module.Config) -> None:
    folder = project.watches[0].path / "folder.mp4"
    folder.mkdir()
    assert_refused(project, folder, "not a regular file")


@pytest.mark.parametrize(
    "name",
    ["with spaces.mp4", "quote ' and \" marks.mp4", "line\nbreak.mp4", "emoji 🎬 clip.mp4",
     "colon: [brackets], semi;comma.mp4", "back\\slash%percent.mp4"],
)
def test_awkward_file_names(project: config_module.Config, name: str) -> None:
    source = make_clip(project.watches[0].path / name, width=320, height=240, seconds=1)
    outcome = process(project, source)
    assert outcome.outputs[".mp4"].name == Path(name).stem + ".mp4"
    with av.open(str(outcome.outputs[".mp4"])) as container:
        assert container.streams.video[0].height == 720


def test_non_utf8_file_name(project: config_module.Config) -> None:
    raw = os.path.join(os.fsencode(project.watches[0].path), b"caf\xe9 latin1.mp4")
    made = make_clip(project.watches[0].path / "plain.mp4", width=320, height=240, seconds=1)
    os.rename(made, raw)
    source = Path(os.fsdecode(raw))
    outcome = process(project, source)
    assert outcome.outputs[".mp4"].name == "café latin1.mp4"  # read as Windows-1252
    assert outcome.outputs[".mp4"].is_file()
    assert os.path.exists(raw)  # the source is untouched


@pytest.mark.parametrize(
    ("label", "kwargs"),
    [
        ("odd dimensions", {"width": 321, "height": 241}),
        ("4K 60 fps", {"width": 3840, "height": 2160, "fps": 60, "seconds": 1}),
        ("no audio", {"audio": False}),
    ],
)
def test_awkward_videos_render(project: config_module.Config, label: str, kwargs: dict[str, int]) -> None:
    options: dict[str, object] = {"width": 320, "height": 240, "seconds": 1, **kwargs}
    source = make_clip(project.watches[0].path / "awkward.mp4", **options)  # type: ignore[arg-type]
    outcome = process(project, source)
    with av.open(str(outcome.outputs[".mp4"])) as container:
        video = container.streams.video[0]
        assert video.height == 720
        assert video.width % 2 == 0


def test_rotated_phone_clip_comes_out_upright(project: config_module.Config) -> None:
    flat = make_clip(project.watches[0].path / "flat.mp4", width=320, height=240, seconds=1)
    rotated = project.watches[0].path / "phone.mp4"
    ffmpeg.run(["-y", "-display_rotation", "90", "-i", str(flat), "-c", "copy", str(rotated)])
    flat.unlink()
    outcome = process(project, rotated)
    with av.open(str(outcome.outputs[".mp4"])) as container:
        video = container.streams.video[0]
        assert (video.width, video.height) == (720, 960)


def test_variable_frame_rate_clip(project: config_module.Config) -> None:
    source = project.watches[0].path / "vfr.mp4"
    ffmpeg.run([
        "-y", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=2", "-f", "lavfi", "-i", "sine=d=2",
        "-vf", "setpts='if(lt(N,30),N/30/TB,(N*2)/30/TB)'", "-fps_mode", "vfr",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(source),
    ])
    outcome = process(project, source)
    with av.open(str(outcome.outputs[".mp4"])) as container:
        assert container.streams.video[0].height == 720
        assert container.duration is not None and container.duration > 0


def make_six_hours(path: Path, *, sound: bool) -> Path:
    args = ["-y", "-f", "lavfi", "-i", "color=black:s=64x64:r=1:d=21600"]
    if sound:
        args += ["-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "21600", "-c:a", "aac", "-b:a", "8k"]
    ffmpeg.run([*args, "-c:v", "libx264", "-preset", "ultrafast", "-g", "600", str(path)])
    return path


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize(
    ("edit", "sound"),
    [("export 720p MP4", False), ("trim the pauses, add captions, export 720p MP4", True)],
)
def test_six_hour_silent_video_is_handled_in_minutes(tmp_path: Path, edit: str, sound: bool) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "nemod.yaml").write_text(
        f'watch: [{{path: ./inbox, output: ./outbox}}]\nrules: [{{name: any, edit: "{edit}"}}]\n'
    )
    config = config_module.load(tmp_path / "nemod.yaml")
    source = make_six_hours(tmp_path / "inbox" / "six-hours.mp4", sound=sound)
    started = time.monotonic()
    try:
        outcome = process(config, source)
    except JobError as exc:
        assert "\n" not in str(exc).strip()
        # Trimming the pauses of six silent hours leaves nothing: refused, naming why.
        assert not sound or "has no speech" in str(exc)
    else:
        assert not sound, "six silent hours under a pause trim were rendered instead of refused"
        assert outcome.outputs[".mp4"].is_file()
    # The refusal needs only a chunked search of the sound; the export renders 21,600 frames.
    assert time.monotonic() - started < (300 if sound else 900)

"""The local engine on awkward inputs and with every operation at once (real ffmpeg)."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import av
import pytest

from nemod.backends.base import JobContext, JobRequest
from nemod.config import EngineSettings, Rule
from nemod.draft import from_draft, to_draft
from nemod.edits import parse_edit
from nemod.engine import local
from nemod.engine.captions import parse_srt, word_error_rate
from nemod.engine.local import LocalBackend, LocalEngine
from nemod.errors import MediaError
from nemod.media import ffmpeg
from nemod.media.probe import MediaInfo, probe
from nemod.samples import Talk, make_clip
from nemod.timeline import Canvas, Clip

REPO = Path(__file__).resolve().parents[2]


def _streams(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        return len(container.streams.video), len(container.streams.audio)


def test_copy_remuxes_without_reencoding(engine: LocalEngine, short_clip: Path, tmp_path: Path) -> None:
    timeline = engine.plan_timeline(short_clip, parse_edit("copy"))
    assert timeline.copy
    result = engine.render(timeline, {short_clip.name: short_clip}, tmp_path, "copy")
    command = result.details["ffmpeg_command"]
    assert command[command.index("-c:v") + 1] == "copy"
    assert abs(probe(result.video).duration - probe(short_clip).duration) < 0.05
    assert result.captions == {}


def test_a_job_probes_its_source_once_and_a_changed_source_again(
    short_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path] = []

    def counted(path: Path) -> MediaInfo:
        seen.append(path)
        return probe(path)

    monkeypatch.setattr(local, "probe", counted)
    engine = LocalEngine(EngineSettings(preset="ultrafast"))
    source = tmp_path / "clip.mp4"
    source.write_bytes(short_clip.read_bytes())
    timeline = engine.plan_timeline(source, parse_edit("copy"))
    engine.render(timeline, {source.name: source}, tmp_path / "work", "clip")
    assert seen == [source]  # planning and rendering share one probe
    make_clip(source, width=160, height=120, seconds=1.0)  # the file changed
    assert engine.plan_timeline(source, parse_edit("copy")).canvas == Canvas(160, 120)  # a timeline of the new file
    assert len(seen) == 2


def test_every_operation_in_one_pass(engine: LocalEngine, talk_clip: Talk, tmp_path: Path) -> None:
    music = make_clip(tmp_path / "tone.mp4", width=64, height=64, seconds=3.0)
    ffmpeg.run(["-y", "-i", str(music), "-vn", "-c:a", "libmp3lame", str(tmp_path / "tone.mp3")])
    plan = parse_edit(
        "cut the first 1 s, trim the pauses, speed up 1.5x, add BGM tone.mp3 at 30%, add title 'Hello' "
        "for 2 s, fade in and out, normalize loudness, add captions, export 360p vertical with blurred background"
    )
    # Through the wire format and JSON, as nemod serve hands it over and reads it back.
    timeline = from_draft(json.loads(json.dumps(to_draft(engine.plan_timeline(talk_clip.path, plan)))))
    result = engine.render(
        timeline, {talk_clip.path.name: talk_clip.path, "tone.mp3": tmp_path / "tone.mp3"}, tmp_path, "all"
    )
    info = probe(result.video)
    assert (info.width, info.height) == (360, 640)
    assert abs(info.duration - timeline.duration / 1000) < 0.15
    assert info.duration < (talk_clip.duration - 1 - 4) / 1.5 + 0.5
    assert info.has_audio
    graph = result.details["ffmpeg_command"][result.details["ffmpeg_command"].index("-filter_complex") + 1]
    for part in ("ass=", "sidechaincompress", "loudnorm", "atempo=1.5", "gblur", "concat="):
        assert part in graph
    assert parse_srt(result.captions["srt"].read_text(encoding="utf-8"))


def test_input_without_sound(engine: LocalEngine, media_dir: Path, tmp_path: Path) -> None:
    silent = make_clip(media_dir / "silent.mp4", width=320, height=240, seconds=2.0, audio=False)
    timeline = engine.plan_timeline(silent, parse_edit("trim the pauses, add captions"))
    result = engine.render(timeline, {silent.name: silent}, tmp_path, "silent")
    assert _streams(result.video) == (1, 1)
    assert abs(probe(result.video).duration - 2.0) < 0.1
    assert parse_srt(result.captions["srt"].read_text(encoding="utf-8")) == []


def test_several_sound_tracks_rotation_vfr_and_odd_timestamps(engine: LocalEngine, tmp_path: Path) -> None:
    base = tmp_path / "odd.mov"
    ffmpeg.run([
        "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=4",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=4:sample_rate=48000",
        "-f", "lavfi", "-i", "sine=frequency=880:duration=4:sample_rate=44100",
        "-map", "0:v", "-map", "1:a", "-map", "2:a",
        "-vf", "setpts='if(lt(N,30),N/30,1+(N-30)/15)/TB'", "-fps_mode", "vfr",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-output_ts_offset", "7.3", str(base),
    ])
    rotated = tmp_path / "rotated.mov"
    ffmpeg.run(["-y", "-display_rotation", "90", "-i", str(base), "-map", "0", "-c", "copy", str(rotated)])
    media = probe(rotated)
    assert (media.width, media.height, media.audio_streams) == (240, 320, 2)
    timeline = engine.plan_timeline(rotated, parse_edit("cut the last 0.5 s, export 480p"))
    result = engine.render(timeline, {rotated.name: rotated}, tmp_path, "odd")
    info = probe(result.video)
    assert (info.width, info.height) == (480, 640)
    assert abs(info.duration - (media.duration - 0.5)) < 0.15
    assert abs(info.fps - media.fps) < 0.5  # constant, at the variable-rate source's average


def test_captions_on_real_speech_from_another_speaker(engine: LocalEngine, tmp_path: Path) -> None:
    clip = tmp_path / "wizard.mp4"
    ffmpeg.run([
        "-y", "-f", "lavfi", "-i", "color=c=gray:size=320x240:rate=30",
        "-i", str(REPO / "tests" / "media" / "stereo_diarization.wav"),
        "-filter_complex", "[1:a]pan=mono|c0=c0[a]", "-map", "0:v", "-map", "[a]", "-shortest",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip),
    ])
    timeline = engine.plan_timeline(clip, parse_edit("add captions"))
    result = engine.render(timeline, {clip.name: clip}, tmp_path, "wizard")
    text = " ".join(" ".join(c.lines) for c in parse_srt(result.captions["srt"].read_text(encoding="utf-8")))
    expected = "He began a confused complaint against the wizard, who had vanished behind the curtain on the left."
    assert word_error_rate(expected, text) <= 0.15, text


def test_backend_checkpoints_and_cancel(talk_clip: Talk, short_clip: Path, tmp_path: Path) -> None:
    backend = LocalBackend(LocalEngine(EngineSettings(preset="ultrafast")))
    steps: list[str] = []
    progress: list[tuple[str, float]] = []
    rule = Rule(name="r", plan=parse_edit("export 240p"))
    context = JobContext(progress=lambda step, f: progress.append((step, f)), checkpoint=steps.append)
    rendition = backend.process(JobRequest("j1", short_clip, rule, tmp_path), context)
    assert steps == ["edit", "render"]
    assert rendition.video.is_file() and rendition.summary.startswith("Timeline (1 track)")
    assert ("render", 1.0) in progress
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(MediaError):
        backend.engine.render(rendition.timeline, {short_clip.name: short_clip}, tmp_path, "stopped", cancel=cancel)


def test_a_draft_joining_two_sources_of_different_shapes(engine: LocalEngine, short_clip: Path, tmp_path: Path) -> None:
    tall = make_clip(tmp_path / "tall.mp4", width=240, height=320, seconds=2.0, audio=False)
    timeline = engine.plan_timeline(short_clip, parse_edit("export 240p with blurred background"))
    assert timeline.video is not None
    clips = (Clip("tall.mp4", 0, 2000), Clip(short_clip.name, 500, 1500))
    timeline = replace(timeline, video=replace(timeline.video, clips=clips))
    result = engine.render(timeline, {short_clip.name: short_clip, "tall.mp4": tall}, tmp_path, "joined")
    info = probe(result.video)
    assert (info.width, info.height, info.has_audio) == (320, 240, True)
    assert abs(info.duration - 3.0) < 0.1

"""Smart cutting on generated footage (real ffmpeg, real libx264, PyAV): every frame shows its
own index (``corpus.frame_indices`` reads it back) and a beep sounds on every 15th frame, so
each output frame maps to the source frame it shows and sound can be checked against it.

Eligible sources must come out frame-exact, with copied frames bit-identical to the
source's packets, re-encoded frames close to the source, sound in step after every cut and
a clean decode; awkward sources either do the same or fall back to the full render.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import av
import corpus
import numpy as np
import pytest

from nemod.config import EngineSettings
from nemod.edits import parse_edit
from nemod.engine import smartcut
from nemod.engine.local import LocalEngine
from nemod.media import ffmpeg, splice
from nemod.media.probe import probe
from nemod.samples import Talk
from nemod.timeline import Canvas, Clip, Timeline, VideoTrack

FPS = 30
SECONDS = 12
#: Kept source ranges (ms, on frame boundaries): joins inside GOPs and on GOP edges.
SEGMENTS = ((0, 2500), (3100, 6600), (7000, 7300), (8033, 12000))
#: The source picture: moving test pattern / frame index bits / test pattern.
_PICTURE = (
    "testsrc2=s=448x32:r={fps}:d={seconds}[top];testsrc=s=448x32:r={fps}:d={seconds}[bottom];"
    "color=c=gray:s=448x64:r={fps}:d={seconds},format=gray,"
    "geq=lum='255*mod(floor(N/pow(2\\,floor(X/32)))\\,2)',format=yuv420p[bits];"
    "[top][bits][bottom]vstack=3,format=yuv420p{extra}[v]"
)
BEEP = f"aevalsrc='0.5*sin(2*PI*3000*t)*lt(mod(t\\,0.5)\\,1/{FPS})':s=48000:d={SECONDS}"


def make_source(path: Path, x264: str, *, extra_filter: str = "", args: tuple[str, ...] = ()) -> Path:
    """A 448x128 clip, every frame showing its index, a beep on each 15th frame; ``x264``
    are the libx264 parameters (GOP, B-frames…)."""
    graph = _PICTURE.format(fps=FPS, seconds=SECONDS, extra=extra_filter)
    ffmpeg.run(["-y", "-filter_complex", graph, "-f", "lavfi", "-i", BEEP, "-map", "[v]", "-map", "0:a",
                "-c:v", "libx264", "-preset", "veryfast", "-x264-params", x264, "-c:a", "aac", "-b:a", "96k",
                *args, str(path)])
    return path


def timeline_for(source: Path, segments: tuple[tuple[int, int], ...] = SEGMENTS) -> Timeline:
    """A trim-only timeline keeping ``segments`` of ``source`` (what a pause trim produces)."""
    info = probe(source)
    return Timeline(VideoTrack(tuple(Clip(source.name, a, b) for a, b in segments), name=source.name),
                    duration=sum(b - a for a, b in segments), fps=float(FPS),
                    canvas=Canvas(info.width, info.height, "crop"))


def expected_frames(frames: int, segments: tuple[tuple[int, int], ...] = SEGMENTS) -> list[int]:
    out: list[int] = []
    for a, b in segments:
        end = frames if b >= SECONDS * 1000 else round(b / 1000 * FPS)
        out += range(round(a / 1000 * FPS), end)
    return out


def packets_by_frame(path: Path) -> dict[int, bytes]:
    """Display index → SHA-1 of the video packet showing it."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        found = [(int(p.pts), hashlib.sha1(bytes(p)).digest()) for p in container.demux(stream)
                 if p.size and p.pts is not None]
    first = min(pts for pts, _ in found)
    step = min(b - a for a, b in zip(sorted(p for p, _ in found), sorted(p for p, _ in found)[1:], strict=False))
    return {(pts - first) // step: digest for pts, digest in found}


def pictures(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="gray").astype(np.float64) for frame in container.decode(video=0)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def sound(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        chunks = [frame.to_ndarray().mean(axis=0) for frame in container.decode(audio=0)]
    return np.concatenate(chunks)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("smart")


ELIGIBLE = {
    "b-pyramid": "keyint=30:min-keyint=30:scenecut=0:bframes=3:b-pyramid=normal",
    "b-frames": "keyint=30:min-keyint=30:scenecut=0:bframes=2:b-pyramid=none",
    "no-b-frames": "keyint=30:min-keyint=30:scenecut=0:bframes=0",
    "baseline": "keyint=30:min-keyint=30:scenecut=0:bframes=0:cabac=0:8x8dct=0",
}


@pytest.mark.parametrize("kind", sorted(ELIGIBLE))
def test_a_trim_only_draft_is_smart_cut_frame_exact(engine: LocalEngine, folder: Path, kind: str) -> None:
    source = make_source(folder / f"{kind}.mp4", ELIGIBLE[kind])
    timeline = timeline_for(source)
    steps: list[float] = []
    result = engine.render(timeline, {source.name: source}, folder / kind, kind,
                           progress=lambda step, fraction: steps.append(fraction))
    path = result.details["render_path"]
    assert path["path"] == "smart", path
    index = splice.index_video(source)
    expected = expected_frames(index.frames)
    shown = corpus.frame_indices(result.video)
    assert shown == expected  # every kept frame once, in order
    assert path["frames_copied"] + path["frames_encoded"] == len(expected)
    assert path["frames_copied"] > len(expected) / 3
    # Copied frames are the source's own packets; re-encoded ones are close to the source.
    planned = smartcut.plan_splice(timeline, probe(source), index, preset="ultrafast")
    assert isinstance(planned, smartcut.SmartPlan)
    copied_frames = {frame for first, end in planned.splice.copied_gops.items() for frame in range(first, end)}
    assert len(copied_frames) == path["frames_copied"]
    source_packets, output_packets = packets_by_frame(source), packets_by_frame(result.video)
    same = {shown[out] for out, digest in output_packets.items() if source_packets[shown[out]] == digest}
    assert same == copied_frames
    source_pictures, output_pictures = pictures(source), pictures(result.video)
    worst = min(psnr(output_pictures[out], source_pictures[frame]) for out, frame in enumerate(shown)
                if frame not in copied_frames)
    assert worst >= 40.0
    # The beep of each 15th source frame sounds on the output frame showing it.
    samples = sound(result.video)
    rate = 48_000
    joins = {out for out in range(1, len(shown)) if shown[out] != shown[out - 1] + 1}

    def level(out: int) -> float:
        window = samples[int((out + 0.2) / FPS * rate): int((out + 0.8) / FPS * rate)]
        return float(np.sqrt(np.mean(window**2))) if len(window) else 0.0

    for out, frame in enumerate(shown):
        if out in joins or out + 1 in joins or out == len(shown) - 1:
            continue
        if frame % 15 == 0:
            assert level(out) > 0.1, (out, frame)
        elif frame % 15 not in (1, 14):
            assert level(out) < 0.05, (out, frame)
    # It decodes without a single error, and sound and picture last as long.
    assert not ffmpeg.run(["-v", "error", "-i", str(result.video), "-f", "null", "-"]).log_tail.strip()
    times = splice.output_times(result.video)
    assert times.audio_seconds is not None
    assert abs(times.audio_seconds - len(expected) / FPS) <= 1 / FPS
    assert smartcut.timing_problems(times, len(expected), FPS) == []  # PTS unique and even, DTS rising
    assert steps[-1] == 1.0 and steps == sorted(steps)


AWKWARD = {
    "open-gop": ("keyint=30:min-keyint=30:scenecut=0:open-gop=1", "", (), "fewer than two IDR"),
    "10s-gop": ("keyint=300:min-keyint=300:scenecut=0", "", (), "would be re-encoded"),
    "vfr": ("keyint=30:scenecut=0", ",select='not(eq(mod(n\\,7)\\,3))'", ("-fps_mode", "vfr"), "variable frame rate"),
    "rotation": ("keyint=30:scenecut=0", "", ("-display_rotation", "90"), "rotated"),
    "start-time": ("keyint=30:scenecut=0", "", ("-output_ts_offset", "0.7"), "start at time 0"),
    "interlaced": ("keyint=30:scenecut=0:interlaced=1", "", ("-flags", "+ildct+ilme"), "interlaced"),
    "sps-id-3": ("keyint=30:min-keyint=30:scenecut=0:sps-id=3", "", (), "parameter set id 3"),
}


@pytest.mark.parametrize("kind", sorted(AWKWARD))
def test_an_awkward_source_falls_back_to_the_full_render(engine: LocalEngine, folder: Path, kind: str) -> None:
    x264, extra, args, why = AWKWARD[kind]
    if kind == "rotation":  # a display matrix is an input option: set it on a remux
        plain = make_source(folder / "unrotated.mp4", x264)
        source = folder / f"{kind}.mp4"
        ffmpeg.run(["-y", "-display_rotation", "90", "-i", str(plain), "-c", "copy", str(source)])
    else:
        source = make_source(folder / f"{kind}.mp4", x264, extra_filter=extra, args=args)
    result = engine.render(timeline_for(source), {source.name: source}, folder / kind, kind)
    path = result.details["render_path"]
    assert path["path"] == "full"
    assert why in path["reason"]
    if kind in ("open-gop", "10s-gop"):
        assert corpus.frame_indices(result.video) == expected_frames(SECONDS * FPS)


def test_a_full_render_keeps_hundreds_of_ranges_frame_exact(folder: Path) -> None:
    # An hour's pause trim keeps ~170 ranges; ffmpeg refuses a flat select of 100 terms.
    source = make_source(folder / "many-ranges.mp4", ELIGIBLE["b-frames"])
    segments = tuple((round(2 * k * 1000 / FPS), round((2 * k + 1) * 1000 / FPS)) for k in range(180))
    engine = LocalEngine(EngineSettings(preset="ultrafast", smart_cut=False))
    result = engine.render(timeline_for(source, segments), {source.name: source}, folder / "many", "many")
    assert result.details["render_path"]["path"] == "full"
    assert corpus.frame_indices(result.video) == expected_frames(SECONDS * FPS, segments) == list(range(0, 360, 2))


def test_an_edit_list_that_hides_frames_falls_back(engine: LocalEngine, folder: Path) -> None:
    plain = make_source(folder / "for-edit-list.mp4", "keyint=60:scenecut=0")
    source = folder / "edit-list.mp4"
    ffmpeg.run(["-y", "-ss", "1.3", "-i", str(plain), "-c", "copy", str(source)])  # starts mid-GOP
    timeline = timeline_for(source, ((0, 4000), (5000, 9000)))
    result = engine.render(timeline, {source.name: source}, folder / "edit-list", "edit-list")
    assert result.details["render_path"]["path"] == "full"
    assert "edit list" in result.details["render_path"]["reason"]


def test_a_draft_that_changes_the_picture_is_not_smart_cut(engine: LocalEngine, folder: Path) -> None:
    source = make_source(folder / "titled.mp4", ELIGIBLE["b-pyramid"])
    timeline = replace(timeline_for(source), fade_in=0.5)
    result = engine.render(timeline, {source.name: source}, folder / "faded", "faded")
    assert result.details["render_path"] == {"path": "full", "reason": "the edit fades the picture"}


def test_pause_cuts_move_onto_idr_frames_so_fewer_frames_are_reencoded(
    engine: LocalEngine, talk_clip: Talk, folder: Path
) -> None:
    source = folder / "talk-short-gops.mp4"
    ffmpeg.run(["-y", "-i", str(talk_clip.path), "-c:v", "libx264", "-preset", "veryfast",
                "-x264-params", "keyint=15:min-keyint=15:scenecut=0", "-c:a", "copy", str(source)])
    plan = parse_edit("remove silence longer than 1 s with 0.2 s padding")
    plain = LocalEngine(EngineSettings(preset="ultrafast", smart_cut=False))
    unsnapped, snapped = plain.plan_timeline(source, plan), engine.plan_timeline(source, plan)
    index = splice.index_video(source)
    idr = {round(frame * 1000 / FPS) for frame in index.idr_frames}

    def edges(timeline: Timeline) -> list[int]:
        assert timeline.video is not None
        return [edge for clip in timeline.video.clips for edge in (clip.start, clip.end)][1:-1]  # the joins

    on_idr = sum(edge in idr for edge in edges(snapped))
    assert on_idr > sum(edge in idr for edge in edges(unsnapped))
    assert on_idr >= len(edges(snapped)) // 2
    assert snapped.video is not None
    kept = [(clip.start / 1000, clip.end / 1000) for clip in snapped.video.clips]
    for a, b in talk_clip.speech:  # no speech lost, and no pause kept longer than 1 s
        assert any(start <= a + 0.05 and b - 0.05 <= end for start, end in kept), (a, b)
    for (_, end), (start, _) in itertools.pairwise(kept):
        before = max(b for a, b in talk_clip.speech if b <= end + 0.05)
        after = min(a for a, b in talk_clip.speech if a >= start - 0.05)
        assert (end - before) + (after - start) <= 1.0 + 0.1
    results = [engine.render(timeline, {source.name: source}, folder / name, name)
               for name, timeline in (("unsnapped", unsnapped), ("snapped", snapped))]
    paths = [result.details["render_path"] for result in results]
    assert [path["path"] for path in paths] == ["smart", "smart"]
    assert paths[1]["frames_encoded"] < paths[0]["frames_encoded"], paths


@pytest.mark.parametrize("smart", [True, False])
def test_the_job_log_says_which_render_ran(tmp_path: Path, smart: bool) -> None:
    (tmp_path / "inbox").mkdir()
    source = make_source(tmp_path / "inbox" / "lecture.mp4", ELIGIBLE["b-pyramid"])
    (tmp_path / "nemod.yaml").write_text(textwrap.dedent(f"""\
        state_dir: ./state
        engine: {{preset: ultrafast, smart_cut: {'true' if smart else 'false'}}}
        watch:
          - path: ./inbox
            output: ./outbox
        rules:
          - name: trim
            match: {{extensions: [mp4]}}
            edit: "cut the first 1.5 s, cut the last 2.2 s"
        """))
    result = subprocess.run([sys.executable, "-m", "nemod", "process", "-c", "nemod.yaml", str(source)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr
    log = json.loads((tmp_path / "outbox" / "lecture.log.json").read_text())
    if smart:
        assert log["render_path"]["path"] == "smart"
        # Frames 45-293 kept: GOPs 60-269 copied whole, 45-59 re-encoded, 270-293 copied
        # when they lead the GOP's decode order (x264's B-frame placement decides).
        copied, encoded = log["render_path"]["frames_copied"], log["render_path"]["frames_encoded"]
        assert copied + encoded == 249
        assert 7 * FPS <= copied <= 7 * FPS + 24 and encoded >= 15
    else:
        assert log["render_path"] == {"path": "full", "reason": "engine.smart_cut is off"}
    output = tmp_path / "outbox" / "lecture.mp4"
    assert corpus.frame_indices(output) == list(range(45, (SECONDS * FPS) - 66))


def test_a_splice_that_fails_verification_is_rendered_in_full(
    engine: LocalEngine, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real fault: re-encoded runs reuse the source's parameter set id, so the copied
    # frames after them are decoded with the wrong SPS/PPS. (The index refuses such a
    # source up front; that check is bypassed here to prove verification catches it too.)
    monkeypatch.setattr(splice, "SPLICE_SPS_ID", 0)
    monkeypatch.setattr(splice, "_parameter_set_ids", lambda avcc: set())
    source = make_source(folder / "clash.mp4", ELIGIBLE["b-pyramid"])
    result = engine.render(timeline_for(source), {source.name: source}, folder / "clash", "clash")
    path = result.details["render_path"]
    assert path["path"] == "full"
    assert path["reason"].startswith("the smart cut failed verification: decoding it reports")
    assert corpus.frame_indices(result.video) == expected_frames(SECONDS * FPS)
    assert sorted(p.name for p in (folder / "clash").iterdir()) == ["clash.render.mp4"]


def test_a_source_without_sound_is_smart_cut_with_a_silent_track(engine: LocalEngine, folder: Path) -> None:
    loud = make_source(folder / "with-sound.mp4", ELIGIBLE["b-pyramid"])
    source = folder / "silent.mp4"
    ffmpeg.run(["-y", "-i", str(loud), "-an", "-c", "copy", str(source)])
    result = engine.render(timeline_for(source), {source.name: source}, folder / "silent", "silent")
    assert result.details["render_path"]["path"] == "smart"
    assert corpus.frame_indices(result.video) == expected_frames(SECONDS * FPS)
    assert float(np.abs(sound(result.video)).max()) == 0.0

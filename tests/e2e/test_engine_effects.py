"""Every promised effect measured in the rendered file, not in the ffmpeg command:
loudness, ducking, titles and burned captions (real ffmpeg, tiny clips)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from nemod.edits import parse_edit
from nemod.engine.captions import parse_srt
from nemod.engine.local import LocalEngine, RenderResult
from nemod.media import ffmpeg
from nemod.samples import Talk


def _render(engine: LocalEngine, clip: Path, edit: str, folder: Path, stem: str) -> RenderResult:
    timeline = engine.plan_timeline(clip, parse_edit(edit))
    return engine.render(timeline, {clip.name: clip}, folder, stem)


def _loudness(path: Path) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP) by ffmpeg's EBU R128 meter."""
    result = subprocess.run([ffmpeg.ffmpeg_path(), "-nostats", "-i", str(path), "-map", "0:a", "-af",
                             "ebur128=peak=true", "-f", "null", "-"], capture_output=True, text=True, check=True)
    summary = result.stderr[result.stderr.rindex("Summary:"):]
    integrated = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))  # type: ignore[union-attr]
    peak = float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))  # type: ignore[union-attr]
    return integrated, peak


def _frames(path: Path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as container:
        return [(float(frame.time or 0.0), frame.to_ndarray(format="gray").astype(np.int16))
                for frame in container.decode(video=0)]


def test_normalized_loudness_is_minus_14_lufs_with_headroom(engine: LocalEngine, talk_clip: Talk, tmp_path: Path) -> None:
    result = _render(engine, talk_clip.path, "normalize loudness", tmp_path, "loud")
    integrated, peak = _loudness(result.video)
    assert abs(integrated - -14.0) <= 1.0, integrated
    assert peak <= -1.0, peak


@pytest.fixture(scope="module")
def tone(media_dir: Path) -> Path:
    """40 s of a steady 7 kHz tone: 'music' that can be measured apart from the voice."""
    path = media_dir / "tone.wav"
    ffmpeg.run(["-y", "-f", "lavfi", "-i", "sine=frequency=7000:duration=40:sample_rate=48000", str(path)])
    return path


def test_music_is_ducked_under_speech(engine: LocalEngine, talk_clip: Talk, tone: Path, tmp_path: Path) -> None:
    result = _render(engine, talk_clip.path, f"add BGM {tone} at 30%", tmp_path, "ducked")
    rate = 16_000
    samples = decode_audio(str(result.video), sampling_rate=rate)
    t = np.arange(len(samples)) / rate
    window = int(0.05 * rate)
    envelope = np.abs(np.convolve(samples * np.exp(-2j * np.pi * 7000 * t), np.ones(window) / window, mode="same"))

    def level(a: float, b: float) -> float:
        return 20 * np.log10(np.median(envelope[int(a * rate): int(b * rate)]) + 1e-9)

    under_speech = [level(a + 1.0, b - 1.0) for a, b in talk_clip.speech if b - a > 3]
    in_pauses = [level(a + 0.5, b - 0.1) for a, b in talk_clip.pauses]
    assert max(under_speech) <= min(in_pauses) - 10, (under_speech, in_pauses)


def test_a_title_is_drawn_for_its_seconds_and_gone_after(engine: LocalEngine, talk_clip: Talk, tmp_path: Path) -> None:
    plain = _frames(_render(engine, talk_clip.path, "cut the last 26 s", tmp_path, "plain").video)
    titled = _frames(_render(engine, talk_clip.path, "cut the last 26 s, add title 'HELLO' for 2 s", tmp_path, "titled").video)
    assert len(plain) == len(titled)
    height, width = plain[0][1].shape
    area = (slice(int(height * 0.42), int(height * 0.58)), slice(int(width * 0.3), int(width * 0.7)))
    for (time, a), (_, b) in zip(plain, titled, strict=True):
        diff = float(np.abs(a[area] - b[area]).mean())
        if 0.35 <= time <= 1.65:  # the title fades in and out over 0.3 s
            assert diff > 10, (time, diff)
        elif time > 2.1:
            assert diff < 2, (time, diff)


def test_burned_captions_show_while_a_cue_is_on_and_not_between(engine: LocalEngine, talk_clip: Talk, tmp_path: Path) -> None:
    burned = _render(engine, talk_clip.path, "add captions", tmp_path, "burned")
    sidecar = _render(engine, talk_clip.path, "add captions sidecar only", tmp_path, "sidecar")
    cues = parse_srt(burned.captions["srt"].read_text(encoding="utf-8"))
    assert cues
    frames_a, frames_b = _frames(burned.video), _frames(sidecar.video)
    height = frames_a[0][1].shape[0]
    bottom = slice(int(height * 0.6), height)
    checked_on = checked_off = 0
    for (time, a), (_, b) in zip(frames_a, frames_b, strict=True):
        diff = float(np.abs(a[bottom] - b[bottom]).mean())
        on = any(cue.start + 0.1 <= time <= cue.end - 0.1 for cue in cues)
        off = all(time < cue.start - 0.1 or time > cue.end + 0.1 for cue in cues)
        if on:
            assert diff > 3, (time, diff)
            checked_on += 1
        elif off:
            assert diff < 1.5, (time, diff)
            checked_off += 1
    assert checked_on > 100 and checked_off > 10

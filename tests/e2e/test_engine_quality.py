"""Quality checks of the local engine on speech clips with known pauses (real ffmpeg, tiny.en)."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from nemod.edits import parse_edit
from nemod.engine.captions import Word, parse_srt, retime, word_error_rate
from nemod.engine.local import LocalEngine, RenderResult
from nemod.media.probe import probe
from nemod.samples import TRANSCRIPT, Talk
from nemod.timeline import Timeline, TrimReport


def _kept(timeline: Timeline) -> list[tuple[float, float]]:
    assert timeline.video is not None
    return [(clip.start / 1000, clip.end / 1000) for clip in timeline.video.clips]


def _pauses_cut(timeline: Timeline) -> int:
    assert timeline.video is not None
    return timeline.video.pauses_cut


def _trim(timeline: Timeline) -> TrimReport:
    assert timeline.video is not None and timeline.video.trim is not None
    return timeline.video.trim


def _overlap(ranges: list[tuple[float, float]], a: float, b: float) -> float:
    return sum(max(0.0, min(b, end) - max(a, start)) for start, end in ranges)


@pytest.fixture(scope="module")
def trimmed(engine: LocalEngine, talk_clip: Talk, tmp_path_factory: pytest.TempPathFactory) -> tuple[Timeline, RenderResult]:
    timeline = engine.plan_timeline(talk_clip.path, parse_edit("trim the pauses, add captions sidecar only"))
    work = tmp_path_factory.mktemp("trimmed")
    return timeline, engine.render(timeline, {talk_clip.path.name: talk_clip.path}, work, "talk")


def test_every_pause_longer_than_the_minimum_is_cut(trimmed: tuple[Timeline, RenderResult], talk_clip: Talk) -> None:
    kept = _kept(trimmed[0])
    assert _pauses_cut(trimmed[0]) >= len(talk_clip.pauses)
    for start, end in talk_clip.pauses:
        assert end - start >= 1.0
        # What is left of a pause: the 0.2 s padding on each side and the reader's breath
        # the speech detector keeps with it (measured: 0.3–0.6 s of these 1.2–2.5 s pauses).
        assert _overlap(kept, start, end) <= 0.7, (start, end, kept)


def test_the_render_is_as_long_as_its_draft(trimmed: tuple[Timeline, RenderResult], talk_clip: Talk) -> None:
    expected = sum(b - a for a, b in _kept(trimmed[0]))
    actual = probe(trimmed[1].video).duration
    assert abs(actual - expected) <= 1 / 30 + 0.03, (actual, expected)
    assert actual < talk_clip.duration - 3.0


def test_every_kept_speech_span_is_whole(trimmed: tuple[Timeline, RenderResult], talk_clip: Talk) -> None:
    kept = _kept(trimmed[0])
    for start, end in talk_clip.speech:
        assert _overlap(kept, start, end) >= (end - start) - 0.001, (start, end, kept)


def test_each_cut_says_why(trimmed: tuple[Timeline, RenderResult]) -> None:
    trim = _trim(trimmed[0])
    assert trim.sensitivity == "normal"
    assert trim.signals == ("silero", "level", "whisper words")
    assert len(trim.cuts) == _pauses_cut(trimmed[0])
    for cut in trim.cuts:
        assert cut["seconds"] > 0.1
        # digital-zero pauses: Silero hears nothing and the level is the floor
        assert cut["silero_max"] < 0.5 and cut["level_over_floor_db"] < 20, cut


def test_captions_word_error_rate_and_timing(trimmed: tuple[Timeline, RenderResult], talk_clip: Talk) -> None:
    timeline, result = trimmed
    cues = parse_srt(result.captions["srt"].read_text(encoding="utf-8"))
    assert result.captions["vtt"].read_text(encoding="utf-8").startswith("WEBVTT")
    text = " ".join(" ".join(cue.lines) for cue in cues)
    assert word_error_rate(TRANSCRIPT, text) <= 0.15, text
    # Each phrase's first word, moved onto the cut timeline, starts a cue within 0.3 s.
    starts = retime([Word(a, a + 0.2, "x") for a, _ in talk_clip.speech], _kept(timeline))
    for word in starts:
        assert min(abs(cue.start - word.start) for cue in cues) <= 0.3, (word.start, [c.start for c in cues])
    for cue in cues:
        assert 0 < cue.end - cue.start <= 7.0
        assert len(cue.lines) <= 2
        assert all(len(line) <= 42 for line in cue.lines)
    assert all(a.end <= b.start for a, b in itertools.pairwise(cues))


def _flash_times(path: Path) -> list[float]:
    times = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            luma = frame.to_ndarray(format="gray")
            if luma.mean() > 128 and frame.time is not None:
                times.append(float(frame.time))
    return times


def _beep_times(path: Path) -> list[float]:
    rate = 16_000
    samples = decode_audio(str(path), sampling_rate=rate)
    t = np.arange(len(samples)) / rate
    carrier = samples * np.exp(-2j * np.pi * 3000 * t)
    window = int(0.004 * rate)
    envelope = np.abs(np.convolve(carrier, np.ones(window) / window, mode="same"))
    loud = envelope > 0.5 * envelope.max()
    onsets = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
    merged: list[float] = []
    for onset in onsets / rate:
        if not merged or onset - merged[-1] > 0.2:
            merged.append(float(onset) - window / 2 / rate)
    return merged


def test_picture_and_sound_stay_in_sync_after_cuts(engine: LocalEngine, sync_clip: Talk, tmp_path: Path) -> None:
    timeline = engine.plan_timeline(sync_clip.path, parse_edit("trim the pauses"))
    assert _pauses_cut(timeline) >= 3
    result = engine.render(timeline, {sync_clip.path.name: sync_clip.path}, tmp_path, "sync")
    frame = 1 / 30
    source_offsets = [b - f for b, f in zip(_beep_times(sync_clip.path), _flash_times(sync_clip.path), strict=True)]
    flashes, beeps = _flash_times(result.video), _beep_times(result.video)
    assert len(flashes) == len(beeps) == len(sync_clip.marks)
    for beep, flash, before in zip(beeps, flashes, source_offsets, strict=True):
        assert abs(beep - flash) < frame, (beep, flash)
        assert abs((beep - flash) - before) < frame / 2
    expected = retime([Word(m, m + 0.01, "x") for m in sync_clip.marks], _kept(timeline))
    for flash, word in zip(flashes, expected, strict=True):
        assert abs(flash - word.start) < frame

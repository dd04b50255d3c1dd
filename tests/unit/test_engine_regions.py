"""Which sound is searched and transcribed, and when a silent source is refused (pure)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nemod.edits import parse_edit
from nemod.engine import vad
from nemod.engine.pauses import SpeechMap
from nemod.engine.timeline import Analysis, build_timeline, spoken_duration
from nemod.engine.vad import transcription_regions
from nemod.media.probe import MediaInfo
from nemod.timeline import CaptionTrack, Clip


def _media(duration: float) -> MediaInfo:
    return MediaInfo(Path("/in/six-hours.mp4"), duration, 64, 64, 1.0, 0, 1, "h264", True)


def test_regions_pad_speech_and_join_close_speech() -> None:
    speech = [(10.0, 12.0), (13.0, 14.0), (30.0, 31.0)]
    assert transcription_regions(speech, (0.0, 100.0)) == [(9.5, 14.5), (29.5, 31.5)]


def test_regions_stay_inside_the_kept_window() -> None:
    speech = [(1.0, 2.0), (10.0, 12.0), (50.0, 60.0), (90.0, 95.0)]
    assert transcription_regions(speech, (11.0, 55.0)) == [(11.0, 12.5), (49.5, 55.0)]
    assert transcription_regions(speech, (70.0, 80.0)) == []


def test_no_speech_means_nothing_to_transcribe() -> None:
    assert transcription_regions([], (0.0, 21_600.0)) == []


def test_regions_are_never_longer_than_the_longest() -> None:
    speech = [(0.0, 100.0), (101.0, 250.0), (251.0, 400.0), (700.0, 701.0)]
    regions = transcription_regions(speech, (0.0, 1000.0), longest=300.0)
    assert all(end - start <= 300.0 for start, end in regions)
    assert regions[0] == (0.0, 250.5)
    assert regions[-1] == (699.5, 701.5)
    covered = sum(end - start for start, end in regions)
    assert covered == pytest.approx(400.5 + 2.0)  # every speech second exactly once


def test_one_long_run_of_speech_is_split() -> None:
    assert transcription_regions([(0.0, 700.0)], (0.0, 800.0), longest=300.0) == [
        (0.0, 300.0), (300.0, 600.0), (600.0, 700.5)]


def test_silent_chunks_and_chunks_outside_the_window_are_not_searched(monkeypatch: pytest.MonkeyPatch) -> None:
    searched: list[float] = []

    def signals(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        searched.append(round(float(chunk[0]), 3))
        frames = len(chunk) // vad.FRAME_SAMPLES
        return np.zeros(frames), np.zeros(frames), np.zeros(frames)

    def fake(probs: object, levels: object, sensitivity: object, offset: float, flatness: object = None) -> SpeechMap:
        return SpeechMap(((offset + 1.0, offset + 2.0),))

    monkeypatch.setattr(vad, "chunk_signals", signals)
    monkeypatch.setattr(vad, "find_speech", fake)
    second = vad.SAMPLE_RATE * 10
    chunks = [np.full(second, value, np.float32) for value in (0.1, 0.0, 0.2, 0.3, 0.4, 0.5)]
    read: list[int] = []

    def feed() -> Iterator[np.ndarray]:
        for index, chunk in enumerate(chunks):
            read.append(index)
            yield chunk

    assert vad.speech_in_chunks(feed(), (15.0, 35.0)).speech == ((21.0, 22.0), (31.0, 32.0))
    assert searched == [0.2, 0.3]  # 0.1 is before the window, 0.0 is digital silence
    assert 5 not in read  # decoding stops after the window


def test_a_long_silent_recording_is_refused_when_pauses_are_trimmed() -> None:
    plan = parse_edit("trim the pauses, add captions, export 720p")
    with pytest.raises(ValueError, match=r"^six-hours.mp4 has no speech in its 6 h 0 min of sound: nothing left"):
        build_timeline(plan, _media(21_600.0), Analysis(speech=(), words=()))


def test_a_short_silent_clip_is_kept_whole() -> None:
    plan = parse_edit("trim the pauses, add captions, export 720p")
    timeline = build_timeline(plan, _media(300.0), Analysis(speech=(), words=(), notes=("no speech",)))
    assert timeline.clips == (Clip("six-hours.mp4", 0, 300_000),)
    assert timeline.captions == CaptionTrack(cues=(), burn=True, language="en")
    assert timeline.notes == ("no speech",)


def test_a_long_silent_recording_is_kept_when_nothing_trims_pauses() -> None:
    timeline = build_timeline(parse_edit("add captions, export 720p"), _media(21_600.0), Analysis(words=()))
    assert timeline.duration == 21_600_000


def test_the_window_decides_not_the_whole_recording() -> None:
    plan = parse_edit("keep 0:00-5:00, trim the pauses")
    timeline = build_timeline(plan, _media(21_600.0), Analysis(speech=((400.0, 410.0),)))
    assert timeline.duration == 300_000
    with pytest.raises(ValueError, match="in its 20 min 0 s of sound"):
        build_timeline(parse_edit("keep 0:00-20:00, trim the pauses"), _media(21_600.0),
                    Analysis(speech=((1300.0, 1310.0),)))


def test_spoken_duration() -> None:
    assert spoken_duration(21_600.0) == "6 h 0 min"
    assert spoken_duration(725.0) == "12 min 5 s"
    assert spoken_duration(40.2) == "40 s"

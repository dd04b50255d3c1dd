"""The loudness the picture of an edit is drawn from, measured on a generated talk."""

from __future__ import annotations

from pathlib import Path

from nemod.engine.loudness import loudness
from nemod.picture import FLOOR_DB
from nemod.samples import make_talk


def test_pauses_are_far_quieter_than_speech_and_the_length_is_the_sources(tmp_path: Path) -> None:
    talk = make_talk(tmp_path / "talk.mp4", width=160, height=120)
    levels = loudness(talk.path)
    assert abs(levels.duration - talk.duration) < 0.1

    def mean(ranges: tuple[tuple[float, float], ...]) -> float:
        values = [db for a, b in ranges for db in levels.db[round(a / levels.step) + 2: round(b / levels.step) - 2]]
        return sum(values) / len(values)

    assert mean(talk.speech) - mean(talk.pauses) > 20
    assert all(db >= FLOOR_DB for db in levels.db)


def test_a_silent_video_has_no_loudness(tmp_path: Path) -> None:
    assert loudness(tmp_path / "not-read.mp4", has_audio=False).db == ()

"""Long and silent sound: only speech is decoded and transcribed, words keep their source
time, long silence under a pause trim is refused in one line (real ffmpeg, tiny.en)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemod.edits import parse_edit
from nemod.engine.local import LocalEngine
from nemod.engine.vad import SAMPLE_RATE, audio_regions
from nemod.errors import PermanentJobError
from nemod.media import ffmpeg
from nemod.samples import Talk, make_talk


def _silent(path: Path, seconds: int) -> Path:
    ffmpeg.run(["-y", "-f", "lavfi", "-i", f"color=black:s=64x64:r=1:d={seconds}",
                "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", str(seconds),
                "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "8k", str(path)])
    return path


@pytest.fixture(scope="module")
def late_talk(tmp_path_factory: pytest.TempPathFactory) -> Talk:
    """The bundled speech after 330 s of silence: it starts in the second 5-minute chunk."""
    return make_talk(tmp_path_factory.mktemp("late") / "late.mp4", width=64, height=64, fps=1, lead_in=330.0)


def test_audio_regions_hold_exactly_the_asked_stretches(late_talk: Talk) -> None:
    found = list(audio_regions(late_talk.path, [(1.0, 2.0), (299.5, 301.0), (331.0, 331.25)]))
    assert [region for region, _ in found] == [(1.0, 2.0), (299.5, 301.0), (331.0, 331.25)]
    assert [len(samples) for _, samples in found] == [SAMPLE_RATE, SAMPLE_RATE * 3 // 2, SAMPLE_RATE // 4]
    assert float(abs(found[0][1]).max()) == 0.0 and float(abs(found[2][1]).max()) > 0.01


def test_words_after_a_long_silence_keep_their_source_time(engine: LocalEngine, late_talk: Talk) -> None:
    timeline = engine.plan_timeline(late_talk.path, parse_edit("add captions sidecar only"))
    assert timeline.captions is not None
    captions = timeline.captions.cues
    assert captions, "the speech after the silence was not transcribed"
    first_speech = late_talk.speech[0][0]
    assert abs(captions[0].start / 1000 - first_speech) < 0.5
    assert set(timeline.analysis_seconds) == {"vad", "transcribe"}


def test_a_long_silent_recording_is_refused_in_one_line_when_pauses_are_trimmed(
    engine: LocalEngine, tmp_path: Path
) -> None:
    source = _silent(tmp_path / "silent.mp4", 660)
    with pytest.raises(PermanentJobError) as caught:
        engine.plan_timeline(source, parse_edit("trim the pauses, add captions, export 720p"))
    assert str(caught.value) == (
        "silent.mp4 has no speech in its 11 min 0 s of sound: nothing left after trimming the pauses."
    )


def test_a_short_silent_clip_gets_empty_captions_and_valid_sidecars(engine: LocalEngine, tmp_path: Path) -> None:
    source = _silent(tmp_path / "broll.mp4", 20)
    timeline = engine.plan_timeline(source, parse_edit("trim the pauses, add captions, export 720p"))
    assert timeline.duration == 20_000
    assert timeline.captions is not None and timeline.captions.cues == ()
    assert timeline.notes == ("no speech found in broll.mp4: the captions are empty",)
    assert "transcribe" not in timeline.analysis_seconds
    result = engine.render(timeline, {source.name: source}, tmp_path / "work", "broll")
    assert result.video.is_file()
    assert result.captions["srt"].read_text(encoding="utf-8") == ""
    assert result.captions["vtt"].read_text(encoding="utf-8").startswith("WEBVTT")

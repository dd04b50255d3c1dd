"""Caption accuracy per language with Whisper base, against published transcripts, through
the engine (Silero regions, detection, OpenCC) — slow: ``pytest -m slow``. The default
suite checks the same plumbing with tolerant checks (``test_languages.py``); the figures
measured side by side with tiny.en are in README (``bench/languages_bench.py``).

Thresholds (issue 18): WER ≤ 0.15 English, ≤ 0.25 German; CER ≤ 0.20 Chinese in
Simplified characters; the language detected right on each, and on Spanish.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from corpus.transcripts import CHINESE, GERMAN

from nemod.config import EngineSettings
from nemod.edits import Captions, Plan
from nemod.engine.captions import character_error_rate, word_error_rate
from nemod.engine.local import LocalEngine
from nemod.engine.timeline import timeline_cues
from nemod.media import ffmpeg
from nemod.samples import PHRASES, TRANSCRIPT, speech_file

SOURCES = Path(__file__).parents[1] / "corpus" / "sources"
#: FLEURS' normalised transcript of german_fleurs.ogg.

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> LocalEngine:
    return LocalEngine(EngineSettings(preset="ultrafast", whisper_model="base",
                                      model_cache=tmp_path_factory.mktemp("models")))


def _captions(engine: LocalEngine, audio: Path, folder: Path, seconds: float | None = None) -> tuple[str, Mapping[str, Any]]:
    """The caption text the engine writes for ``audio`` (its first ``seconds``) with
    ``language: auto``, and the timeline's language record."""
    clip = folder / f"{audio.stem}.mp4"
    ffmpeg.run(["-y", "-f", "lavfi", "-i", "color=c=black:s=320x240:r=25", *(["-t", str(seconds)] if seconds else []),
                "-i", str(audio), "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-b:a", "128k", str(clip)])
    timeline = engine.plan_timeline(clip, Plan((Captions(burn=False, language="auto"),)))
    assert timeline.language is not None, "no language record"
    return " ".join(" ".join(cue.lines) for cue in timeline_cues(timeline)), timeline.language




def test_english(engine: LocalEngine, tmp_path: Path) -> None:
    text, language = _captions(engine, speech_file(), tmp_path, PHRASES[-1][1])
    assert language["detected"] == "en"
    assert word_error_rate(TRANSCRIPT, text) <= 0.15, text


def test_german(engine: LocalEngine, tmp_path: Path) -> None:
    text, language = _captions(engine, SOURCES / "german_fleurs.ogg", tmp_path)
    assert language["detected"] == "de"
    assert word_error_rate(GERMAN, text) <= 0.25, text


def test_chinese_in_simplified_characters(engine: LocalEngine, tmp_path: Path) -> None:
    text, language = _captions(engine, SOURCES / "babble_zh.wav", tmp_path)
    assert language["detected"] == "zh"
    assert character_error_rate(CHINESE, text) <= 0.20, text


def test_spanish_is_detected(engine: LocalEngine, tmp_path: Path) -> None:
    _, language = _captions(engine, SOURCES / "babble_es.wav", tmp_path)
    assert language["detected"] == "es" and language["language"] == "es"

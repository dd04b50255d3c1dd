"""Captions in the language spoken, on real speech, through the real CLI (``nemod process``),
Whisper base, ffmpeg and libass.

The checks are tolerant of what the model decodes on one CPU: the detected language code,
the share of Chinese characters, Simplified versus Traditional, German function words, a
loose character error rate. Recordings (``tests/corpus/sources/ATTRIBUTION.md`` and
``nemod/data/README.md``): Mandarin (FunASR, MIT), Spanish (LibriVox, public domain), the
German half of the bundled MIT-licence reading (faster-whisper, MIT).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from corpus.transcripts import CHINESE

from nemod.engine.captions import character_error_rate, parse_srt
from nemod.engine.chinese import convert_text
from nemod.languages import has_cjk
from nemod.media import ffmpeg
from nemod.samples import speech_file

SOURCES = Path(__file__).parents[1] / "corpus" / "sources"
MANDARIN = SOURCES / "babble_zh.wav"
SPANISH = SOURCES / "babble_es.wav"
#: The German reading in the bundled recording (after the English one), 12 s of it.
GERMAN_FROM, GERMAN_SECONDS = 29.3, 12.0
GERMAN_WORDS = {"der", "die", "das", "und", "mit", "zu", "wird", "dieses", "diese", "den", "dem"}


def _clip(audio: Path, path: Path, start: float = 0.0, seconds: float | None = None) -> Path:
    """A 640x360 video of ``audio`` (from ``start``, ``seconds`` long) over a plain picture."""
    trim = ["-ss", str(start)] + (["-t", str(seconds)] if seconds else [])
    ffmpeg.run(["-y", "-f", "lavfi", "-i", "color=c=0x203040:s=640x360:r=25", *trim, "-i", str(audio),
                "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-b:a", "96k", str(path)])
    return path


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state folder for the module's configs, so Whisper base is assembled once, not
    once per test (145 MB each)."""
    return tmp_path_factory.mktemp("state")


def _process(tmp_path: Path, clip: Path, rule: str, state: Path) -> tuple[Path, dict[str, Any]]:
    """Run ``nemod process`` on ``clip`` with the one ``rule`` (YAML mapping text) and
    ``state`` as its state folder; return the output folder and the job log."""
    (tmp_path / "inbox").mkdir(exist_ok=True)
    (tmp_path / "nemod.yaml").write_text(textwrap.dedent(f"""\
        state_dir: {state}
        engine: {{preset: ultrafast}}
        watch:
          - path: ./inbox
            output: ./outbox
        rules:
          - """) + rule + "\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "nemod", "process", "-c", "nemod.yaml", str(clip), "-o", "out"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    return out, json.loads((out / f"{clip.stem}.log.json").read_text(encoding="utf-8"))


def _caption_text(out: Path, stem: str) -> str:
    return "".join("".join(cue.lines) for cue in parse_srt((out / f"{stem}.srt").read_text(encoding="utf-8")))


def _cjk_share(text: str) -> float:
    letters = [char for char in text if char.isalnum()]
    return sum(has_cjk(char) for char in letters) / max(1, len(letters))




def test_a_chinese_talk_under_a_chinese_rule_gets_simplified_chinese_captions(tmp_path: Path, state_dir: Path) -> None:
    clip = _clip(MANDARIN, tmp_path / "讲座.mp4")
    out, log = _process(tmp_path, clip, '{name: zh, edit: "加字幕"}', state_dir)
    assert {path.name for path in out.iterdir()} >= {"讲座.mp4", "讲座.srt", "讲座.vtt", "讲座.log.json"}
    assert log["language"]["asked"] == "auto" and log["language"]["detected"] == "zh"
    assert log["language"]["probability"] > 0.5 and log["language"]["model"] == "base"
    text = _caption_text(out, "讲座")
    assert _cjk_share(text) >= 0.9, text
    assert convert_text(text, "t2s") == text, text  # Simplified: nothing left to simplify
    assert character_error_rate(CHINESE, text) <= 0.4, text
    vtt = (out / "讲座.vtt").read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT") and text[:4] in vtt.replace("\n", "")
    assert all(len(line) <= 16 for cue in parse_srt((out / "讲座.srt").read_text(encoding="utf-8")) for line in cue.lines)


def test_traditional_chinese_is_written_when_the_rule_asks(tmp_path: Path, state_dir: Path) -> None:
    clip = _clip(MANDARIN, tmp_path / "talk.mp4")
    _, log = _process(tmp_path, clip, '{name: zh, edit: "add captions sidecar only", language: zh-Hant}', state_dir)
    text = _caption_text(tmp_path / "out", "talk")
    assert log["language"]["language"] == "zh-Hant" and log["language"]["detected"] == "zh"
    assert _cjk_share(text) >= 0.9, text
    assert convert_text(text, "s2t") == text and convert_text(text, "t2s") != text, text


def test_a_german_talk_gets_german_captions_with_language_auto(tmp_path: Path, state_dir: Path) -> None:
    clip = _clip(speech_file(), tmp_path / "vortrag.mp4", GERMAN_FROM, GERMAN_SECONDS)
    out, log = _process(tmp_path, clip, '{name: de, edit: "trim the pauses, add captions", language: auto}', state_dir)
    assert log["language"]["detected"] == "de" and log["language"]["language"] == "de"
    words = {word.strip(".,;:").lower() for word in _caption_text(out, "vortrag").split()}
    assert len(words & GERMAN_WORDS) >= 3, words
    assert not any("sounds like" in note for note in log["draft"]["m"].get("notes", []))


def test_a_rule_saying_english_on_german_speech_records_a_warning(tmp_path: Path, state_dir: Path) -> None:
    clip = _clip(speech_file(), tmp_path / "talk.mp4", GERMAN_FROM, 7.0)
    _, log = _process(tmp_path, clip, '{name: en, edit: "add captions sidecar only", language: en}', state_dir)
    assert log["language"]["asked"] == "en" and log["language"]["detected"] == "de"
    assert log["language"]["model"] == "tiny.en"
    notes = log["draft"]["m"]["notes"]
    assert any("asks for en captions but the speech in talk.mp4 sounds like de" in note for note in notes), notes


def test_spanish_speech_is_detected_as_spanish(tmp_path: Path, state_dir: Path) -> None:
    clip = _clip(SPANISH, tmp_path / "quijote.mp4")
    out, log = _process(tmp_path, clip, '{name: any, edit: "add captions sidecar only in the language spoken"}', state_dir)
    assert log["language"]["detected"] == "es" and log["language"]["language"] == "es"
    assert log["language"]["probability"] > 0.5 and _caption_text(out, "quijote").strip()


@pytest.mark.parametrize("language", ["zh", "de"])
def test_check_passes_on_this_machine_for_other_languages(tmp_path: Path, language: str) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "nemod.yaml").write_text(textwrap.dedent(f"""\
        watch:
          - path: ./inbox
            output: ./outbox
        rules:
          - {{name: r, edit: "add captions", language: {language}}}
        """), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "nemod", "check", "-c", "nemod.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_a_recording_that_changes_language_is_still_trimmed_and_captioned(tmp_path: Path, state_dir: Path) -> None:
    # The end of the English reading, then the German one: one language per file (the
    # first 30 s of speech decide it); pause trimming and captions keep working.
    clip = _clip(speech_file(), tmp_path / "mixed.mp4", 21.0, 15.0)
    out, log = _process(tmp_path, clip, '{name: mix, edit: "trim the pauses, add captions", language: auto}', state_dir)
    assert log["language"]["detected"] in {"en", "de"}
    assert len(parse_srt((out / "mixed.srt").read_text(encoding="utf-8"))) >= 2
    assert log["draft"]["t"][0]["m"]["pauses_cut"] >= 1

"""Listening to a source for the local engine: where the speech is (Silero VAD), which
language it is in, and its timed words (faster-whisper), as one :class:`Analysis`.

The sound is decoded in chunks (:mod:`nemod.engine.vad`), so memory stays flat however
long the recording is; the Whisper models load on the first job that needs them.
"""

from __future__ import annotations

import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from nemod.backends.base import Progress as StepProgress
from nemod.config import EngineSettings
from nemod.engine.captions import Word
from nemod.engine.chinese import convert_words
from nemod.engine.models import MULTILINGUAL_MODEL, is_english_only
from nemod.engine.pauses import SENSITIVITIES
from nemod.engine.smartrender import check_stopped
from nemod.engine.timeline import Analysis
from nemod.engine.transcribe import Transcriber
from nemod.engine.vad import audio_regions, first_speech, speech_in_file, transcription_regions
from nemod.errors import MediaError, PermanentJobError
from nemod.languages import ENGLISH, caption_language, chinese_script, plainly_other, whisper_code

#: Seconds of speech language detection listens to (Whisper's own window).
DETECTION_SECONDS = 30.0


class Listener:
    """The analysis half of :class:`nemod.engine.local.LocalEngine` for ``settings``
    (``whisper_model``, ``threads``, ``model_cache``)."""

    def __init__(self, settings: EngineSettings) -> None:
        #: The model for English captions (``engine.whisper_model``).
        self.transcriber = Transcriber(settings.whisper_model, settings.threads, settings.model_cache)
        # Other languages and detection need a multilingual model: whisper_model when it is
        # one, else the shipped ``base`` (loaded only when a rule asks for it).
        self.multilingual = (
            Transcriber(MULTILINGUAL_MODEL, settings.threads, settings.model_cache)
            if is_english_only(settings.whisper_model) else self.transcriber
        )

    def analyse(
        self,
        source: Path,
        window: tuple[float, float],
        wants_speech: bool,
        wants_words: bool,
        sensitivity: str,
        timings: dict[str, float],
        progress: StepProgress,
        cancel: threading.Event | None,
        *,
        language: str | None = None,
    ) -> Analysis:
        """Speech ranges (always searched: captions transcribe only the speech) and, when
        ``wants_words``, the words of the speech inside ``window`` in the caption ``language``
        (None: English, unchecked; ``auto``: detected); ``sensitivity`` names the pause trim's
        setting. Adds each stage's seconds to ``timings``; raises PermanentJobError when the
        sound cannot be decoded and MediaError when ``cancel`` is set. The sound is decoded in chunks, so memory stays flat however long the
        recording is."""
        started = time.monotonic()
        try:
            found = speech_in_file(source, window=window, sensitivity=SENSITIVITIES[sensitivity])
        except Exception as exc:
            raise PermanentJobError(f"the sound of {source.name} cannot be decoded ({exc}).") from exc
        timings["vad"] = time.monotonic() - started
        check_stopped(cancel)
        progress("analyse", 0.3)
        # The notes speak of the trim; the evidence also times captions (onset_fitted).
        notes = found.notes if wants_speech else ()
        if not wants_words:
            return Analysis(speech=found.speech, notes=notes, evidence=found.evidence)
        regions = transcription_regions(found.speech, window)
        if not regions:
            return Analysis(speech=found.speech if wants_speech else None, words=(),
                            notes=(*notes, f"no speech found in {source.name}: the captions are empty"),
                            evidence=found.evidence, language={"asked": language, "detected": None})
        heard: dict[str, Any] = {"asked": language}
        if language is not None:
            started = time.monotonic()
            detected, probability = self._detect(source, first_speech(found.speech, window, DETECTION_SECONDS))
            timings["detect_language"] = time.monotonic() - started
            heard.update(detected=detected, probability=round(probability, 3))
            used = caption_language(language, detected)
            if plainly_other(used, detected, probability):
                notes = (*notes, f"the rule asks for {used} captions but the speech in {source.name} "
                                 f"sounds like {detected} (probability {probability:.2f})")
        else:
            used = ENGLISH
        transcriber = self.transcriber if used == ENGLISH else self.multilingual
        heard.update(language=used, model=transcriber.setting)
        started = time.monotonic()
        words = self._words(source, regions, progress, cancel, transcriber=transcriber, language=whisper_code(used))
        timings["transcribe"] = time.monotonic() - started
        check_stopped(cancel)
        conversion = chinese_script(used)
        if conversion is not None:
            words = convert_words(words, conversion)
        return Analysis(speech=found.speech if wants_speech else None, words=tuple(words), notes=notes,
                        evidence=found.evidence, language=heard)

    def _detect(self, source: Path, ranges: list[tuple[float, float]]) -> tuple[str, float]:
        """(Whisper language code, probability) of the speech in ``ranges`` of ``source``."""
        import numpy as np

        try:
            with closing(audio_regions(source, ranges)) as decoded:
                samples = np.concatenate([part for _, part in decoded] or [np.zeros(0, np.float32)])
        except Exception as exc:
            raise PermanentJobError(f"the sound of {source.name} cannot be decoded ({exc}).") from exc
        return self.multilingual.detect(samples)

    def _words(
        self,
        source: Path,
        regions: list[tuple[float, float]],
        progress: StepProgress,
        cancel: threading.Event | None,
        *,
        transcriber: Transcriber | None = None,
        language: str | None = None,
    ) -> list[Word]:
        """Timed words (source seconds) of ``regions``, each decoded and transcribed alone by
        ``transcriber`` (default: the English one) in ``language`` (a Whisper code)."""
        transcriber = transcriber or self.transcriber
        total = max(sum(end - start for start, end in regions), 1e-6)
        done = 0.0
        words: list[Word] = []
        try:
            with closing(audio_regions(source, regions)) as decoded:  # closes the file on errors too
                for (start, end), samples in decoded:
                    check_stopped(cancel)

                    def report(fraction: float, done: float = done, length: float = end - start) -> None:
                        progress("transcribe", min(1.0, (done + fraction * length) / total))

                    words += [Word(word.start + start, word.end + start, word.text)
                              for word in transcriber.words(samples, language=language,
                                                            on_progress=report, cancel=cancel)]
                    done += end - start
        except (PermanentJobError, MediaError):
            raise
        except Exception as exc:
            raise PermanentJobError(f"the sound of {source.name} cannot be decoded ({exc}).") from exc
        return words

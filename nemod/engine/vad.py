"""Finding speech and the pauses between it.

:func:`speech_ranges` runs Silero VAD (the ONNX model bundled with faster-whisper,
no torch) over 16 kHz mono samples; :func:`kept_ranges` is the pure rule that turns
speech into the stretches of the source a pause trim keeps.

Defaults (see ``docs/engine.md``): a silence is cut when it is at least
``min_pause`` = 0.5 s long, and ``padding`` = 0.2 s of it is kept next to the speech
on each side — auto-editor's default margin — so a cut pause leaves a 0.4 s breath.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SAMPLE_RATE = 16_000
Range = tuple[float, float]


def speech_ranges(samples: Any, sample_rate: int = SAMPLE_RATE) -> list[Range]:
    """Speech (start, end) seconds in ``samples`` (float32 mono numpy array at 16 kHz).

    Silero's own padding and minimum-silence smoothing are turned down to nearly nothing:
    :func:`kept_ranges` applies the user's ``min_pause`` and ``padding`` instead.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if len(samples) < sample_rate // 10:
        return []
    options = VadOptions(
        threshold=0.5, min_speech_duration_ms=120, min_silence_duration_ms=100, speech_pad_ms=30
    )
    chunks = get_speech_timestamps(samples, options, sampling_rate=sample_rate)
    return [(chunk["start"] / sample_rate, chunk["end"] / sample_rate) for chunk in chunks]


def kept_ranges(
    speech: Sequence[Range], window: Range, *, min_pause: float, padding: float
) -> tuple[list[Range], int]:
    """The parts of ``window`` (source seconds) kept by a pause trim, and how many pauses
    were cut.

    Silences of at least ``min_pause`` — between speech, and before the first or after the
    last word — are cut down to ``padding`` on each side of the speech. With no speech at
    all the whole window is kept (a silent clip is not cut to nothing).
    """
    lo, hi = window
    inside = sorted((max(a, lo), min(b, hi)) for a, b in speech if b > lo and a < hi)
    if not inside:
        return [window], 0
    merged: list[list[float]] = [list(inside[0])]
    for start, end in inside[1:]:
        if start - merged[-1][1] < min_pause:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    kept: list[list[float]] = []
    for start, end in merged:
        lead = start - lo if not kept else 0
        a = lo if (not kept and lead < min_pause) else max(lo, start - padding)
        b = min(hi, end + padding)
        if kept and a <= kept[-1][1]:
            kept[-1][1] = max(kept[-1][1], b)
        else:
            kept.append([a, b])
    if hi - merged[-1][1] < min_pause:
        kept[-1][1] = hi
    cuts = len(kept) - 1 + (kept[0][0] > lo) + (kept[-1][1] < hi)
    return [(a, b) for a, b in kept], cuts

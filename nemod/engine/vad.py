"""Finding speech and the pauses between it.

:func:`speech_ranges` runs Silero VAD (the ONNX model bundled with faster-whisper,
no torch) over 16 kHz mono samples; :func:`kept_ranges` is the pure rule that turns
speech into the stretches of the source a pause trim keeps.

Defaults (see ``docs/engine.md``): a silence is cut when it is at least
``min_pause`` = 0.5 s long, and ``padding`` = 0.2 s of it is kept next to the speech
on each side — auto-editor's default margin — so a cut pause leaves a 0.4 s breath.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

SAMPLE_RATE = 16_000
#: Audio is decoded and searched for speech in chunks of this many seconds, so memory stays
#: flat however long the recording is.
CHUNK_SECONDS = 300.0
Range = tuple[float, float]


def audio_chunks(path: Path, seconds: float = CHUNK_SECONDS) -> Iterator[Any]:
    """16 kHz mono float32 numpy chunks of the first sound track of ``path``, in order.

    Raises av's errors for unreadable sound (the caller words them).
    """
    import av
    import numpy as np

    size = int(seconds * SAMPLE_RATE)
    pending: list[Any] = []
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        frames = (frame for packet in container.demux(stream) for frame in packet.decode())
        for frame in _with_flush(frames):
            for out in resampler.resample(frame):
                array = out.to_ndarray().reshape(-1)
                pending.append(array)
                count += len(array)
            while count >= size:
                joined = np.concatenate(pending)
                yield joined[:size].astype(np.float32) / 32768.0
                pending, count = [joined[size:]], len(joined) - size
    if count:
        yield np.concatenate(pending).astype(np.float32) / 32768.0


def _with_flush(frames: Iterator[Any]) -> Iterator[Any]:
    yield from frames
    yield None  # flushes the resampler


def speech_in_file(path: Path, seconds: float = CHUNK_SECONDS) -> list[Range]:
    """Speech (start, end) seconds in the first sound track of ``path``, decoded and searched
    chunk by chunk."""
    return speech_in_chunks(audio_chunks(path, seconds))


def speech_in_samples(samples: Any, seconds: float = CHUNK_SECONDS) -> list[Range]:
    """Speech (start, end) seconds in already decoded 16 kHz samples, searched chunk by chunk."""
    size = int(seconds * SAMPLE_RATE)
    return speech_in_chunks(samples[index: index + size] for index in range(0, len(samples), size))


def speech_in_chunks(chunks: Iterator[Any]) -> list[Range]:
    """Speech (start, end) seconds over consecutive chunks of 16 kHz samples; ranges meeting
    at a chunk boundary are joined."""
    found: list[Range] = []
    offset = 0.0
    for chunk in chunks:
        for chunk_start, chunk_end in speech_ranges(chunk):
            start, end = chunk_start + offset, chunk_end + offset
            if found and start - found[-1][1] < 0.05:
                found[-1] = (found[-1][0], end)
            else:
                found.append((start, end))
        offset += len(chunk) / SAMPLE_RATE
    return found


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

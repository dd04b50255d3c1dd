"""Finding speech and the pauses between it.

:func:`speech_in_file` decodes a recording in chunks and, per chunk, measures Silero VAD's
speech probability (the ONNX model bundled with faster-whisper, no torch) and the
speech-band level of every 32 ms frame (:func:`chunk_signals`); the pure
:func:`nemod.engine.pauses.find_speech` decides from both where the speech is, and
:func:`kept_ranges` is the pure rule that turns speech into the stretches of the source a
pause trim keeps.

Defaults (see ``docs/engine.md``): a silence is cut when it is at least
``min_pause`` = 0.5 s long, and ``padding`` = 0.2 s of it is kept next to the speech
on each side — auto-editor's default margin — so a cut pause leaves a 0.4 s breath.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemod.engine.pauses import (
    DEFAULT_SENSITIVITY,
    FRAME,
    SENSITIVITIES,
    SILENT_LEVEL,
    Evidence,
    Sensitivity,
    find_speech,
)
from nemod.timeline import clock

SAMPLE_RATE = 16_000
FRAME_SAMPLES = round(FRAME * SAMPLE_RATE)
#: Audio is decoded and searched for speech in chunks of this many seconds, so memory stays
#: flat however long the recording is.
CHUNK_SECONDS = 300.0  # a whole number of analysis frames (9,375), so frame times never drift
#: A chunk whose loudest sample is below this (about -70 dBFS) is digital silence: it holds
#: no speech, and skipping Silero on it makes hours of silent sound quick to search.
SILENCE_PEAK = 10 ** (-70 / 20)
#: Speech closer than this is transcribed as one region (Whisper reads better with context).
JOIN_GAP = 2.0
#: Sound kept around each transcribed region, so no word is cut at its edges.
REGION_PADDING = 0.5
Range = tuple[float, float]


def audio_chunks(path: Path, seconds: float = CHUNK_SECONDS) -> Generator[Any, None, None]:
    """16 kHz mono float32 numpy chunks of the first sound track of ``path``, in order.

    Raises av's errors for unreadable sound (the caller words them).
    """
    import av
    import numpy as np

    size = _whole_frames(seconds)
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


@dataclass(frozen=True)
class SpeechFound:
    """Speech found in a recording: ``speech`` (start, end) source seconds, ``notes`` for the
    job log (a loud background, a stretch left whole), and the per-frame ``evidence`` it was
    decided on (:class:`nemod.engine.pauses.Evidence`), from which each cut is explained."""

    speech: tuple[Range, ...] = ()
    notes: tuple[str, ...] = ()
    evidence: Evidence | None = None


def speech_in_file(
    path: Path, seconds: float = CHUNK_SECONDS, window: Range | None = None,
    sensitivity: Sensitivity = SENSITIVITIES[DEFAULT_SENSITIVITY],
) -> SpeechFound:
    """Speech in the first sound track of ``path``, decoded and searched chunk by chunk;
    with ``window`` only the chunks overlapping it are searched and decoding stops at its end.

    Raises av's errors for unreadable sound (the caller words them).
    """
    chunks = audio_chunks(path, seconds)
    try:
        return speech_in_chunks(chunks, window, sensitivity)
    finally:
        chunks.close()


def speech_in_samples(samples: Any, seconds: float = CHUNK_SECONDS,
                      sensitivity: Sensitivity = SENSITIVITIES[DEFAULT_SENSITIVITY]) -> SpeechFound:
    """Speech in already decoded 16 kHz samples, searched chunk by chunk."""
    size = _whole_frames(seconds)
    return speech_in_chunks((samples[index: index + size] for index in range(0, len(samples), size)),
                            sensitivity=sensitivity)


def speech_in_chunks(
    chunks: Iterator[Any], window: Range | None = None,
    sensitivity: Sensitivity = SENSITIVITIES[DEFAULT_SENSITIVITY],
) -> SpeechFound:
    """Speech over consecutive chunks of 16 kHz samples; ranges meeting at a chunk boundary
    are joined. Chunks of digital silence and chunks outside ``window`` are not searched;
    the chunks after ``window`` are not read. A chunk whose speech stands too little above
    its background to trim safely is returned whole as speech, with a note saying why."""
    import numpy as np

    found: list[Range] = []
    notes: list[str] = []
    probs: list[Any] = []
    levels: list[Any] = []
    offset = 0.0
    lo, hi = window if window is not None else (0.0, float("inf"))
    for chunk in chunks:
        if offset >= hi:
            break
        length = len(chunk) / SAMPLE_RATE
        frames = int(np.ceil(len(chunk) / FRAME_SAMPLES))
        if offset + length <= lo or not len(chunk) or float(np.max(np.abs(chunk))) < SILENCE_PEAK:
            probs.append(np.zeros(frames, np.float32))
            levels.append(np.full(frames, SILENT_LEVEL, np.float32))
            offset += length
            continue
        chunk_probs, chunk_levels, chunk_flatness = chunk_signals(chunk)
        probs.append(chunk_probs[:frames])
        levels.append(chunk_levels[:frames])
        found_map = find_speech(chunk_probs, chunk_levels, sensitivity, offset, flatness=chunk_flatness)
        ranges: Sequence[Range] = found_map.speech
        if found_map.refused:
            ranges = [(offset, offset + length)]
            notes.append(f"{clock(offset, 0)}–{clock(offset + length, 0)} kept whole: {found_map.refused}")
        elif found_map.padding:
            ranges = [(max(offset, a - found_map.padding), min(offset + length, b + found_map.padding))
                      for a, b in ranges]
        notes += [f"{clock(offset, 0)}–{clock(offset + length, 0)}: {note}" for note in found_map.notes]
        for start, end in ranges:
            if found and start - found[-1][1] < 0.05:
                found[-1] = (found[-1][0], max(found[-1][1], end))
            else:
                found.append((start, end))
        offset += length
    evidence = Evidence(np.concatenate(probs), np.concatenate(levels)) if probs else None
    return SpeechFound(tuple(found), tuple(notes), evidence)


def _whole_frames(seconds: float) -> int:
    """Samples in a chunk of about ``seconds``: a whole number of analysis frames, so the
    frame times of consecutive chunks never drift."""
    return max(1, int(seconds * SAMPLE_RATE) // FRAME_SAMPLES) * FRAME_SAMPLES


def chunk_signals(samples: Any) -> tuple[Any, Any, Any]:
    """Silero's speech probability, the speech-band (300–3400 Hz) level in dB and that band's
    spectral flatness (0: a pure tone or voiced sound, 1: white noise such as a breath) for
    each :data:`nemod.engine.pauses.FRAME` of ``samples`` (float32 mono, 16 kHz)."""
    import numpy as np
    from faster_whisper.vad import get_vad_model

    samples = np.asarray(samples, dtype=np.float32)
    padded = np.pad(samples, (0, (-len(samples)) % FRAME_SAMPLES))
    if not len(padded):
        return np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32)
    probs = np.asarray(get_vad_model()(padded), dtype=np.float32).reshape(-1)
    frames = padded.reshape(-1, FRAME_SAMPLES)
    freqs = np.fft.rfftfreq(FRAME_SAMPLES, 1 / SAMPLE_RATE)
    band = (freqs >= 300) & (freqs <= 3400)
    window = np.hanning(FRAME_SAMPLES).astype(np.float32)
    levels = np.empty(len(frames), np.float32)
    flatness = np.empty(len(frames), np.float32)
    for first in range(0, len(frames), 4096):  # bounded memory on 5-minute chunks
        spectrum = np.abs(np.fft.rfft(frames[first: first + 4096] * window, axis=1)[:, band]) ** 2 + 1e-14
        levels[first: first + 4096] = 10 * np.log10(spectrum.sum(axis=1) / FRAME_SAMPLES + 1e-12)
        flatness[first: first + 4096] = np.exp(np.mean(np.log(spectrum), axis=1)) / np.mean(spectrum, axis=1)
    return probs, levels, flatness


def transcription_regions(
    speech: Sequence[Range],
    window: Range,
    *,
    join_gap: float = JOIN_GAP,
    padding: float = REGION_PADDING,
    longest: float = CHUNK_SECONDS,
) -> list[Range]:
    """The stretches of the source (seconds) worth transcribing: the ``speech`` inside
    ``window``, padded by ``padding`` on each side (within the window), joined when they lie
    less than ``join_gap`` apart, each at most ``longest`` seconds (a longer run of speech is
    split), so the samples of one region are all that is ever held in memory. Pure.
    """
    lo, hi = window
    regions: list[list[float]] = []
    for start, end in sorted(speech):
        a, b = max(lo, start - padding), min(hi, end + padding)
        if b <= a:
            continue
        if regions and a - regions[-1][1] < join_gap and b - regions[-1][0] <= longest:
            regions[-1][1] = max(regions[-1][1], b)
            continue
        if regions and a < regions[-1][1]:
            a = regions[-1][1]  # overlaps a full region: carry on after it
        while b - a > longest:
            regions.append([a, a + longest])
            a += longest
        if b > a:
            regions.append([a, b])
    return [(a, b) for a, b in regions]


def audio_regions(
    path: Path, regions: Sequence[Range], seconds: float = CHUNK_SECONDS
) -> Generator[tuple[Range, Any], None, None]:
    """(region, 16 kHz float32 samples) for each of ``regions`` (sorted, not overlapping,
    source seconds) of the first sound track of ``path``, decoded chunk by chunk; only the
    current region's samples and one chunk are held, and decoding stops after the last region.

    Raises av's errors for unreadable sound (the caller words them).
    """
    import numpy as np

    if not regions:
        return
    index, parts = 0, []
    chunks = audio_chunks(path, seconds)
    try:
        offset = 0
        for chunk in chunks:
            chunk_end = offset + len(chunk)
            while index < len(regions):
                first = max(offset, round(regions[index][0] * SAMPLE_RATE))
                last = min(chunk_end, round(regions[index][1] * SAMPLE_RATE))
                if last > first:
                    parts.append(chunk[first - offset: last - offset])
                if round(regions[index][1] * SAMPLE_RATE) > chunk_end:
                    break  # the region goes on in the next chunk
                yield regions[index], (np.concatenate(parts) if parts else np.zeros(0, np.float32))
                index, parts = index + 1, []
            if index == len(regions):
                return
            offset = chunk_end
        while index < len(regions):  # regions past the end of the sound (short track)
            yield regions[index], (np.concatenate(parts) if parts else np.zeros(0, np.float32))
            index, parts = index + 1, []
    finally:
        chunks.close()


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


def first_speech(speech: Sequence[Range], window: Range, seconds: float = 30.0) -> list[Range]:
    """The first ``seconds`` of ``speech`` inside ``window`` (source seconds), as ranges: what
    language detection listens to, so leading silence or music never decides it."""
    taken: list[Range] = []
    left = seconds
    for speech_start, speech_end in speech:
        start, end = max(speech_start, window[0]), min(speech_end, window[1])
        if end <= start:
            continue
        taken.append((start, min(end, start + left)))
        left -= taken[-1][1] - start
        if left <= 1e-6:
            break
    return taken

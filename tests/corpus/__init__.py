"""The pause-trim corpus: real speech, made harder the ways real recordings are.

Each *base* is a real recording (``sources/``, see ``sources/ATTRIBUTION.md``) whose
speech was located once on the clean recording (``truth.json``, written by
``make_truth.py``: level-based spans on the clean sound, with the words Whisper heard
in them). :func:`build` makes a corpus clip from a base, deterministically:

1. every gap between the base's speech spans (and breaths) gets a pause of the recording's **own room
   tone** inserted (its quietest stretch, looped with crossfades), of the lengths in
   :data:`PAUSES`, cycled;
2. a *variant* is applied: ``clean``; a bed mixed under the whole clip (``babble``: real
   speech of other people, ``street``: traffic-like rumble, ``music``: chords and drums)
   at 20, 10 or 5 dB SNR; ``telephone`` (8 kHz, 300–3400 Hz, µ-law); ``reverb`` (a
   distant speaker in a reverberant room, RT60 0.8 s); ``quiet`` (speech at −35 dBFS over
   a preamp's hiss).

The truth moves with the clip (the speech spans and words, shifted by the inserted
pauses) and never comes from nemod's own detector, so what the engine cuts can be
checked against where the words really are: :func:`lost_words` and :func:`dead_air`.
"""

from __future__ import annotations

import itertools
import json
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from nemod.timeline import Timeline

HERE = Path(__file__).parent
SOURCES = HERE / "sources"
RATE = 16_000
#: Lengths of the room-tone pauses inserted into the gaps of a base, cycled (seconds).
PAUSES = (1.0, 0.6, 2.0, 1.4, 3.0, 0.8)
BEDS = ("babble", "street", "music")
SNRS = (20, 10, 5)
#: Every variant of the corpus, by name.
VARIANTS = ("clean", *(f"{bed}{snr}" for bed in BEDS for snr in SNRS), "telephone", "reverb", "quiet")
#: Variants recorded in a quiet room (no bed): a pause there must be trimmed hard.
QUIET_ROOM = ("clean", "telephone", "quiet")
#: Range = (start, end) seconds.
Range = tuple[float, float]


@dataclass(frozen=True)
class Word:
    """A word Whisper heard in the clean base, and the part of it that is voiced."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Clip:
    """A corpus clip on disk: its sound file, sample rate, duration, and the truth moved onto
    its timeline: speech spans, words (voiced parts) and the pauses between the spans."""

    name: str
    path: Path
    duration: float
    speech: tuple[Range, ...]
    words: tuple[Word, ...]
    pauses: tuple[Range, ...]


@cache
def truth() -> dict[str, dict[str, object]]:
    """``truth.json``: per base, its source file, window, speech spans and words."""
    data: dict[str, dict[str, object]] = json.loads((HERE / "truth.json").read_text(encoding="utf-8"))
    return data


def bases() -> tuple[str, ...]:
    """The names of the bases in ``truth.json``."""
    return tuple(truth())


@cache
def decode(path: Path, start: float = 0.0, end: float | None = None) -> np.ndarray:
    """16 kHz mono float32 samples of ``path`` (any format ffmpeg reads), from ``start`` to ``end``."""
    from faster_whisper.audio import decode_audio

    samples = decode_audio(str(path), sampling_rate=RATE)
    last = len(samples) if end is None else round(end * RATE)
    return np.asarray(samples[round(start * RATE): last], dtype=np.float32)


def source_path(name: str) -> Path:
    """The sound file of base ``name`` (the bundled MIT-licence reading lives in the package)."""
    entry = truth()[name]
    if entry["source"] == "nemod:speech":
        from nemod.samples import speech_file

        return speech_file()
    return SOURCES / str(entry["source"])


def _room_tone(samples: np.ndarray, speech: Sequence[Range], seconds: float) -> np.ndarray:
    """``seconds`` of the recording's quietest stretch outside its speech (0.4 s, or 0.15 s
    where its gaps are short), looped with crossfades so it does not click."""
    for size_s, margin in ((0.4, 0.05), (0.15, 0.02)):
        size, step = int(size_s * RATE), int(0.01 * RATE)
        candidates = [
            (float(np.mean(samples[first: first + size] ** 2)), first)
            for first in range(0, len(samples) - size, step)
            if not any(s < (first + size) / RATE + margin and e > first / RATE - margin for s, e in speech)
        ]
        if candidates:
            break
    else:
        raise ValueError("the recording has no pause to take its room tone from")
    best = min(candidates)[1]
    piece = samples[best: best + size].copy()
    fade = size // 4
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    out = piece.copy()
    while len(out) < seconds * RATE:
        joined = out[-fade:] * ramp[::-1] + piece[:fade] * ramp
        out = np.concatenate([out[:-fade], joined, piece[fade:]])
    return out[: round(seconds * RATE)]


def _with_pauses(name: str) -> tuple[np.ndarray, list[Range], list[Word], list[Range]]:
    """The clean base with room-tone pauses inserted into each of its gaps, and the truth
    (speech spans, words, pauses) on the new timeline."""
    entry = truth()[name]
    start, end = entry["window"]  # type: ignore[misc]
    samples = decode(source_path(name), float(start), float(end))
    speech: list[Range] = [(float(a), float(b)) for a, b in entry["speech"]]  # type: ignore[attr-defined]
    breaths: list[Range] = [(float(a), float(b)) for a, b in entry["breaths"]]  # type: ignore[attr-defined]
    sounds = sorted(speech + breaths)
    words = [Word(float(a), float(b), str(t)) for a, b, t in entry["words"]]  # type: ignore[attr-defined]
    pieces, shifts = [], []  # shifts: (source time, seconds inserted before it)
    cursor, inserted = 0, 0.0
    for index, ((_, gap_start), (gap_end, _)) in enumerate(itertools.pairwise(sounds)):
        middle = round((gap_start + gap_end) / 2 * RATE)
        pause = PAUSES[index % len(PAUSES)]
        pieces += [samples[cursor:middle], _room_tone(samples, sounds, pause)]
        cursor = middle
        inserted += pause
        shifts.append((middle / RATE, inserted))
    pieces.append(samples[cursor:])

    def moved(t: float) -> float:
        return t + max((shift for at, shift in shifts if at <= t), default=0.0)

    new_speech = [(moved(a), moved(b)) for a, b in speech]
    new_words = [Word(moved(w.start), moved(w.end), w.text) for w in words]
    total = sum(len(p) for p in pieces) / RATE
    edges = [0.0, *(t for span in new_speech for t in span), total]
    pauses = [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2) if edges[i + 1] > edges[i]]
    return np.concatenate(pieces), new_speech, new_words, pauses


def _active_rms(samples: np.ndarray, speech: Sequence[Range]) -> float:
    parts = [samples[round(a * RATE): round(b * RATE)] for a, b in speech]
    joined = np.concatenate(parts)
    return float(np.sqrt(np.mean(joined**2)))


def _loop(samples: np.ndarray, length: int, offset: int) -> np.ndarray:
    reps = -(-(length + offset) // len(samples))
    return np.tile(samples, reps)[offset: offset + length]


def _bed(kind: str, length: int, rng: np.random.Generator) -> np.ndarray:
    """``length`` samples of a noise bed, at unit RMS."""
    t = np.arange(length) / RATE
    if kind == "babble":  # six real talkers at once: a meeting (four people), Spanish, Chinese
        talkers = [decode(SOURCES / "babble_meeting.flac"), decode(SOURCES / "babble_es.wav"),
                   decode(SOURCES / "babble_zh.wav")]
        bed = np.zeros(length, np.float32)
        for index in range(6):
            voice = talkers[index % len(talkers)]
            voice = voice / (np.sqrt(np.mean(voice**2)) + 1e-9)
            bed += _loop(voice, length, int(rng.integers(0, len(voice))))
    elif kind == "street":  # low rumble (brown noise), hiss, and cars passing every ~7 s
        brown = np.cumsum(rng.standard_normal(length)).astype(np.float32)
        brown -= np.convolve(brown, np.ones(800) / 800, mode="same")
        hiss = rng.standard_normal(length).astype(np.float32)
        passing = 0.6 + 0.4 * np.sin(2 * np.pi * t / 7.0) ** 2
        bed = (brown / (np.std(brown) + 1e-9) + 0.3 * hiss) * passing
    elif kind == "music":  # a I–vi–IV–V chord loop with harmonics, a kick and a hi-hat
        roots = (261.63, 220.0, 174.61, 196.0)
        bed = np.zeros(length, np.float32)
        bar = (t // 2.0).astype(int) % 4
        for step, root in enumerate(roots):
            on = bar == step
            for ratio in (1.0, 1.25, 1.5):
                for harmonic in (1, 2, 3):
                    bed += on * np.sin(2 * np.pi * root * ratio * harmonic * t) / harmonic
        beat = t % 0.5
        bed += 3.0 * np.sin(2 * np.pi * 55 * t) * np.exp(-beat * 30)
        hat = (t % 0.25) < 0.03
        bed += 0.8 * hat * rng.standard_normal(length)
    else:
        raise ValueError(kind)
    bed = bed.astype(np.float32)
    return bed / (np.sqrt(np.mean(bed**2)) + 1e-9)


def _band(samples: np.ndarray, low: float, high: float) -> np.ndarray:
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return np.fft.irfft(spectrum, len(samples)).astype(np.float32)


def _reverb(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A distant speaker in a reverberant room: RT60 0.8 s, reverberant energy 3 dB above the direct sound."""
    length = int(0.9 * RATE)
    t = np.arange(length) / RATE
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / 0.8)
    tail[: int(0.01 * RATE)] = 0  # the first reflections arrive after 10 ms
    tail *= np.sqrt(2.0 / np.sum(tail**2))
    impulse = tail.astype(np.float64)
    impulse[0] = 1.0
    size = len(samples) + length
    wet = np.fft.irfft(np.fft.rfft(samples, size) * np.fft.rfft(impulse, size), size)[: len(samples)]
    return wet.astype(np.float32)


def variant(name: str, kind: str) -> tuple[np.ndarray, int, list[Range], list[Word], list[Range]]:
    """The samples and sample rate of base ``name`` in variant ``kind``, with the truth."""
    samples, speech, words, pauses = _with_pauses(name)
    rng = np.random.default_rng(_seed(name, kind))
    level = _active_rms(samples, speech)
    rate = RATE
    if kind == "clean":
        out = samples
    elif kind.rstrip("0123456789") in BEDS:
        bed_kind = kind.rstrip("0123456789")
        snr = float(kind[len(bed_kind):])
        out = samples + _bed(bed_kind, len(samples), rng) * level / 10 ** (snr / 20)
    elif kind == "telephone":
        banded = _band(samples, 300, 3400)[::2]  # nothing above 4 kHz is left: 8 kHz is exact
        peak = np.max(np.abs(banded)) + 1e-9
        mu = 255.0
        x = banded / peak
        coded = np.round(np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) * 127) / 127
        out = (np.sign(coded) * np.expm1(np.abs(coded) * np.log1p(mu)) / mu * peak).astype(np.float32)
        rate = 8_000
    elif kind == "reverb":
        out = _reverb(samples, rng)
        out *= level / _active_rms(out, speech)
    elif kind == "quiet":
        out = samples * (10 ** (-35 / 20) / level) + rng.standard_normal(len(samples)).astype(np.float32) * 10 ** (-72 / 20)
    else:
        raise ValueError(f"unknown corpus variant {kind!r}")
    peak = float(np.max(np.abs(out)))
    if peak > 0.99:
        out = out * (0.99 / peak)
    return out.astype(np.float32), rate, speech, words, pauses


def _seed(name: str, kind: str) -> int:
    return sum((index + 1) * ord(char) for index, char in enumerate(f"{name}/{kind}"))


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Write mono float samples as 16-bit PCM WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def build(name: str, kind: str, folder: Path) -> Clip:
    """Write ``<folder>/<name>-<kind>.wav`` and return it with its truth."""
    samples, rate, speech, words, pauses = variant(name, kind)
    path = write_wav(folder / f"{name}-{kind}.wav", samples, rate)
    return Clip(f"{name}-{kind}", path, len(samples) / rate, tuple(speech), tuple(words), tuple(pauses))


def _cut(kept: Sequence[Range], a: float, b: float) -> float:
    """Seconds of [a, b] not inside ``kept``."""
    inside = sum(max(0.0, min(b, e) - max(a, s)) for s, e in kept)
    return (b - a) - inside


def voiced(clip: Clip, word: Word) -> list[Range]:
    """The parts of ``word`` inside the clip's speech spans (Whisper's word times are loose;
    the level-based spans say where the sound of the word is)."""
    return [(max(word.start, a), min(word.end, b)) for a, b in clip.speech if a < word.end and b > word.start]


def lost_words(clip: Clip, kept: Sequence[Range], tolerance: float = 0.01) -> list[Word]:
    """The words of ``clip`` that lose more than ``tolerance`` seconds of their voiced sound
    to the cuts (``kept``: the source ranges an edit keeps)."""
    return [w for w in clip.words if sum(_cut(kept, a, b) for a, b in voiced(clip, w)) > tolerance]


def lost_speech(clip: Clip, kept: Sequence[Range]) -> float:
    """Seconds of the clip's speech spans that ``kept`` leaves out."""
    return sum(_cut(kept, a, b) for a, b in clip.speech)


def dead_air(clip: Clip, kept: Sequence[Range]) -> float:
    """Seconds of the clip's pauses (between speech spans, and before and after) that ``kept`` keeps."""
    return sum((b - a) - _cut(kept, a, b) for a, b in clip.pauses)


def nemod_kept(clip: Clip, edit: str = "trim the pauses", fps: float = 30.0) -> tuple[list[Range], Timeline]:
    """The source ranges nemod's local engine keeps of ``clip`` for ``edit`` (as rendered:
    the timeline's video clips), and the timeline itself (its ``video.trim`` has the cuts
    and their reasons, its ``notes`` what the analysis noticed).

    Runs the engine's own analysis (Silero + level, chunked decoding) and timeline builder
    on the clip's sound; the picture does not matter to a pause trim, so none is made.
    """
    from nemod.edits import TrimPauses, parse_edit
    from nemod.engine.pauses import SENSITIVITIES
    from nemod.engine.timeline import Analysis, build_timeline
    from nemod.engine.vad import speech_in_file
    from nemod.media.probe import MediaInfo

    plan = parse_edit(edit)
    trim = plan.find(TrimPauses)
    found = speech_in_file(clip.path, sensitivity=SENSITIVITIES[trim.sensitivity])
    media = MediaInfo(clip.path, clip.duration, 320, 240, fps, 0, 1, "h264", True)
    timeline = build_timeline(plan, media, Analysis(speech=found.speech, notes=found.notes, evidence=found.evidence))
    assert timeline.video is not None
    kept = [(clip.start / 1000, clip.end / 1000) for clip in timeline.video.clips]
    return kept, timeline


#: Frame index pictures: the index in binary, one block per bit, white for 1.
_BITS, _BLOCK = 14, 16


def with_frame_index(clip: Clip, folder: Path, fps: int = 30) -> Path:
    """``<folder>/<clip>.mp4``: the clip's sound (AAC) under a picture whose every frame shows
    its own index in binary (:func:`frame_indices` reads it back), so a render can be mapped
    back to the source frames it took."""
    import av

    from nemod.media import ffmpeg

    silent = folder / f"{clip.name}.picture.mp4"
    count = int(np.ceil(clip.duration * fps))
    with av.open(str(silent), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = _BITS * _BLOCK, 2 * _BLOCK, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "10"}
        for index in range(count):
            bits = (index >> np.arange(_BITS)) & 1
            row = np.repeat(bits * 255, _BLOCK).astype(np.uint8)
            gray = np.tile(row, (2 * _BLOCK, 1))
            frame = av.VideoFrame.from_ndarray(np.stack([gray] * 3, axis=-1), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    path = folder / f"{clip.name}.mp4"
    ffmpeg.run(["-y", "-i", str(silent), "-i", str(clip.path), "-map", "0:v", "-map", "1:a", "-c:v", "copy",
                "-c:a", "aac", "-b:a", "96k", "-shortest", str(path)])
    return path


def frame_indices(path: Path) -> list[int]:
    """The source frame index drawn into each frame of ``path`` (any scale of the picture)."""
    import av

    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            gray = frame.to_ndarray(format="gray").astype(np.float64)
            height, width = gray.shape
            middle = gray[height // 4: 3 * height // 4]
            edges = np.linspace(0, width, _BITS + 1)
            bits = [middle[:, int(edges[i] + (edges[1] - edges[0]) * 0.25): int(edges[i + 1] - (edges[1] - edges[0]) * 0.25)].mean() > 128
                    for i in range(_BITS)]
            out.append(sum(1 << i for i, bit in enumerate(bits) if bit))
    return out

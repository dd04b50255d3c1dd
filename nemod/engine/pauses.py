"""Where the speech is, from two signals measured against the recording itself. Pure.

A pause trim must never cut a word, on the recordings people make: a lecture hall, a
phone line, a café, music under the voice. One detector alone fails somewhere — Silero's
speech probability sits at 0.2–0.4 on telephone-band speech and near 0 on speech under
loud music; a level gate cannot tell a word from a drum hit — so :func:`find_speech`
combines, per 32 ms frame (Silero's window at 16 kHz):

- **Silero with hysteresis**, its thresholds placed between the probability it gives the
  recording's quietest frames (its "silence") and its loudest (its "speech"): a stretch
  enters speech above ``enter`` and stays speech down to ``leave``;
- **a level gate against the room tone**: the speech-band (300–3400 Hz) level, smoothed
  over ~0.4 s, compared with the recording's own noise floor and how much that floor
  moves; a stretch louder than the floor by more than its own movement is speech if
  Silero gives it any support at all (a rustle, a drum hit or a breath with no speech-like
  frame is not);
- where Silero cannot tell the bed from speech (babble, whose "silence" already looks like
  speech), only stretches both signals call speech count.

Each speech stretch is then widened while the level stays above the floor (soft onsets,
word endings). A recording whose speech stands only a few dB above its background cannot
be trimmed safely: it is left whole, and the reason is given (see :class:`SpeechMap`).
:data:`SENSITIVITIES` holds the three settings a rule can choose.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nemod.edits import TrimPauses

#: Seconds per analysis frame: Silero's window of 512 samples at 16 kHz.
FRAME = 512 / 16_000
#: The level (dB) given to frames of digital silence, which are not measured.
SILENT_LEVEL = -120.0
Range = tuple[float, float]


@dataclass(frozen=True)
class Evidence:
    """The two signals of a whole recording, one value per :data:`FRAME` from its start:
    Silero's speech probability and the speech-band level (dB). Numpy arrays."""

    probs: Any
    levels: Any

    @functools.cached_property
    def floor(self) -> float:
        """The recording's speech-band noise floor (dB): the 10th percentile of its frames' levels."""
        import numpy as np

        sounding = self.levels[self.levels > SILENT_LEVEL]
        return float(np.percentile(sounding, 10)) if len(sounding) else SILENT_LEVEL

    def confident_onsets(self, threshold: float = 0.5) -> list[float]:
        """Times (seconds) where Silero's probability rises to ``threshold``: where speech
        surely starts."""
        import numpy as np

        above = self.probs >= threshold
        rising = np.flatnonzero(above[1:] & ~above[:-1]) + 1
        return [float(index * FRAME) for index in ([0] if len(above) and above[0] else []) + rising.tolist()]

    def describe(self, start: float, end: float) -> dict[str, float]:
        """What the signals say of ``start``–``end`` seconds: Silero's highest probability and
        the median level above the whole recording's noise floor (dB; the decision itself
        measured each 5-minute chunk against its own floor)."""
        import numpy as np

        first, last = max(0, int(start / FRAME)), min(len(self.probs), int(np.ceil(end / FRAME)))
        if last <= first:
            return {"silero_max": 0.0, "level_over_floor_db": 0.0}
        return {"silero_max": round(float(np.max(self.probs[first:last])), 2),
                "level_over_floor_db": round(max(0.0, float(np.median(self.levels[first:last])) - self.floor), 1)}


@dataclass(frozen=True)
class Sensitivity:
    """How readily a pause trim cuts. ``enter``/``leave`` place Silero's hysteresis between
    the recording's silence and speech probabilities (0–1 of the way); ``support`` is how far
    up that range a loud stretch must reach to count as speech; ``noisy_padding`` is added
    to the rule's padding when the speech stands less than ``noisy_below`` dB above the
    background; below ``refuse_below`` dB nothing is cut."""

    name: str
    enter: float
    leave: float
    support: float
    noisy_padding: float
    noisy_below: float
    refuse_below: float


SENSITIVITIES: dict[str, Sensitivity] = {
    "gentle": Sensitivity("gentle", enter=0.25, leave=0.05, support=0.03, noisy_padding=0.25,
                          noisy_below=30.0, refuse_below=10.0),
    "normal": Sensitivity("normal", enter=0.35, leave=0.1, support=0.05, noisy_padding=0.15,
                          noisy_below=25.0, refuse_below=8.0),
    "aggressive": Sensitivity("aggressive", enter=0.5, leave=0.2, support=0.15, noisy_padding=0.0,
                              noisy_below=0.0, refuse_below=0.0),
}
DEFAULT_SENSITIVITY = TrimPauses.sensitivity
#: Frames over which the level is smoothed (~0.4 s: a syllable and its neighbours).
_SMOOTH_FRAMES = 12
#: Speech-like stretches found by level alone shorter than this are clicks, not words.
_SHORTEST_LOUD = 0.15
#: How near (seconds) a loud frame must be to a speech-like one for the level to count.
_SUPPORT_REACH = 0.3
#: Spectral flatness below which a frame is voiced (harmonic), and how many voiced frames
#: a stretch found by level alone needs to count as speech.
_VOICED = 0.12
_VOICED_FRAMES = 3
#: A stretch only Silero calls speech this many dB below the speaker's median level is a
#: background voice.
_BACKGROUND_DB = 15.0
#: How far (seconds) a speech stretch is widened while the level stays above the floor.
_WIDEN = 0.15
#: Where Silero's silence and speech probabilities lie closer than this, Silero cannot tell
#: the bed from speech (it hears babble as speech) and must be confirmed by the level.
_INFORMATIVE = 0.3


@dataclass(frozen=True)
class SpeechMap:
    """What :func:`find_speech` found in one stretch of sound.

    ``speech``: (start, end) seconds; ``padding``: extra padding the trim should keep (a
    loud background); ``refused``: why the stretch must not be trimmed, or ``""``;
    ``notes``: for the job log.
    """

    speech: tuple[Range, ...]
    padding: float = 0.0
    refused: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


def _runs(mask: Any) -> list[tuple[int, int]]:
    """(first, end) frame indices of each run of True in a boolean array."""
    import numpy as np

    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _hysteresis(values: Any, enter: float, leave: float) -> Any:
    """True where ``values`` rose to ``enter`` and has not yet fallen below ``leave``, on
    either side (a run is widened backwards as far as forwards)."""
    import numpy as np

    above = values >= leave
    mask = np.zeros(len(values), dtype=bool)
    for first, end in _runs(above):
        if np.any(values[first:end] >= enter):
            mask[first:end] = True
    return mask


def smooth_levels(levels: Any, frames: int = _SMOOTH_FRAMES) -> Any:
    """``levels`` (dB per frame) averaged in power over ``frames`` frames."""
    import numpy as np

    power = np.power(10.0, np.asarray(levels, dtype=np.float64) / 10)
    return 10 * np.log10(np.convolve(power, np.ones(frames) / frames, mode="same") + 1e-12)


@dataclass(frozen=True)
class _Room:
    """What one stretch of sound says about itself: its smoothed level, noise floor and how
    much the floor moves (``gate``, dB), and Silero's thresholds placed between the
    probability it gives the quietest frames (``silence_p``) and the loudest (``spread``)."""

    smooth: Any
    floor: float
    gate: float
    silence_p: float
    spread: float
    enter: float
    leave: float


def _measure(probs: Any, levels: Any, sensitivity: Sensitivity) -> _Room:
    import numpy as np

    smooth = smooth_levels(levels)
    floor = float(np.percentile(smooth, 10))
    silence_p = float(np.median(probs[levels <= np.percentile(levels, 15)]))
    spread = max(0.0, float(np.percentile(probs[levels >= np.percentile(levels, 70)], 90)) - silence_p)
    enter = min(0.5, max(0.15, silence_p + sensitivity.enter * spread))
    leave = min(enter, max(0.03, silence_p + sensitivity.leave * spread))
    # How much the room tone itself moves: the smoothed level of frames Silero calls silent
    # and that are among the quieter ones. A stretch louder than that is more than the room.
    calm = (probs < 0.15) & (smooth < np.percentile(smooth, 40))
    movement = float(np.percentile(smooth[calm], 95) - floor) if calm.sum() >= 20 else 3.0
    return _Room(smooth, floor, max(3.0, movement) + 1.0, silence_p, spread, enter, leave)


def _by_level(probs: Any, voiced: Any, room: _Room, sensitivity: Sensitivity) -> Any:
    """Frames the level calls speech: louder than the room tone moves, near a frame Silero
    finds at least a little speech-like (a drum hit or the room itself is not), in a stretch
    long enough and voiced (a breath, a rustle or a hiss is not a word)."""
    import numpy as np

    loud = _hysteresis(room.smooth - room.floor, room.gate + 2.0, room.gate)
    near = round(_SUPPORT_REACH / FRAME)
    hint = (probs >= room.silence_p + sensitivity.support * room.spread).astype(np.float64)
    loud &= np.convolve(hint, np.ones(2 * near + 1), mode="same") > 0
    for first, end in _runs(loud):
        if (end - first) * FRAME < _SHORTEST_LOUD or voiced[first:end].sum() < _VOICED_FRAMES:
            loud[first:end] = False
    return loud


def _by_silero(probs: Any, by_level: Any, room: _Room) -> Any:
    """Frames Silero calls speech (hysteresis), less the voices far quieter than the
    speaker's own (people across the room, a TV) that the level does not confirm."""
    import numpy as np

    speech = _hysteresis(probs, room.enter, room.leave)
    if room.spread >= _INFORMATIVE and speech.any():
        voice = float(np.median(room.smooth[speech]))
        for first, end in _runs(speech & ~by_level):
            if np.median(room.smooth[first:end]) < voice - _BACKGROUND_DB:
                speech[first:end] = False
    return speech


def _settle_edges(speech: Any, probs: Any, levels: Any, room: _Room, clear: bool) -> Any:
    """``speech`` with each stretch's edges settled by the level: where the speech stands far
    above a quiet floor (``clear``), first pulled in to the last frame with sound in it
    (Silero's probability lingers a few frames after the voice stops; frames it is still
    sure of stay), then, always, widened by up to :data:`_WIDEN` while the level stays
    above the floor (soft onsets, word endings)."""
    import numpy as np

    count = len(speech)
    widen = round(_WIDEN / FRAME)
    above_floor = levels - room.floor >= room.gate
    sounding = (levels - room.floor >= max(3.0, room.gate / 2)) | (probs >= room.enter)
    settled = np.zeros(count, dtype=bool)
    for first, end in _runs(speech):
        start, stop = first, end
        if clear and sounding[first:end].any():
            while not sounding[start]:
                start += 1
            while not sounding[stop - 1]:
                stop -= 1
        core = start
        while start > 0 and core - start < widen and above_floor[start - 1]:
            start -= 1
        tail = stop
        while stop < count and stop - tail < widen and above_floor[stop]:
            stop += 1
        settled[start:stop] = True
    return settled


def find_speech(probs: Any, levels: Any, sensitivity: Sensitivity, offset: float = 0.0,
                flatness: Any = None) -> SpeechMap:
    """Speech in one stretch of sound from per-frame Silero probabilities ``probs``,
    speech-band levels ``levels`` (dB) and, optionally, that band's spectral ``flatness``,
    all :data:`FRAME` apart; times are seconds from ``offset``. Raises nothing; an empty
    input gives an empty map."""
    import numpy as np

    count = min(len(probs), len(levels))
    if count < 4:
        return SpeechMap(())
    probs = np.asarray(probs[:count], dtype=np.float64)
    levels = np.asarray(levels[:count], dtype=np.float64)
    voiced = np.asarray(flatness[:count]) < _VOICED if flatness is not None else np.ones(count, bool)
    room = _measure(probs, levels, sensitivity)
    by_level = _by_level(probs, voiced, room, sensitivity)
    by_silero = _by_silero(probs, by_level, room)
    # Where Silero hears the bed as speech (babble), only what both call speech counts.
    speech = by_silero & by_level if room.spread < _INFORMATIVE else by_silero | by_level
    clear = bool(speech.any()) and float(np.median(room.smooth[speech]) - room.floor) >= sensitivity.noisy_below
    settled = _settle_edges(speech, probs, levels, room, clear)

    ranges = tuple((offset + a * FRAME, offset + b * FRAME) for a, b in _runs(settled))
    snr = float(np.median(room.smooth[settled]) - room.floor) if settled.any() else 0.0
    padding, refused, notes = 0.0, "", []
    if ranges and snr < sensitivity.refuse_below:
        refused = (f"the speech stands only {snr:.0f} dB above the background; "
                   "cutting its pauses could cut words")
    elif ranges and snr < sensitivity.noisy_below and sensitivity.noisy_padding:
        padding = sensitivity.noisy_padding
        notes.append(f"loud background (speech {snr:.0f} dB above it): {padding:g} s more kept beside speech")
    return SpeechMap(ranges, padding, refused, tuple(notes))


def explain_cuts(kept: Sequence[Range], window: Range, evidence: Evidence | None) -> list[dict[str, Any]]:
    """One entry per stretch of ``window`` that ``kept`` leaves out: where it is (source
    seconds), how long, and what the signals said of it, so a user who doubts a cut can
    see why it was made."""
    gaps: list[Range] = []
    cursor = window[0]
    for a, b in kept:
        if a > cursor:
            gaps.append((cursor, a))
        cursor = max(cursor, b)
    if window[1] > cursor:
        gaps.append((cursor, window[1]))
    out = []
    for a, b in gaps:
        entry: dict[str, Any] = {"start": round(a, 3), "end": round(b, 3), "seconds": round(b - a, 3)}
        if evidence is not None:
            entry.update(evidence.describe(a, b))
        out.append(entry)
    return out


def onset_fitted(words: Sequence[Any], evidence: Evidence | None, reach: float = 1.0) -> list[Any]:
    """``words`` (objects with ``start``/``end``, e.g. captions' ``Word``) whose start Whisper
    placed in the breath or silence before the word moved to where Silero hears the speech
    start, when that lies within the word and ``reach`` seconds (caption cues then appear
    with the voice, not before it). Without evidence the words are returned as they are."""
    import bisect
    from dataclasses import replace

    if evidence is None:
        return list(words)
    onsets = evidence.confident_onsets()
    out = []
    for word in words:
        index = bisect.bisect_right(onsets, word.start)
        inside = index > 0 and bool(evidence.probs[min(len(evidence.probs) - 1, int(word.start / FRAME))] >= 0.5)
        moves = not inside and index < len(onsets) and onsets[index] < min(word.end, word.start + reach)
        out.append(replace(word, start=max(word.start, onsets[index] - FRAME)) if moves else word)
    return out


def protect(speech: Sequence[Range], words: Sequence[Range], margin: float = 0.05, reach: float = 0.2) -> list[Range]:
    """``speech`` with the words Whisper heard (start, end seconds) added, so a cut never lands
    inside a word: a word the signals missed altogether is kept whole (widened by
    ``margin``); a word that overlaps found speech extends it by at most ``reach`` seconds
    on each side (Whisper's word edges are loose by a few tenths of a second, and a word
    onset it places inside a pause would otherwise keep that pause)."""
    ordered = sorted(speech)
    extra: list[Range] = []
    for a, b in words:
        touching = [(s, e) for s, e in ordered if s < b and e > a]
        if not touching:
            extra.append((max(0.0, a - margin), b + margin))
        else:
            extra.append((max(a, touching[0][0] - reach), min(b, touching[-1][1] + reach)))
    return sorted([*ordered, *extra])

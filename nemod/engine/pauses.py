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
        the median level above the recording's noise floor (dB)."""
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
DEFAULT_SENSITIVITY = "normal"
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

    ``speech``: (start, end) seconds; ``floor_db``: the speech-band noise floor;
    ``snr_db``: how far the speech stands above it; ``enter``/``leave``: Silero thresholds
    used; ``padding``: extra padding the trim should keep (a loud background);
    ``refused``: why the stretch must not be trimmed, or ``""``.
    """

    speech: tuple[Range, ...]
    floor_db: float = -120.0
    snr_db: float = 0.0
    enter: float = 0.5
    leave: float = 0.35
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


def find_speech(probs: Any, levels: Any, sensitivity: Sensitivity, offset: float = 0.0,
                flatness: Any = None) -> SpeechMap:
    """Speech in one stretch of sound from per-frame Silero probabilities ``probs``,
    speech-band levels ``levels`` (dB) and, optionally, that band's spectral ``flatness``,
    all :data:`FRAME` apart; times are seconds from ``offset``. Raises nothing; an empty
    input gives an empty map."""
    import numpy as np

    probs = np.asarray(probs, dtype=np.float64)
    levels = np.asarray(levels, dtype=np.float64)
    count = min(len(probs), len(levels))
    if count < 4:
        return SpeechMap(())
    probs, levels = probs[:count], levels[:count]
    smooth = smooth_levels(levels)
    floor = float(np.percentile(smooth, 10))
    quiet = levels <= np.percentile(levels, 15)
    loud = levels >= np.percentile(levels, 70)
    silence_p = float(np.median(probs[quiet]))
    speech_p = float(np.percentile(probs[loud], 90))
    spread = max(0.0, speech_p - silence_p)
    enter = min(0.5, max(0.15, silence_p + sensitivity.enter * spread))
    leave = min(enter, max(0.03, silence_p + sensitivity.leave * spread))
    by_silero = _hysteresis(probs, enter, leave)

    # How much the room tone itself moves: the smoothed level of frames Silero calls silent
    # and that are among the quieter ones. A stretch louder than that is more than the room.
    calm = (probs < 0.15) & (smooth < np.percentile(smooth, 40))
    movement = float(np.percentile(smooth[calm], 95) - floor) if calm.sum() >= 20 else 3.0
    gate = max(3.0, movement) + 1.0
    by_level = _hysteresis(smooth - floor, gate + 2.0, gate)
    # Level alone is not speech: only the loud frames near a frame Silero finds at least a
    # little speech-like count (a drum hit, a rustle or the room tone itself does not).
    near = round(_SUPPORT_REACH / FRAME)
    supported = np.convolve((probs >= silence_p + sensitivity.support * spread).astype(np.float64),
                            np.ones(2 * near + 1), mode="same") > 0
    by_level &= supported
    voiced = np.asarray(flatness[:count]) < _VOICED if flatness is not None else np.ones(count, bool)
    for first, end in _runs(by_level):
        # a loud stretch with no voiced frame is a breath, a rustle or a hiss, not a word
        if (end - first) * FRAME < _SHORTEST_LOUD or voiced[first:end].sum() < _VOICED_FRAMES:
            by_level[first:end] = False
    if spread >= _INFORMATIVE and by_silero.any():
        # Voices far quieter than the speaker's own (people talking across the room, a TV)
        # are the background: a stretch only Silero hears, and that is that much quieter
        # than the speech, is not kept for its own sake.
        voice = float(np.median(smooth[by_silero]))
        for first, end in _runs(by_silero & ~by_level):
            if np.median(smooth[first:end]) < voice - _BACKGROUND_DB:
                by_silero[first:end] = False
    speech = by_silero & by_level if spread < _INFORMATIVE else by_silero | by_level

    widen = round(_WIDEN / FRAME)
    above_floor = levels - floor >= gate
    widened = speech.copy()
    for first, end in _runs(speech):
        start = first
        while start > 0 and first - start < widen and above_floor[start - 1]:
            start -= 1
        stop = end
        while stop < count and stop - end < widen and above_floor[stop]:
            stop += 1
        widened[start:stop] = True

    ranges = tuple((offset + a * FRAME, offset + b * FRAME) for a, b in _runs(widened))
    snr = float(np.median(smooth[widened]) - floor) if widened.any() else 0.0
    padding, refused, notes = 0.0, "", []
    if ranges and snr < sensitivity.refuse_below:
        refused = (f"the speech stands only {snr:.0f} dB above the background; "
                   "cutting its pauses could cut words")
    elif ranges and snr < sensitivity.noisy_below:
        padding = sensitivity.noisy_padding
        if padding:
            notes.append(f"loud background (speech {snr:.0f} dB above it): {padding:g} s more kept beside speech")
    return SpeechMap(ranges, round(floor, 1), round(snr, 1), round(enter, 3), round(leave, 3),
                     padding, refused, tuple(notes))


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

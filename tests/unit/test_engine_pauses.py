"""The pure speech finder (nemod/engine/pauses.py) on hand-made signals."""

from __future__ import annotations

import numpy as np

from nemod.edits import SENSITIVITY_NAMES, TrimPauses, parse_edit
from nemod.engine.captions import Word
from nemod.engine.pauses import (
    FRAME,
    SENSITIVITIES,
    Evidence,
    explain_cuts,
    find_speech,
    onset_fitted,
    protect,
)

NORMAL = SENSITIVITIES["normal"]
RNG = np.random.default_rng(7)


def _frames(seconds: float) -> int:
    return round(seconds / FRAME)


def _signals(parts: list[tuple[float, float, float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate (seconds, silero p, level dB, flatness) parts, with a little jitter."""
    probs, levels, flat = [], [], []
    for seconds, p, level, flatness in parts:
        n = _frames(seconds)
        probs.append(np.clip(p + RNG.normal(0, 0.01, n), 0, 1))
        levels.append(level + RNG.normal(0, 0.5, n))
        flat.append(np.full(n, flatness))
    return np.concatenate(probs), np.concatenate(levels), np.concatenate(flat)


ROOM = (-70.0, 0.3)  # room tone: level, flatness (noise-like)


def test_speech_silero_is_unsure_of_is_kept_when_the_level_says_so() -> None:
    # telephone-band speech: Silero gives 0.2, but it is 40 dB above the room tone and voiced
    probs, levels, flat = _signals([(3, 0.01, *ROOM), (2, 0.2, -30, 0.05), (3, 0.01, *ROOM)])
    found = find_speech(probs, levels, NORMAL, flatness=flat)
    assert len(found.speech) == 1
    start, end = found.speech[0]
    assert start <= 3.0 + FRAME and end >= 5.0 - FRAME
    assert not found.refused


def test_a_breath_is_not_speech() -> None:
    # loud but noise-like (flat spectrum) and Silero hears a little: an intake of breath
    probs, levels, flat = _signals([(2, 0.01, *ROOM), (0.5, 0.08, -40, 0.4), (2, 0.01, *ROOM),
                                    (2, 0.9, -25, 0.05), (2, 0.01, *ROOM)])
    found = find_speech(probs, levels, NORMAL, flatness=flat)
    assert all(a > 4.0 for a, _ in found.speech), found.speech


def test_loud_sound_silero_hears_nothing_in_is_not_speech() -> None:
    # a drum hit or a slammed door: loud, voiced-looking, Silero at 0
    probs, levels, flat = _signals([(2, 0.01, *ROOM), (0.5, 0.0, -20, 0.05), (2, 0.01, *ROOM),
                                    (2, 0.9, -25, 0.05), (2, 0.01, *ROOM)])
    found = find_speech(probs, levels, NORMAL, flatness=flat)
    assert all(a > 4.0 for a, _ in found.speech), found.speech


def test_a_quiet_voice_in_the_background_is_not_the_speaker() -> None:
    # people talking across the room, 30 dB under the speaker and no louder than the room:
    # Silero hears a voice, the level says it is the room
    probs, levels, flat = _signals([(2, 0.9, -20, 0.05), (2, 0.01, -50, 0.3), (1.5, 0.6, -50, 0.1),
                                    (2, 0.01, -50, 0.3), (2, 0.9, -20, 0.05)])
    found = find_speech(probs, levels, NORMAL, flatness=flat)
    assert len(found.speech) == 2 and found.speech[0][1] < 2.5 and found.speech[1][0] > 7.0, found.speech


def test_speech_barely_above_its_bed_is_refused_with_a_reason() -> None:
    probs, levels, flat = _signals([(3, 0.02, -30, 0.1), (3, 0.6, -26, 0.05), (3, 0.02, -30, 0.1)])
    found = find_speech(probs, levels, NORMAL, flatness=flat)
    assert "dB above the background" in found.refused
    aggressive = find_speech(probs, levels, SENSITIVITIES["aggressive"], flatness=flat)
    assert not aggressive.refused


def test_a_loud_background_keeps_more_beside_speech() -> None:
    probs, levels, flat = _signals([(3, 0.02, -40, 0.1), (3, 0.9, -22, 0.05), (3, 0.02, -40, 0.1)])
    found = find_speech(probs, levels, NORMAL, flatness=flat)
    assert found.padding == NORMAL.noisy_padding and found.notes


def test_whisper_words_protect_what_the_signals_missed() -> None:
    speech = [(1.0, 2.0)]
    protected = protect(speech, [(1.5, 2.9), (5.0, 5.4)])
    assert (5.0 - 0.05, 5.4 + 0.05) in protected  # missed altogether: kept whole
    assert (1.5, 2.2) in protected  # overlaps found speech: at most 0.2 s more


def test_each_cut_is_explained() -> None:
    probs = np.zeros(_frames(10))
    levels = np.full(_frames(10), -70.0)
    probs[_frames(2): _frames(4)] = 0.9
    levels[_frames(2): _frames(4)] = -20
    cuts = explain_cuts([(1.8, 4.2)], (0.0, 10.0), Evidence(probs, levels))
    assert [(c["start"], c["end"]) for c in cuts] == [(0.0, 1.8), (4.2, 10.0)]
    assert all(c["silero_max"] < 0.5 and c["level_over_floor_db"] < 3 for c in cuts)


def test_a_word_whisper_starts_in_the_breath_starts_with_the_voice() -> None:
    probs = np.zeros(_frames(5))
    probs[_frames(2):] = 0.9
    words = onset_fitted([Word(1.4, 2.5, "so"), Word(0.2, 0.5, "um")], Evidence(probs, np.zeros(len(probs))))
    assert abs(words[0].start - 2.0) <= 2 * FRAME
    assert words[1].start == 0.2  # no voice within reach: left as Whisper heard it


def test_every_sensitivity_a_rule_may_name_has_its_settings() -> None:
    assert tuple(SENSITIVITIES) == SENSITIVITY_NAMES


def test_sensitivity_in_plain_words_and_operations() -> None:
    assert parse_edit("trim the pauses gently").find(TrimPauses).sensitivity == "gentle"
    assert parse_edit("cut dead air aggressively").find(TrimPauses).sensitivity == "aggressive"
    assert parse_edit("trim the pauses").find(TrimPauses).sensitivity == "normal"

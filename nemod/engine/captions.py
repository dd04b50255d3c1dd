"""Captions: words → reading cues → SRT, WebVTT and ASS (for burning in). Pure.

Words come from the transcriber in *source* time; :func:`retime` moves them onto
the cut timeline (dropping words that were cut), :func:`segment` groups them into
cues a viewer can read, and the ``*_text`` functions format the cues.

Reading rules (the usual broadcast/streaming guidelines): at most two lines of
``max_chars`` characters (42 on a landscape frame, fewer on a narrow one), 1–7 s
on screen, at most 20 characters per second, and a break preferably at a phrase
boundary (sentence end, comma, a pause in speech, a cut) rather than mid-phrase.
Scripts written without spaces (Chinese, Japanese) follow their own
:class:`nemod.languages.ReadingNorms`: lines are counted in characters (16 for
Chinese on a landscape frame, 12 on a vertical one) and held for 9 characters a
second; in every script no line starts with closing punctuation (，。」…) or ends
with opening punctuation (「《（…).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from nemod.languages import SPACED, ReadingNorms, is_unspaced

MAX_LINES = 2
MAX_CHARS = SPACED.max_chars
MIN_SECONDS = 1.0
MAX_SECONDS = 7.0
MAX_CPS = SPACED.max_cps
#: A silence this long between two words is a phrase boundary.
PAUSE_BREAK = 0.5
#: Smallest gap kept between two cues so players never show both.
CUE_GAP = 0.04


@dataclass(frozen=True)
class Word:
    """A spoken word: ``start``/``end`` seconds and its text (without surrounding spaces).
    ``joined`` is True when a cut lies between this word and the previous one."""

    start: float
    end: float
    text: str
    joined: bool = False


@dataclass(frozen=True)
class Cue:
    """One caption on screen from ``start`` to ``end`` seconds; ``lines`` are its text lines."""

    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The lines joined with newlines."""
        return "\n".join(self.lines)


def retime(words: Sequence[Word], kept: Sequence[tuple[float, float]], speed: float = 1.0) -> list[Word]:
    """Move ``words`` (source seconds) onto the output timeline made of the ``kept`` source
    ranges laid end to end, played at ``speed``. Words whose middle was cut are dropped;
    the others are clamped into their range."""
    result: list[Word] = []
    offsets = []
    clock = 0.0
    for start, end in kept:
        offsets.append(clock)
        clock += end - start
    previous_range = None
    for word in words:
        middle = (word.start + word.end) / 2
        for index, (start, end) in enumerate(kept):
            if start <= middle <= end:
                new_start = offsets[index] + max(word.start, start) - start
                new_end = offsets[index] + min(word.end, end) - start
                joined = previous_range is not None and previous_range != index
                result.append(Word(new_start / speed, new_end / speed, word.text, joined))
                previous_range = index
                break
    return result


_SENTENCE_END = re.compile(r"[.!?。！？…]['\")\]]*$")
_CLAUSE_END = re.compile(r"[,;:，；：、—-]['\")\]]*$")
_PHRASE_START = frozenset(
    ["and", "but", "or", "so", "because", "which", "who", "that", "when", "while", "if", "then", "to", "of", "in", "on", "for", "with"]
)


def _join(words: Sequence[Word]) -> str:
    text = ""
    for word in words:
        token = word.text.strip()
        if not text:
            text = token
        elif is_unspaced(token[:1]) and is_unspaced(text[-1:]):
            text += token
        else:
            text += " " + token
    return text



def _boundary_score(words: Sequence[Word], index: int) -> float:
    """How good a break is *after* ``words[index]`` (higher is better)."""
    word = words[index].text.strip()
    after = words[index + 1] if index + 1 < len(words) else None
    score = 0.0
    if _SENTENCE_END.search(word):
        score += 3
    elif _CLAUSE_END.search(word):
        score += 2
    if after is not None:
        if after.joined or after.start - words[index].end >= PAUSE_BREAK:
            score += 3
        if after.text.strip().lower() in _PHRASE_START:
            score += 1
    return score


#: Punctuation a line may not start with (it closes what came before) …
CLOSING = frozenset("，。、；：！？）》」』】〕〉”’…,.;:!?)]}%·・ー～")
#: … and punctuation a line may not end with (it opens what comes after).
OPENING = frozenset("（《「『【〔〈“‘([{")


def attach_punctuation(words: Sequence[Word]) -> list[Word]:
    """``words`` with closing punctuation that starts a word (or is a word of its own, as
    Whisper writes Chinese punctuation) moved onto the end of the previous word, so no cue
    or line can start with it."""
    result: list[Word] = []
    for word in words:
        text = word.text.strip()
        lead = len(text) - len(text.lstrip("".join(CLOSING)))
        if result and lead:
            previous = result[-1]
            result[-1] = Word(previous.start, max(previous.end, word.end if lead == len(text) else previous.end),
                              previous.text + text[:lead], previous.joined)
            text = text[lead:]
        if text:
            result.append(Word(word.start, word.end, text, word.joined))
    return result


def _breakable(first: str, second: str) -> bool:
    """True when a line may end with ``first`` and the next start with ``second``."""
    return bool(first) and bool(second) and first[-1] not in OPENING and second[0] not in CLOSING


def split_lines(text_words: Sequence[Word], max_chars: int = MAX_CHARS) -> tuple[str, ...]:
    """Break a cue's words into at most two balanced lines of ``max_chars``, preferring a
    phrase boundary near the middle (never before closing or after opening punctuation)."""
    whole = _join(text_words)
    if len(whole) <= max_chars or len(text_words) < 2:
        return (whole,)
    best: tuple[float, int] | None = None
    for index in range(len(text_words) - 1):
        first, second = _join(text_words[: index + 1]), _join(text_words[index + 1:])
        if len(first) > max_chars or len(second) > max_chars or not _breakable(first, second):
            continue
        balance = abs(len(first) - len(second)) / max(1, len(whole))
        score = _boundary_score(text_words, index) - 4 * balance
        if best is None or score > best[0]:
            best = (score, index)
    if best is None:  # cannot fit: the segmenter never produces this, but stay readable
        middle = len(text_words) // 2
        return (_join(text_words[:middle]), _join(text_words[middle:]))
    cut = best[1] + 1
    return (_join(text_words[:cut]), _join(text_words[cut:]))


def _fits(words: Sequence[Word], max_chars: int) -> bool:
    text = _join(words)
    if len(text) <= max_chars:
        return True
    if len(text) > MAX_LINES * max_chars + 1:
        return False
    return any(
        len(_join(words[: i + 1])) <= max_chars and len(_join(words[i + 1:])) <= max_chars
        for i in range(len(words) - 1)
    )


def segment(
    words: Sequence[Word], max_chars: int = MAX_CHARS, end: float | None = None, norms: ReadingNorms = SPACED,
) -> list[Cue]:
    """Group ``words`` (output time, in order) into reading cues; ``norms`` gives the reading
    speed (characters a second) of the language; ``max_chars`` is counted in characters.

    A cue closes after a sentence end, a pause or a cut, and at a comma once it is mostly
    full. When the next word would not fit in two lines (or would make the cue longer than
    :data:`MAX_SECONDS`), the cue is split at its best phrase boundary instead of mid-phrase.
    Cues shorter than :data:`MIN_SECONDS` are merged into a neighbour when the result still
    fits; each cue is then held long enough for ``norms.max_cps`` (and at least
    :data:`MIN_SECONDS`) where the next cue, or ``end``, leaves room.
    """
    words = attach_punctuation(words)
    groups: list[list[int]] = []
    current: list[int] = []
    for index, word in enumerate(words):
        if current:
            boundary = _boundary_score(words, index - 1)
            candidate = [words[i] for i in [*current, index]]
            if boundary >= 3:
                groups.append(current)
                current = []
            elif not _fits(candidate, max_chars) or word.end - words[current[0]].start > MAX_SECONDS:
                cut = _best_break(words, current)
                groups.append(current[: cut + 1])
                current = current[cut + 1:]
            elif boundary >= 2 and len(_join([words[i] for i in current])) >= max_chars * 0.8:
                groups.append(current)
                current = []
        current.append(index)
    if current:
        groups.append(current)
    word_groups = _merge_short([[words[i] for i in group] for group in groups], max_chars)
    word_groups = _rebalance(word_groups, max_chars)
    cues: list[Cue] = []
    for index, group in enumerate(word_groups):
        start, stop = group[0].start, group[-1].end
        text = _join(group)
        if index + 1 < len(word_groups):
            limit = word_groups[index + 1][0].start - CUE_GAP
        else:
            limit = end if end is not None else stop + MAX_SECONDS
        wanted = max(stop, start + MIN_SECONDS, start + len(text) / norms.max_cps)
        stop = max(stop, min(wanted, limit, start + MAX_SECONDS))
        cues.append(Cue(round(start, 3), round(stop, 3), split_lines(group, max_chars)))
    return cues


def _best_break(words: Sequence[Word], current: Sequence[int]) -> int:
    """Position in ``current`` after which to split a full cue: the best phrase boundary in
    its later two thirds (the last word when there is none)."""
    first = len(current) // 3
    best = len(current) - 1
    best_score = 0.0
    for position in range(first, len(current) - 1):
        score = _boundary_score(words, current[position])
        if score >= best_score and score > 0:
            best, best_score = position, score
    return best


def _merge_short(groups: list[list[Word]], max_chars: int) -> list[list[Word]]:
    """Merge cues spoken in under :data:`MIN_SECONDS` into the previous or next cue when the
    result fits in two lines and :data:`MAX_SECONDS`."""
    result = [list(group) for group in groups]
    index = 0
    while index < len(result):
        group = result[index]
        if group[-1].end - group[0].start >= MIN_SECONDS or len(result) == 1:
            index += 1
            continue
        for other in (index - 1, index + 1):
            if not 0 <= other < len(result):
                continue
            merged = result[other] + group if other < index else group + result[other]
            gap = group[0].start - result[other][-1].end if other < index else result[other][0].start - group[-1].end
            if gap < 2 * PAUSE_BREAK and _fits(merged, max_chars) and merged[-1].end - merged[0].start <= MAX_SECONDS:
                result[min(index, other)] = merged
                del result[max(index, other)]
                index = max(0, min(index, other))
                break
        else:
            index += 1
    return result


def _rebalance(groups: list[list[Word]], max_chars: int) -> list[list[Word]]:
    """Split groups spoken over more than :data:`MAX_SECONDS` at their best internal boundary.
    (Fast speech is handled by holding cues longer, not by splitting: a shorter cue of the
    same speech reads no slower.)"""
    result: list[list[Word]] = []
    pending = list(groups)
    while pending:
        group = pending.pop(0)
        duration = group[-1].end - group[0].start
        if len(group) >= 2 and duration > MAX_SECONDS:
            index = max(range(len(group) - 1), key=lambda i: (_boundary_score(group, i), -abs(i - len(group) / 2)))
            pending[:0] = [group[: index + 1], group[index + 1:]]
            continue
        result.append(group)
    return result


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt_text(cues: Sequence[Cue]) -> str:
    """SubRip text for ``cues``."""
    blocks = [
        f"{index}\n{_clock(cue.start, ',')} --> {_clock(cue.end, ',')}\n{cue.text}\n"
        for index, cue in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


def vtt_text(cues: Sequence[Cue]) -> str:
    """WebVTT text for ``cues``."""
    blocks = ["WEBVTT\n"]
    blocks += [f"{_clock(cue.start, '.')} --> {_clock(cue.end, '.')}\n{cue.text}\n" for cue in cues]
    return "\n".join(blocks)


def parse_srt(text: str) -> list[Cue]:
    """Read SubRip text back into cues (for tests and round trips)."""
    cues = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.strip().splitlines()
        if len(lines) < 2 or "-->" not in lines[1]:
            continue
        start, end = (part.strip() for part in lines[1].split("-->"))
        cues.append(Cue(_seconds(start), _seconds(end), tuple(lines[2:])))
    return cues


def _seconds(clock: str) -> float:
    hours, minutes, rest = clock.replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


# --- ASS for burning in with libass -------------------------------------------------------


@dataclass(frozen=True)
class TitleText:
    """A title overlay: ``text`` from ``start`` to ``end`` seconds at ``position``
    (top/center/bottom), font height ``size`` × frame height."""

    text: str
    start: float
    end: float
    position: str = "center"
    size: float = 0.08


def caption_layout(width: int, height: int, norms: ReadingNorms = SPACED) -> tuple[int, int]:
    """(font size in pixels, characters per line) for captions on a ``width``×``height`` frame
    in a language with ``norms``.

    The font scales with the short side; on a narrow (vertical) frame the line length drops
    below 42 so two lines still fit in 90 % of the width at a size readable on a phone.
    Full-width (CJK) characters are a whole em wide: their lines are ``norms.max_chars`` (16
    for Chinese) where 70 % of the width holds them, fewer on a vertical frame (12).
    """
    size = round(min(width, height) * (0.055 if width < height else 0.06))
    if norms.full_width:
        return size, max(8, min(norms.max_chars, int(0.7 * width / size)))
    average_char = 0.6 * size  # DejaVu Sans Bold, mixed case
    return size, max(16, min(norms.max_chars, int(0.9 * width / average_char)))


def _ass_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}").replace("\n", "\\N")


def _ass_clock(seconds: float) -> str:
    centis = max(0, round(seconds * 100))
    hours, rest = divmod(centis, 360_000)
    minutes, rest = divmod(rest, 6000)
    secs, centis = divmod(rest, 100)
    return f"{hours:d}:{minutes:02d}:{secs:02d}.{centis:02d}"


def ass_text(
    width: int, height: int, font: str, cues: Sequence[Cue] = (), titles: Sequence[TitleText] = ()
) -> str:
    """An ASS script drawing ``cues`` (bottom centre, white with a dark outline) and
    ``titles`` on a ``width``×``height`` frame with the font family ``font``."""
    size, _ = caption_layout(width, height)
    margin_v = round(height * (0.12 if width < height else 0.06))
    margin_h = round(width * 0.05)
    outline = max(2, round(size * 0.08))
    styles = [
        f"Style: Caption,{font},{size},&H00FFFFFF,&H00FFFFFF,&H00000000,&H80000000,-1,0,0,0,100,100,0,0,1,"
        f"{outline},{max(1, outline // 2)},2,{margin_h},{margin_h},{margin_v},1",
    ]
    events = [
        f"Dialogue: 0,{_ass_clock(cue.start)},{_ass_clock(cue.end)},Caption,,0,0,0,,{_ass_escape(cue.text)}"
        for cue in cues
    ]
    alignments = {"top": 8, "center": 5, "bottom": 2}
    for index, title in enumerate(titles):
        title_size = max(12, round(min(width, height) * title.size * (16 / 9 if width < height else 1)))
        styles.append(
            f"Style: Title{index},{font},{title_size},&H00FFFFFF,&H00FFFFFF,&H00000000,&H99000000,-1,0,0,0,"
            f"100,100,0,0,1,{max(2, round(title_size * 0.06))},{max(1, round(title_size * 0.04))},"
            f"{alignments.get(title.position, 5)},{margin_h},{margin_h},{round(height * 0.08)},1"
        )
        fade = min(300, int((title.end - title.start) * 250))
        events.append(
            f"Dialogue: 1,{_ass_clock(title.start)},{_ass_clock(title.end)},Title{index},,0,0,0,,"
            f"{{\\fad({fade},{fade})}}{_ass_escape(title.text)}"
        )
    return "\n".join([
        "[Script Info]",
        "ScriptType: v4.00+",
        f"PlayResX: {width}",
        f"PlayResY: {height}",
        "WrapStyle: 0",
        "ScaledBorderAndShadow: yes",
        "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
        "Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, "
        "Alignment, MarginL, MarginR, MarginV, Encoding",
        *styles,
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
        *events,
        "",
    ])


def _normal_words(text: str) -> list[str]:
    text = text.lower().replace("/", " ").replace("-", " ")
    return [word for word in re.sub(r"[^\w\s']", " ", text).split() if word]


def _edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Substitutions + deletions + insertions taking ``reference`` to ``hypothesis``."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_item in enumerate(reference, start=1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_item in enumerate(hypothesis, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_item != hyp_item))
        previous = current
    return previous[-1]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference`` (case and punctuation ignored):
    (substitutions + deletions + insertions) / reference words."""
    ref, hyp = _normal_words(reference), _normal_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return _edit_distance(ref, hyp) / len(ref)


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Character error rate over letters and digits only (for Chinese and other scripts
    written without spaces): edit distance / reference characters."""
    ref = [c for c in reference if c.isalnum()]
    hyp = [c for c in hypothesis if c.isalnum()]
    if not ref:
        return 0.0 if not hyp else 1.0
    return _edit_distance(ref, hyp) / len(ref)

"""Simplified ↔ Traditional Chinese for caption words, with OpenCC.

Whisper often writes Chinese in Traditional characters whatever the speaker's region;
captions in ``zh`` are converted to Simplified (OpenCC ``t2s``), in ``zh-Hant`` to
Traditional (``s2t``). The words' text is converted as one string, so OpenCC's phrase
tables see whole phrases, then cut back into the words (their timings are kept).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from nemod.engine.captions import Word


@functools.cache
def _converter(conversion: str) -> Any:
    import opencc

    return opencc.OpenCC(conversion)


def convert_text(text: str, conversion: str) -> str:
    """``text`` converted by the OpenCC configuration ``conversion`` (``t2s``, ``s2t`` …)."""
    return str(_converter(conversion).convert(text))


def convert_words(words: Sequence[Word], conversion: str) -> list[Word]:
    """``words`` with their text converted by ``conversion``, timings unchanged.

    The texts are converted together (phrases decide ambiguous characters); when that
    changes the total length the words are converted one by one instead."""
    if not words:
        return []
    whole = convert_text("".join(word.text for word in words), conversion)
    if len(whole) != sum(len(word.text) for word in words):
        return [replace(word, text=convert_text(word.text, conversion)) for word in words]
    result, position = [], 0
    for word in words:
        result.append(replace(word, text=whole[position: position + len(word.text)]))
        position += len(word.text)
    return result

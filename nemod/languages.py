"""Caption languages: the codes a rule may name, their plain-word names, their scripts and
reading norms. Pure: no I/O.

A caption language is a Whisper language code (``de``, ``es``, ``zh`` …), ``zh-Hant``
(Chinese in Traditional characters; ``zh`` and ``zh-Hans`` are Simplified), or ``auto``
(detect it per file from the speech). :func:`canonical` maps what a rule says to one of
these, :func:`whisper_code` to what Whisper is told, :func:`norms` to how captions in it
are laid out.

Reading norms (Netflix Timed Text Style Guides, the most widely followed public ones):
Latin and other space-separated scripts keep nemod's rules (42 characters a line, at most
20 characters a second); Chinese, Simplified and Traditional, 16 full-width characters a
line and 9 characters a second; Japanese 13 characters a line and 4 characters a second;
Korean 16 characters a line and 12 a second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

AUTO = "auto"
ENGLISH = "en"
#: Whisper's language codes (faster-whisper 1.x, ``faster_whisper.tokenizer``).
_CODES = (
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he "
    "hi hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl "
    "nn no oc pa pl ps pt ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz "
    "vi yi yo zh yue"
)
WHISPER_CODES = frozenset(_CODES.split())
#: Chinese written in Traditional characters (converted with OpenCC).
TRADITIONAL_CHINESE = "zh-Hant"
_ALIASES = {
    "zh-hans": "zh", "zh-cn": "zh", "zh-sg": "zh", "cmn": "zh",
    "zh-hant": TRADITIONAL_CHINESE, "zh-tw": TRADITIONAL_CHINESE, "zh-hk": TRADITIONAL_CHINESE,
}

#: Plain words naming a language (lower case, English and Chinese) → code. Longer names
#: are tried first, so "traditional chinese" wins over "chinese".
NAMES: dict[str, str] = {
    "traditional chinese": TRADITIONAL_CHINESE, "繁体中文": TRADITIONAL_CHINESE, "繁體中文": TRADITIONAL_CHINESE,
    "繁体": TRADITIONAL_CHINESE, "繁體": TRADITIONAL_CHINESE,
    "simplified chinese": "zh", "简体中文": "zh", "简体": "zh",
    "chinese": "zh", "mandarin": "zh", "中文": "zh", "汉语": "zh", "普通话": "zh", "华语": "zh",
    "cantonese": "yue", "粤语": "yue",
    "english": "en", "英文": "en", "英语": "en",
    "german": "de", "deutsch": "de", "德语": "de", "德文": "de",
    "spanish": "es", "español": "es", "西班牙语": "es",
    "french": "fr", "français": "fr", "法语": "fr", "法文": "fr",
    "italian": "it", "意大利语": "it",
    "portuguese": "pt", "葡萄牙语": "pt",
    "dutch": "nl", "荷兰语": "nl",
    "russian": "ru", "俄语": "ru",
    "japanese": "ja", "日语": "ja", "日文": "ja",
    "korean": "ko", "韩语": "ko", "韩文": "ko",
    "the language spoken": AUTO, "the spoken language": AUTO, "the original language": AUTO,
    "any language": AUTO, "原声语言": AUTO, "原语言": AUTO,
}
#: A regular expression matching any of :data:`NAMES` (longest first).
NAME_PATTERN = "|".join(re.escape(name) for name in sorted(NAMES, key=len, reverse=True))


def canonical(value: str) -> str:
    """The caption language ``value`` names: a Whisper code, ``zh-Hant`` or ``auto``.

    Accepts codes in any case, ``zh-Hans``/``zh-CN`` (→ ``zh``), ``zh-TW``/``zh-HK`` (→
    ``zh-Hant``) and the plain names of :data:`NAMES`. Raises ValueError for anything else.
    """
    text = value.strip()
    lowered = text.lower().replace("_", "-")
    if lowered == AUTO:
        return AUTO
    if lowered in _ALIASES:
        return _ALIASES[lowered]
    if lowered in WHISPER_CODES:
        return lowered
    if lowered in NAMES:
        return NAMES[lowered]
    raise ValueError(
        f"unknown language {value!r} (use auto, a Whisper language code such as en, de, es, zh, "
        f"or zh-Hant for Traditional Chinese)"
    )


def whisper_code(language: str) -> str | None:
    """What Whisper is told for the caption ``language`` (None for ``auto``)."""
    if language == AUTO:
        return None
    return "zh" if language == TRADITIONAL_CHINESE else language


def caption_language(asked: str, heard: str) -> str:
    """The language the captions are written in: ``asked`` unless it is ``auto``, then the
    ``heard`` (detected) Whisper code."""
    return heard if asked == AUTO else asked


#: A detected language this probable makes captions in another language worth a warning.
PLAINLY = 0.8


def plainly_other(language: str, detected: str, probability: float) -> bool:
    """True when speech detected as ``detected`` with ``probability`` is plainly not in the
    caption ``language`` (``zh-Hant`` is Chinese; ``auto`` never is)."""
    return language != AUTO and whisper_code(language) != detected and probability >= PLAINLY


def chinese_script(language: str) -> str | None:
    """The OpenCC conversion captions in ``language`` get: ``t2s`` (Simplified) for Chinese,
    ``s2t`` for ``zh-Hant``, None for other languages."""
    if language == TRADITIONAL_CHINESE:
        return "s2t"
    return "t2s" if language == "zh" else None


@dataclass(frozen=True)
class ReadingNorms:
    """How captions in one language are laid out: at most ``max_chars`` characters a line
    on a landscape frame, ``max_cps`` characters a second; ``full_width`` for scripts whose
    characters are a whole em wide (Chinese, Japanese, Korean), so fewer fit a line."""

    max_chars: int
    max_cps: float
    full_width: bool = False


SPACED = ReadingNorms(max_chars=42, max_cps=20.0)
CHINESE = ReadingNorms(max_chars=16, max_cps=9.0, full_width=True)
JAPANESE = ReadingNorms(max_chars=13, max_cps=4.0, full_width=True)
#: Korean is written with spaces between words, in full-width syllables.
KOREAN = ReadingNorms(max_chars=16, max_cps=12.0, full_width=True)


def norms(language: str | None) -> ReadingNorms:
    """The reading norms for captions in ``language`` (a caption language; None or ``auto``:
    the space-separated norms)."""
    if language in ("zh", TRADITIONAL_CHINESE, "yue"):
        return CHINESE
    if language == "ja":
        return JAPANESE
    if language == "ko":
        return KOREAN
    return SPACED


def is_cjk(char: str) -> bool:
    """True when ``char`` is a Chinese, Japanese or Korean character or CJK punctuation."""
    return bool(char) and ("\u3000" <= char <= "\u9fff" or "\uac00" <= char <= "\ud7af" or "\uff00" <= char <= "\uffef")


def is_unspaced(char: str) -> bool:
    """True when ``char`` belongs to a script written without spaces between words (Han,
    kana, CJK punctuation and full-width forms; not Hangul, which Korean spaces)."""
    return bool(char) and ("\u3000" <= char <= "\u9fff" or "\uff00" <= char <= "\uffef")


def has_cjk(text: str) -> bool:
    """True when ``text`` has Chinese, Japanese or Korean characters."""
    return any(is_cjk(char) for char in text)


_QUOTED = re.compile(r"['\"“‘「『][^'\"”’」』]*['\"”’」』]")
_CAPTION_WORD = re.compile(r"captions?|subtitles?|\bsubs\b|字幕", re.IGNORECASE)


def named_in(instruction: str) -> str | None:
    """The caption language an ``edit:`` instruction names ("add German captions", "加中文字幕"),
    or None. Quoted text (titles) is ignored; an instruction without captions names none."""
    text = _QUOTED.sub(" ", instruction).lower()
    if not _CAPTION_WORD.search(text):
        return None
    found = re.search(NAME_PATTERN, text)
    return NAMES[found.group(0)] if found else None


def written_in_chinese(instruction: str) -> bool:
    """True when the instruction (outside quoted titles) is written in Chinese characters."""
    return has_cjk(_QUOTED.sub(" ", instruction))

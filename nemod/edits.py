"""Edit plans: the typed operations a rule asks for, parsed from its ``edit:`` text.

Pure: no I/O. ``parse_edit("trim the pauses, add captions, export 1080p MP4")``
returns a :class:`Plan`; a phrase the local engine does not understand raises
:class:`EditParseError` naming it, so ``nemod check`` reports it before any file
is touched. Structured YAML operations (``operations:`` in a rule) go through
:func:`plan_from_operations` and produce the same :class:`Plan`.

The instruction is split into phrases at commas, semicolons, "and"/"then" (and
their Chinese equivalents); each phrase must match one operation. Operations of
the same kind are merged ("cut the first 3 s, cut the last 2 s" is one
:class:`Cut`), and the plan is kept in the fixed order the engine applies them,
so the same meaning always gives the same (equal) plan.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from nemod import languages
from nemod.errors import NemodError


class EditParseError(NemodError):
    """An edit instruction (or one of its phrases) is not understood by the local engine."""


Aspect = Literal["16:9", "9:16", "1:1"]
Fit = Literal["crop", "pad"]
Position = Literal["top", "center", "bottom"]


@dataclass(frozen=True)
class Copy:
    """Keep the source as it is: remux into MP4 without re-encoding where the codecs allow."""


@dataclass(frozen=True)
class Cut:
    """Drop the ``first`` and ``last`` seconds of the source."""

    first: float = 0.0
    last: float = 0.0


@dataclass(frozen=True)
class Keep:
    """Keep only ``start``–``end`` seconds of the source (``end`` None: to the end)."""

    start: float = 0.0
    end: float | None = None


@dataclass(frozen=True)
class TrimPauses:
    """Cut silences longer than ``min_pause`` seconds, keeping ``padding`` seconds of the
    silence next to speech on each side (so a cut pause leaves ``2 × padding``)."""

    min_pause: float = 0.5
    padding: float = 0.2
    #: gentle | normal | aggressive: how readily speech-like sound is taken for a pause
    #: (``nemod.engine.pauses.SENSITIVITIES``).
    sensitivity: str = "normal"


#: The sensitivities a pause trim may name (their settings: ``nemod.engine.pauses.SENSITIVITIES``).
SENSITIVITY_NAMES = ("gentle", "normal", "aggressive")


@dataclass(frozen=True)
class Speed:
    """Play ``factor`` times as fast (0.5–4)."""

    factor: float = 1.0


@dataclass(frozen=True)
class Captions:
    """Captions from speech: always ``.srt``/``.vtt`` sidecars; burned into the picture when
    ``burn``. ``language`` is the caption language (:func:`nemod.languages.canonical`: a
    Whisper code, ``zh-Hant`` or ``auto`` to detect it per file); None when the rule does not
    say, which the engine takes as English."""

    burn: bool = True
    language: str | None = None


@dataclass(frozen=True)
class Title:
    """A text overlay: ``text`` from ``start`` for ``duration`` seconds at ``position``;
    ``size`` is the font height as a fraction of the frame height."""

    text: str
    start: float = 0.0
    duration: float = 3.0
    position: Position = "center"
    size: float = 0.08


@dataclass(frozen=True)
class Music:
    """Background music from ``path`` (relative to the config folder) at ``volume`` (0–1),
    looped to the video's length, ducked under speech when ``duck``."""

    path: str
    volume: float = 0.35
    duck: bool = True


@dataclass(frozen=True)
class Fade:
    """Fade picture and sound in from black/silence and out to it (seconds; 0: none)."""

    fade_in: float = 0.0
    fade_out: float = 0.0


@dataclass(frozen=True)
class Mute:
    """Drop the source's sound (background music, if any, still plays)."""


@dataclass(frozen=True)
class Normalize:
    """EBU R128 loudness normalisation to ``lufs`` integrated loudness."""

    lufs: float = -14.0


@dataclass(frozen=True)
class Export:
    """Output format: ``height`` in pixels of the short side (None keeps the source's),
    ``aspect`` (None keeps the source's), and how a different aspect is reached: ``crop``
    to the centre or ``pad`` with a blurred copy of the picture."""

    height: int | None = None
    aspect: Aspect | None = None
    fit: Fit = "crop"


#: The timeline formats a rule may ask for, each written to ``<stem>`` + its suffix
#: (``nemod.timeline_export.FORMATS`` says how): FCPXML (Final Cut Pro, DaVinci Resolve),
#: FCP 7 XML (Premiere Pro, Resolve), Kdenlive, OpenTimelineIO, CMX 3600 EDL.
TIMELINE_FORMATS = ("fcpxml", "premiere", "kdenlive", "otio", "edl")
#: Other names people use for them (editor names and file types).
TIMELINE_ALIASES: dict[str, str] = {
    "final cut": "fcpxml", "final cut pro": "fcpxml", "finalcut": "fcpxml", "final_cut": "fcpxml",
    "final_cut_pro": "fcpxml", "fcpx": "fcpxml", "fcp": "fcpxml", "resolve": "fcpxml",
    "davinci": "fcpxml", "davinci resolve": "fcpxml", "davinci_resolve": "fcpxml",
    "premiere pro": "premiere", "premiere_pro": "premiere", "xml": "premiere", "fcp7": "premiere",
    "fcp_xml": "premiere", "fcp 7": "premiere", "xmeml": "premiere",
    "opentimelineio": "otio", "cmx3600": "edl", "cmx 3600": "edl", "cmx_3600": "edl",
}


@dataclass(frozen=True)
class Timeline:
    """Write the cut as editor projects in ``formats`` (names in :data:`TIMELINE_FORMATS`)
    beside the outputs; ``render`` False writes the timeline (and caption sidecars) only,
    without the MP4."""

    formats: tuple[str, ...] = TIMELINE_FORMATS
    render: bool = True


def timeline_format(name: str) -> str:
    """The format :data:`TIMELINE_FORMATS` calls ``name`` (an editor's name or a file type,
    any case); raises :class:`EditParseError` naming it when nemod does not know it."""
    key = re.sub(r"\s+", " ", name.strip().lower().lstrip("."))
    key = TIMELINE_ALIASES.get(key, key)
    if key not in TIMELINE_FORMATS:
        raise EditParseError(
            f"unknown timeline format {name.strip()!r} (known: {', '.join(TIMELINE_FORMATS)}; "
            "or say Premiere, Resolve, Final Cut, Kdenlive, EDL)"
        )
    return key


Operation = Copy | Cut | Keep | TrimPauses | Speed | Captions | Title | Music | Fade | Mute | Normalize | Export | Timeline

#: The order the engine applies operations in; a plan is always kept in this order.
ORDER: tuple[type, ...] = (Copy, Keep, Cut, TrimPauses, Speed, Mute, Music, Normalize, Fade, Captions, Title, Export,
                           Timeline)
#: Operation names in structured ``operations:`` lists.
NAMES: dict[str, type] = {
    "copy": Copy, "cut": Cut, "keep": Keep, "trim_pauses": TrimPauses, "speed": Speed,
    "captions": Captions, "title": Title, "music": Music, "fade": Fade, "mute": Mute,
    "normalize": Normalize, "export": Export, "timeline": Timeline,
}


@dataclass(frozen=True)
class Plan:
    """An ordered tuple of operations; at most one of each kind, in :data:`ORDER`."""

    operations: tuple[Operation, ...] = field(default_factory=tuple)

    def find(self, kind: type[Any]) -> Any:
        """The operation of type ``kind`` in the plan, or None."""
        for operation in self.operations:
            if isinstance(operation, kind):
                return operation
        return None

    @property
    def export(self) -> Export:
        """The export settings (the default export when the plan names none)."""
        found: Export | None = self.find(Export)
        return found or Export()

    @property
    def renders(self) -> bool:
        """False when the plan asks for the timeline only (no MP4)."""
        timeline: Timeline | None = self.find(Timeline)
        return timeline is None or timeline.render

    @property
    def is_copy(self) -> bool:
        """True when the plan only asks for the source as it is."""
        return self.find(Copy) is not None


# --- merging and validation ---------------------------------------------------------------


def _merge(old: Operation, new: Operation) -> Operation:
    """Combine two operations of the same kind; fields set in ``new`` win."""
    if type(old) is not type(new):  # pragma: no cover - callers group by type
        raise TypeError("cannot merge different operations")
    if isinstance(old, Timeline) and isinstance(new, Timeline):
        # "for Premiere and Kdenlive": the formats add up ("export the timeline" names none:
        # all of them); "only" anywhere means no MP4.
        formats = tuple(dict.fromkeys((*old.formats, *new.formats))) if old.formats and new.formats else ()
        return Timeline(formats=formats, render=old.render and new.render)
    defaults: Any = None if isinstance(new, (Title, Music)) else type(new)()
    changes = {}
    for item in fields(new):
        value = getattr(new, item.name)
        if defaults is None or value != getattr(defaults, item.name):
            changes[item.name] = value
    return replace(old, **changes)


def _validate(operation: Operation) -> None:
    def bad(message: str) -> EditParseError:
        return EditParseError(message)

    if isinstance(operation, TrimPauses):
        if operation.sensitivity not in SENSITIVITY_NAMES:
            raise bad(f"sensitivity {operation.sensitivity!r} is not gentle, normal or aggressive")
        if operation.padding < 0 or operation.min_pause <= 0:
            raise bad("trim pauses needs a positive min_pause and a padding ≥ 0")
        if operation.min_pause < 2 * operation.padding:
            raise bad(
                f"min_pause ({operation.min_pause:g} s) must be at least twice the padding "
                f"({operation.padding:g} s), or there is nothing left to cut"
            )
    elif isinstance(operation, Speed) and not 0.25 <= operation.factor <= 4:
        raise bad(f"speed {operation.factor:g}x is outside 0.25x–4x")
    elif isinstance(operation, Cut) and (operation.first < 0 or operation.last < 0):
        raise bad("cut lengths must be ≥ 0 seconds")
    elif isinstance(operation, Keep) and (
        operation.start < 0 or (operation.end is not None and operation.end <= operation.start)
    ):
        raise bad("keep needs a start before its end")
    elif isinstance(operation, Music) and not 0 <= operation.volume <= 2:
        raise bad(f"music volume {operation.volume:g} is outside 0–200%")
    elif isinstance(operation, Title):
        if not operation.text.strip():
            raise bad("a title needs some text")
        if operation.duration <= 0 or operation.start < 0:
            raise bad("a title needs a start ≥ 0 and a positive duration")
        if operation.position not in ("top", "center", "bottom"):
            raise bad(f"title position {operation.position!r} is not top, center or bottom")
    elif isinstance(operation, Export):
        if operation.height is not None and not 144 <= operation.height <= 2160:
            raise bad(f"export height {operation.height} is outside 144–2160")
        if operation.aspect not in (None, "16:9", "9:16", "1:1"):
            raise bad(f"aspect {operation.aspect!r} is not 16:9, 9:16 or 1:1")
        if operation.fit not in ("crop", "pad"):
            raise bad(f"fit {operation.fit!r} is not crop or pad")
    elif isinstance(operation, Fade) and (operation.fade_in < 0 or operation.fade_out < 0):
        raise bad("fade lengths must be ≥ 0 seconds")
    elif isinstance(operation, Captions) and operation.language is not None:
        try:
            known = languages.canonical(operation.language)
        except ValueError as exc:
            raise bad(str(exc)) from exc
        if known != operation.language:
            raise bad(f"caption language {operation.language!r} should be written {known!r}")
    elif isinstance(operation, Timeline):
        if not isinstance(operation.render, bool):
            raise bad(f"timeline render {operation.render!r} is not true or false")
        if not operation.formats:
            raise bad("a timeline export needs at least one format")
        for name in operation.formats:
            timeline_format(name)


def _assemble(operations: Sequence[Operation]) -> Plan:
    merged: dict[type, Operation] = {}
    for operation in operations:
        kind = type(operation)
        merged[kind] = _merge(merged[kind], operation) if kind in merged else operation
    timeline = merged.get(Timeline)
    if isinstance(timeline, Timeline) and not timeline.formats:
        merged[Timeline] = replace(timeline, formats=TIMELINE_FORMATS)  # no format named: all of them
    for operation in merged.values():
        _validate(operation)
    if Copy in merged and len(merged) > 1:
        others = ", ".join(sorted(name for name, kind in NAMES.items() if kind in merged and kind is not Copy))
        raise EditParseError(f"'copy' keeps the source as it is and cannot be combined with: {others}")
    return Plan(tuple(merged[kind] for kind in ORDER if kind in merged))


# --- plain-language phrases -----------------------------------------------------------------

_NUMBER = r"(\d+(?:\.\d+)?)"
_SECONDS = rf"{_NUMBER}\s*(ms|milliseconds?|s|secs?|seconds?|秒)?"
_TIME = r"(\d+:\d{1,2}(?::\d{1,2})?(?:\.\d+)?|\d+(?:\.\d+)?\s*(?:s|secs?|seconds?|秒)?)"
_RESOLUTIONS = {"480p": 480, "720p": 720, "1080p": 1080, "1440p": 1440, "2160p": 2160, "4k": 2160}
_SPLIT = re.compile(
    r"\s*(?:,|;|，|；|、|\band then\b|\bthen\b|\band\b|\bplus\b|&|和|并且|并|然后|再)\s*", re.IGNORECASE
)


def _seconds(value: str, unit: str | None) -> float:
    number = float(value)
    return number / 1000 if unit and unit.startswith("m") else number


def _clock(text: str) -> float:
    """``1:45`` → 105.0, ``1:02:03.5`` → 3723.5, ``90s`` → 90.0."""
    text = re.sub(r"\s*(s|secs?|seconds?|秒)$", "", text.strip())
    total = 0.0
    for part in text.split(":"):
        total = total * 60 + float(part)
    return total


def _copy(match: re.Match[str]) -> list[Operation]:
    return [Copy()]


def _trim(match: re.Match[str]) -> list[Operation]:
    text = match.string
    _check_words(match, _TRIM_WORDS)
    options: dict[str, Any] = {}
    if re.search(r"\b(?:gentl[ey]|carefully|conservatively|safely|softly|lightly)\b", text, re.IGNORECASE):
        options["sensitivity"] = "gentle"
    elif re.search(r"\b(?:aggressive(?:ly)?|tight(?:ly)?|hard)\b", text, re.IGNORECASE):
        options["sensitivity"] = "aggressive"
    longer = re.search(rf"(?:longer than|over|above|at least|of|>=?|超过)\s*{_SECONDS}", text)
    if longer:
        options["min_pause"] = _seconds(longer.group(1), longer.group(2))
    padding = re.search(rf"(?:padding|margin)\s*(?:of)?\s*{_SECONDS}|{_SECONDS}\s*(?:of\s*)?(?:padding|margin)", text)
    if padding:
        value, unit = (padding.group(1), padding.group(2)) if padding.group(1) else (padding.group(3), padding.group(4))
        options["padding"] = _seconds(value, unit)
    return [TrimPauses(**options)]


def _captions(match: re.Match[str]) -> list[Operation]:
    text = match.string
    _check_words(match, _CAPTION_WORDS)
    sidecar = re.search(
        r"sidecar|srt|vtt|files? only|only (?:as )?files?|not burn|don't burn|do not burn|without burn|"
        r"separate|外挂|不烧录|不要烧录",
        text,
    )
    named = re.search(languages.NAME_PATTERN, text)
    return [Captions(burn=not sidecar, language=languages.NAMES[named.group(0)] if named else None)]


_EXPORT_WORDS = (
    r"\b(?:export|render|output|save|as|a|an|to|in|into|the|it|video|mp4|file|clean|h\.?264|format|"
    r"with|and|blurred|blur|background|bars|padding|padded|pad|crop|cropped|centre|center|letterbox(?:ed)?|"
    r"fit|inside|vertical|portrait|square|landscape|horizontal|widescreen|tiktok|reels?|shorts|for|make|"
    r"turn|convert|hd|full)\b|(?<![a-z0-9])(?:\d{3,4}p|4k)(?![a-z0-9])|9:16|16:9|1:1|\d{3,4}\s*[x×]\s*\d{3,4}|"
    r"导出|输出|转成|做成|竖屏|竖版|横屏|横版|方形|正方形|模糊|背景|留白|视频|为|成"
)
_CAPTION_WORDS = (
    rf"{languages.NAME_PATTERN}|"
    r"\b(?:add|burn(?:ed|t)?|in|generate|with|auto|automatic|captions?|subtitles?|subs|sidecars?|"
    r"srt|vtt|files?|only|as|not|don't|do|without|burning|separate|the|and|some|show|on|into|video|"
    r"picture)\b|字幕|添加|加上?|生成|外挂|不烧录|不要烧录|烧录|自动"
)
_TRIM_WORDS = (
    r"\b(?:trim|remove|cut|delete|drop|out|the|all|any|pauses?|silences?|silent|parts|bits|gaps|dead|air|"
    r"breaks|jump|jump-cuts?|cuts?|gentl[ey]|carefully|conservatively|safely|softly|lightly|aggressive(?:ly)?|"
    r"tight(?:ly)?|hard|longer|than|over|above|at|least|of|with|keep|keeping|padding|margin|"
    r"\d+(?:\.\d+)?|ms|milliseconds?|s|secs?|seconds?|between|sentences|words|long)\b|>=?|"
    r"\d+(?:\.\d+)?(?:ms|s|秒)|去除|去掉|剪掉|删除|删掉|剪去|剪除|移除|所有|的|停顿|静音段?|空白|沉默|气口|超过|秒"
)


def _export(match: re.Match[str]) -> list[Operation]:
    text = match.string
    _check_words(match, _EXPORT_WORDS)
    height = None
    resolution = re.search(r"(?<![a-z0-9])(\d{3,4}p|4k)(?![a-z0-9])", text)
    if resolution:
        word = resolution.group(1)
        height = _RESOLUTIONS.get(word) or int(word.rstrip("p"))
    aspect: Aspect | None = None
    size = re.search(r"\b(\d{3,4})\s*[x×]\s*(\d{3,4})\b", text)
    if size:
        width, tall = int(size.group(1)), int(size.group(2))
        aspect = "9:16" if tall > width else ("1:1" if tall == width else "16:9")
        height = min(width, tall)
    elif re.search(r"9:16|vertical|portrait|竖屏|竖版|tiktok|reels?|shorts", text):
        aspect = "9:16"
    elif re.search(r"1:1|square|方形|正方形", text):
        aspect = "1:1"
    elif re.search(r"16:9|horizontal|landscape|widescreen|横屏|横版", text):
        aspect = "16:9"
    fit: Fit = "pad" if re.search(r"\bpad|blur|letterbox|fit inside|模糊|留白", text) else "crop"
    return [Export(height=height, aspect=aspect, fit=fit)]


def _title(match: re.Match[str]) -> list[Operation]:
    text = match.string
    quoted = re.search(r"['\"“‘「『](.+?)['\"”’」』]", text)
    if not quoted:
        raise EditParseError(f"a title needs its text in quotes, e.g. add title 'Urban Dreams' (in {text!r})")
    options: dict[str, Any] = {"text": quoted.group(1)}
    rest = text[: quoted.start()] + text[quoted.end():]
    position = re.search(r"\b(top|bottom|center|centre|middle)\b|(顶部|底部|中间|居中)", rest)
    if position:
        word = position.group(1) or position.group(2)
        options["position"] = {
            "centre": "center", "middle": "center", "顶部": "top", "底部": "bottom",
            "中间": "center", "居中": "center",
        }.get(word, word)
    duration = re.search(rf"(?:for|during)\s*(?:the\s*)?(?:first\s*)?{_SECONDS}|(?:前)\s*{_SECONDS}", rest)
    if duration:
        value, unit = (duration.group(1), duration.group(2)) if duration.group(1) else (duration.group(3), duration.group(4))
        options["duration"] = _seconds(value, unit)
    start = re.search(rf"(?:from|starting at|at)\s*{_TIME}", rest)
    if start:
        options["start"] = _clock(start.group(1))
    return [Title(**options)]


def _music(match: re.Match[str]) -> list[Operation]:
    text = match.string
    path = re.search(r"(?:music|bgm|soundtrack|背景音乐|配乐)\s*(?:from\s*|file\s*|:\s*)?['\"]?([^\s'\"]+\.(?:mp3|wav|m4a|aac|flac|ogg|opus))", text, re.IGNORECASE)
    if not path:
        raise EditParseError(f"background music needs a file, e.g. add BGM music/lofi.mp3 at 35% (in {text!r})")
    options: dict[str, Any] = {"path": path.group(1)}
    volume = re.search(r"(\d+(?:\.\d+)?)\s*%", text)
    if volume:
        options["volume"] = float(volume.group(1)) / 100
    if re.search(r"no duck|without duck|don't duck|do not duck|不闪避", text):
        options["duck"] = False
    return [Music(**options)]


def _cut(match: re.Match[str]) -> list[Operation]:
    text = match.string
    seconds = _seconds(match.group("n"), match.group("u"))
    last = re.search(r"last|end|ending|结尾|末尾|最后", text)
    return [Cut(last=seconds) if last else Cut(first=seconds)]


def _keep(match: re.Match[str]) -> list[Operation]:
    return [Keep(start=_clock(match.group("a")), end=_clock(match.group("b")))]


def _speed(match: re.Match[str]) -> list[Operation]:
    factor = float(match.group("f"))
    if re.search(r"slow|放慢|慢放", match.string) and factor > 1:
        factor = 1 / factor
    return [Speed(factor=factor)]


def _fade(match: re.Match[str]) -> list[Operation]:
    text = match.string
    length = re.search(_SECONDS, text)
    seconds = _seconds(length.group(1), length.group(2)) if length else 1.0
    want_in = bool(re.search(r"\bin\b|淡入", text))
    want_out = bool(re.search(r"\bout\b|淡出", text))
    if not want_in and not want_out:
        want_in = want_out = True
    return [Fade(fade_in=seconds if want_in else 0.0, fade_out=seconds if want_out else 0.0)]


def _mute(match: re.Match[str]) -> list[Operation]:
    return [Mute()]


def _normalize(match: re.Match[str]) -> list[Operation]:
    level = re.search(r"(-\s*\d+(?:\.\d+)?)\s*(?:lufs|db)?", match.string)
    return [Normalize(lufs=float(level.group(1).replace(" ", "")))] if level else [Normalize()]


_EDITORS = (
    r"premiere(?: pro)?|(?:davinci )?resolve|davinci|final cut(?: pro)?|fcpx|fcp ?7|fcp|kdenlive|"
    r"fcpxml|edl|cmx ?3600|otio|opentimelineio|xmeml|xml"
)
_TIMELINE_WORDS = (
    r"\b(?:export|save|write|make|output|give|hand|also|the|a|an|as|an?|timelines?|projects?|files?|"
    r"editors?|editing|edit|decision|list|for|to|into|in|only|just|without|no|not|mp4|render(?:ing|ed)?|video|"
    r"too|well|me|over|of|cut)\b"
)


def _timeline(match: re.Match[str]) -> list[Operation]:
    text = match.string
    render = not re.search(r"\bonly\b|\bjust\b|without (?:the )?(?:mp4|render|video)|\bno (?:mp4|render)|"
                           r"\bnot render", text)
    formats: list[str] = []
    named = re.search(r"\b(?:for|to|into|in)\s+(.+?)(?:\s+(?:only|too|as well|without\b.*|with no\b.*|no\b.*))?$", text)
    rest = text
    if named:
        rest = text[: named.start()] + " " + text[named.end(1):]
        for part in re.split(r"\s*(?:/|\bor\b|\+)\s*", named.group(1)):
            if part.strip():
                editor = re.sub(r"\s+(?:formats?|files?|projects?|timelines?|xml)$", "", part.strip())
                formats.append(timeline_format(re.sub(r"^(?:an?|the)\s+", "", editor)))
    for found in re.finditer(rf"(?<![a-z0-9])({_EDITORS})(?![a-z0-9])", rest):
        formats.append(timeline_format(found.group(1)))
    rest = re.sub(rf"(?<![a-z0-9])(?:{_EDITORS})(?![a-z0-9])", " ", rest)
    leftover = [word for word in re.sub(_TIMELINE_WORDS, " ", rest).split() if word]
    if leftover:
        raise EditParseError(f"the local engine does not understand {text!r} ({' '.join(leftover)!r})")
    return [Timeline(formats=tuple(dict.fromkeys(formats)), render=render)]


def _cut_any(match: re.Match[str]) -> list[Operation]:
    if match.group("n") is not None:
        return _cut(match)
    seconds = _seconds(match.group("n2"), match.group("u2"))
    return [Cut(last=seconds) if "end" in match.string else Cut(first=seconds)]


def _speed_any(match: re.Match[str]) -> list[Operation]:
    if match.group("f") is not None:
        return _speed(match)
    factor = float(match.group("f2"))
    return [Speed(factor=1 / factor if "放慢" in match.string else factor)]


#: (pattern over the whole lower-cased phrase, builder). First match wins.
_PHRASES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], list[Operation]]], ...] = tuple(
    (re.compile(pattern), builder)
    for pattern, builder in (
        (r"(?:just |only )?(?:copy|remux)(?: it| the file| the video| as is)?(?: to mp4)?|keep (?:it )?as[ -]is|"
         r"as[ -]is|no[ -]?edit(?:s|ing)?|unchanged|原样|保持原样|不编辑|直接复制", _copy),
        (r".*(?:pauses?|silences?|silent (?:parts|bits|gaps)|dead air|gaps|breaks|jump[ -]?cuts?).*|"
         r".*(?:去除|去掉|剪掉|删除|删掉|剪去|剪除|移除)(?:所有)?(?:的)?(?:停顿|静音|空白|沉默|气口).*|"
         r".*(?:停顿|静音段|气口)(?:去除|去掉|剪掉|删除).*", _trim),
        (r".*(?:captions?|subtitles?|subs\b|字幕).*", _captions),
        (r"(?:add |put |with |show )?(?:an? |the )?(?:title|text overlay|text|heading|标题|文字)\b.*|"
         r"(?:添加|加上?)(?:标题|文字).*", _title),
        (r".*(?:music|bgm|soundtrack|背景音乐|配乐).*", _music),
        (r"(?:cut|trim|remove|drop|skip|delete|去掉|剪掉|删除)\s*(?:off\s*)?(?:the\s*)?"
         r"(?:first|last|start|end|beginning|ending|opening|开头|结尾|末尾|最后|前|后)\s*(?:the\s*)?"
         r"(?P<n>\d+(?:\.\d+)?)\s*(?P<u>ms|s|secs?|seconds?|秒)?(?:\s*(?:of it|of the video|钟))?|"
         r"(?:cut|trim|remove|drop|skip)\s*(?P<n2>\d+(?:\.\d+)?)\s*(?P<u2>s|secs?|seconds?)\s*"
         r"(?:from|off|at)\s*(?:the\s*)?(?:start|end|beginning)", _cut_any),
        (rf"(?:keep|only keep|trim to|保留)\s*(?:only\s*)?(?:from\s*)?(?P<a>{_TIME})\s*(?:-|–|—|to|until|到|至)\s*(?P<b>{_TIME})(?:\s*only)?", _keep),
        (r"(?:speed(?: it)? up|speed|play|make it|加速|倍速|slow(?: it)? down|放慢|慢放)?\s*(?:the video\s*)?(?:to|by|at)?\s*"
         r"(?P<f>\d+(?:\.\d+)?)\s*(?:x|×|倍)(?:\s*(?:speed|faster|slower|速))?|"
         r"(?:加速|放慢)\s*(?P<f2>\d+(?:\.\d+)?)\s*倍", _speed_any),
        (rf"(?:add\s*(?:a\s*)?)?fade(?:s)?(?:\s*(?:in|out|in/out|in-out))?(?:\s*(?:and|&)\s*out)?(?:\s*(?:of|over|for)?\s*{_SECONDS})?|"
         r"(?:淡入|淡出|淡入淡出)(?:\s*\d+(?:\.\d+)?\s*秒)?", _fade),
        (r"mute(?: it| the (?:audio|sound|video))?|(?:remove|drop|strip|no) (?:the )?(?:audio|sound)|silent|静音|去掉声音|去除声音", _mute),
        (r"(?:normali[sz]e|level|even out)(?: the)?(?: (?:audio|sound|volume|loudness))?(?: (?:loudness|levels?))?"
         r"(?: to (?:-\s*\d+(?:\.\d+)?) ?(?:lufs|db)?)?|loudnorm|ebu r128|(?:响度|音量)(?:标准化|归一化)|标准化(?:响度|音量)", _normalize),
        (r"(?:.*\s)?(?:timelines?|projects?|edit decision list|edl|otio|opentimelineio|fcpxml|xmeml|xml)(?:\s.*)?|"
         rf"(?:for\s+|also\s+)?(?:an?\s+)?(?:{_EDITORS})(?:\s+(?:too|as well|only))?", _timeline),
        (r".*(?:export|render|output|save|导出|输出|转成|做成).*|"
         r"(?:make it |turn it |convert (?:it )?to |as\s*(?:an?\s*)?)?(?:\d{3,4}p|4k|vertical|portrait|square|landscape|horizontal|"
         r"9:16|16:9|1:1|\d{3,4}\s*[x×]\s*\d{3,4}|竖屏|横屏|方形)(?:\s*(?:9:16|16:9|1:1))?(?:\s*(?:mp4|video|format))?"
         r"(?:\s*(?:with\s*(?:a\s*)?)?(?:blurred?\s*(?:background|bars|padding)?|pad(?:ded|ding)?|crop(?:ped)?|letterbox(?:ed)?))?|"
         r"mp4", _export),
    )
)


def _parse_phrase(phrase: str) -> list[Operation]:
    original = re.sub(r"\s+", " ", phrase.strip())
    text = original.lower()
    text = re.sub(r"^(?:please |and |also |then |请|再|并)", "", text).strip()
    for pattern, builder in _PHRASES:
        match = pattern.fullmatch(text)
        if match:
            operations = builder(match)
            return [_restore_case(operation, original) for operation in operations]
    raise EditParseError(f"the local engine does not understand {phrase.strip()!r}")


def _restore_case(operation: Operation, original: str) -> Operation:
    """Titles and file names keep the case they were written in."""
    if isinstance(operation, Title):
        quoted = re.search(r"['\"“‘「『](.+?)['\"”’」』]", original)
        return replace(operation, text=quoted.group(1)) if quoted else operation
    if isinstance(operation, Music):
        start = original.lower().find(operation.path)
        return replace(operation, path=original[start:start + len(operation.path)]) if start >= 0 else operation
    return operation


def _check_words(match: re.Match[str], allowed: str) -> None:
    """Raise when the phrase has words outside ``allowed`` (so nothing is silently ignored)."""
    rest = re.sub(allowed, " ", match.string)
    leftover = [word for word in re.split(r"[\s/]+", rest) if word and not re.fullmatch(r"[-.:%x×]+", word)]
    if leftover:
        raise EditParseError(f"the local engine does not understand {match.string!r} ({' '.join(leftover)!r})")


def _phrases(text: str) -> list[str]:
    # Keep quoted titles and "fade in and out" whole before splitting at "and"/commas.
    protected: list[str] = []

    def hide(match: re.Match[str]) -> str:
        protected.append(match.group(0))
        return f"\x00{len(protected) - 1}\x00"

    hidden = re.sub(r"['\"“‘「『][^'\"”’」』]*['\"”’」』]", hide, text)
    hidden = re.sub(r"\bin (?:and|&) out\b", "in/out", hidden, flags=re.IGNORECASE)
    hidden = re.sub(r"(\d),(\d{3})\b", r"\1\2", hidden)
    parts = _SPLIT.split(hidden)
    restored = [re.sub(r"\x00(\d+)\x00", lambda m: protected[int(m.group(1))], part) for part in parts]
    return [part.strip(" .。!！") for part in restored if part.strip(" .。!！")]


def parse_edit(text: str) -> Plan:
    """Parse an ``edit:`` instruction into a :class:`Plan`.

    Raises :class:`EditParseError` naming the first phrase that is not understood, or
    describing an option that is out of range.
    """
    operations: list[Operation] = []
    for phrase in _phrases(text):
        operations.extend(_parse_phrase(phrase))
    return _assemble(operations)


# --- structured operations ------------------------------------------------------------------

_ALIASES: dict[str, str] = {
    "remux": "copy", "trim_silence": "trim_pauses", "remove_silence": "trim_pauses",
    "subtitles": "captions", "bgm": "music", "background_music": "music", "text": "title",
    "loudnorm": "normalize", "normalise": "normalize",
}


def _coerce(kind: type, options: dict[str, Any]) -> dict[str, Any]:
    result = dict(options)
    if kind is Keep:
        for key in ("start", "end"):
            if isinstance(result.get(key), str):
                result[key] = _clock(result[key])
    if kind is Music and isinstance(result.get("volume"), str):
        result["volume"] = float(result["volume"].rstrip("% ")) / 100
    if kind is Music and isinstance(result.get("volume"), (int, float)) and result["volume"] > 2:
        result["volume"] = result["volume"] / 100
    if kind is Captions and isinstance(result.get("language"), str):
        try:
            result["language"] = languages.canonical(result["language"])
        except ValueError as exc:
            raise EditParseError(f"operation 'captions': {exc}") from exc
    if kind is Export and isinstance(result.get("height"), str):
        height = result["height"].lower()
        result["height"] = _RESOLUTIONS.get(height) or int(height.rstrip("p"))
    if kind is Timeline and "formats" in result:
        names = result["formats"]
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
            raise EditParseError("operation 'timeline': formats is a list of format names, e.g. [fcpxml, premiere]")
        result["formats"] = tuple(dict.fromkeys(timeline_format(name) for name in names))
    if kind is Fade:
        for short, full in (("in", "fade_in"), ("out", "fade_out")):
            if short in result:
                result[full] = result.pop(short)
    for item in fields(kind):
        value = result.get(item.name)
        if isinstance(value, int) and not isinstance(value, bool) and item.type in ("float", "float | None"):
            result[item.name] = float(value)
    return result


def plan_from_operations(items: Sequence[Mapping[str, Any]]) -> Plan:
    """Build a :class:`Plan` from a rule's structured ``operations:`` list, e.g.
    ``[{"op": "trim_pauses", "min_pause": 0.6}, {"op": "export", "height": 1080}]``.

    Raises :class:`EditParseError` for an unknown operation or option.
    """
    operations: list[Operation] = []
    for item in items:
        name = str(item.get("op", "")).strip().lower().replace("-", "_").replace(" ", "_")
        name = _ALIASES.get(name, name)
        kind = NAMES.get(name)
        if kind is None:
            raise EditParseError(
                f"the local engine does not understand operation {item.get('op')!r} "
                f"(known: {', '.join(sorted(NAMES))})"
            )
        options = {key: value for key, value in item.items() if key != "op"}
        allowed = {item.name for item in fields(kind)}
        unknown = sorted(set(_coerce(kind, options)) - allowed)
        if unknown:
            raise EditParseError(
                f"operation {name!r} has no option {unknown[0]!r}"
                + (f" (options: {', '.join(sorted(allowed))})" if allowed else " (it takes no options)")
            )
        try:
            operations.append(kind(**_coerce(kind, options)))
        except TypeError as exc:
            raise EditParseError(f"operation {name!r}: {exc}") from exc
    return _assemble(operations)


def describe(plan: Plan) -> list[str]:
    """One short human line per operation (for logs and ``nemod explain``)."""
    lines = []
    for operation in plan.operations:
        name = next(key for key, kind in NAMES.items() if isinstance(operation, kind))
        options = ", ".join(f"{item.name}={getattr(operation, item.name)!r}" for item in fields(operation))
        lines.append(f"{name}({options})" if options else name)
    return lines

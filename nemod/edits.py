"""Edit plans: the typed operations a rule asks for, parsed from its ``edit:`` text.

Pure: no I/O. ``parse_edit("trim the pauses, add captions, export 1080p MP4")``
returns a :class:`Plan`; a phrase the local engine does not understand raises
:class:`EditParseError` naming it, so ``nemod check`` reports it before any file
is touched. Structured YAML operations (``operations:`` in a rule) go through
:func:`plan_from_operations` and produce the same :class:`Plan`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nemod.errors import NemodError


class EditParseError(NemodError):
    """An edit instruction (or one of its phrases) is not understood by the local engine."""


@dataclass(frozen=True)
class Export:
    """Output format: ``height`` in pixels of the short side's reference (None keeps the source),
    ``aspect`` (None keeps the source's), and how a different aspect is reached."""

    height: int | None = None
    aspect: Literal["16:9", "9:16", "1:1"] | None = None
    fit: Literal["crop", "pad"] = "crop"


Operation = Export


@dataclass(frozen=True)
class Plan:
    """An ordered tuple of operations; at most one of each kind."""

    operations: tuple[Operation, ...] = field(default_factory=tuple)

    @property
    def export(self) -> Export:
        """The export settings (the default export when the plan names none)."""
        for operation in self.operations:
            if isinstance(operation, Export):
                return operation
        return Export()


_SPLIT = re.compile(r"\s*(?:,|;|，|、|\band then\b|\bthen\b|\band\b|和|并且|然后)\s*", re.IGNORECASE)
_RESOLUTIONS = {"720p": 720, "1080p": 1080, "4k": 2160, "2160p": 2160, "480p": 480}


def _parse_phrase(phrase: str) -> list[Operation]:
    text = phrase.strip().lower()
    match = re.fullmatch(r"(?:export|导出)(?:\s+(?:as|to|in))?(?:\s+a)?(?:\s+clean)?\s*(720p|1080p|4k|2160p|480p)?\s*(?:mp4)?", text)
    if match:
        height = _RESOLUTIONS[match.group(1)] if match.group(1) else None
        return [Export(height=height)]
    raise EditParseError(f"the local engine does not understand {phrase.strip()!r}")


def parse_edit(text: str) -> Plan:
    """Parse an ``edit:`` instruction into a :class:`Plan`.

    Raises :class:`EditParseError` naming the first phrase that is not understood.
    """
    operations: list[Operation] = []
    for phrase in _SPLIT.split(text):
        if phrase.strip(" .。"):
            operations.extend(_parse_phrase(phrase.strip(" .。")))
    return Plan(tuple(operations))


def plan_from_operations(items: Sequence[Mapping[str, Any]]) -> Plan:
    """Build a :class:`Plan` from a rule's structured ``operations:`` list.

    Raises :class:`EditParseError` for an unknown operation or option.
    """
    operations: list[Operation] = []
    for item in items:
        kind = item.get("op")
        options = {key: value for key, value in item.items() if key != "op"}
        if kind == "export":
            operations.append(Export(**options))
        else:
            raise EditParseError(f"the local engine does not understand operation {kind!r}")
    return Plan(tuple(operations))

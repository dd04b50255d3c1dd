"""Which rule handles a file, and whether the file can be processed at all. Pure.

Rules are tried in order and the first that matches wins (like a mail filter).
Within a rule, a file must satisfy every condition given: one of the globs, one
of the extensions, and the size bounds.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import PurePath

from nemod.config import ACCEPTED_EXTENSIONS, CLOUD_MAX_BYTES, Rule, WatchFolder


@dataclass(frozen=True)
class MatchResult:
    """The winning rule (or None) and a human explanation of each rule tried."""

    rule: Rule | None
    reasons: tuple[str, ...]


def _why_not(rule: Rule, name: str, size: int) -> str | None:
    """Return why ``rule`` does not match a file called ``name`` of ``size`` bytes, or None."""
    match = rule.match
    lowered = name.lower()
    if match.globs and not any(fnmatch.fnmatchcase(lowered, g.lower()) for g in match.globs):
        return f"name does not match {' or '.join(match.globs)}"
    extension = PurePath(name).suffix.lower().lstrip(".")
    if match.extensions and extension not in match.extensions:
        return f"extension .{extension} is not one of {', '.join(match.extensions)}"
    if match.min_size is not None and size < match.min_size:
        return f"{size} bytes is below min_size {match.min_size}"
    if match.max_size is not None and size > match.max_size:
        return f"{size} bytes is above max_size {match.max_size}"
    return None


def match_rule(
    rules: tuple[Rule, ...], name: str, size: int, watch: WatchFolder | None = None
) -> MatchResult:
    """Find the first rule (among those the watch folder allows) that matches ``name``/``size``."""
    reasons: list[str] = []
    for rule in rules:
        if watch is not None and watch.rules and rule.name not in watch.rules:
            reasons.append(f"{rule.name}: not enabled for {watch.path}")
            continue
        why = _why_not(rule, name, size)
        if why is None:
            reasons.append(f"{rule.name}: matches ({_describe(rule)})")
            return MatchResult(rule, tuple(reasons))
        reasons.append(f"{rule.name}: {why}")
    return MatchResult(None, tuple(reasons))


def _describe(rule: Rule) -> str:
    parts = []
    if rule.match.globs:
        parts.append("glob " + " or ".join(rule.match.globs))
    if rule.match.extensions:
        parts.append("extension " + "/".join(rule.match.extensions))
    if rule.match.min_size is not None or rule.match.max_size is not None:
        parts.append(f"size {rule.match.min_size or 0}..{rule.match.max_size or 'any'} bytes")
    return ", ".join(parts) or "matches every file"


def unsupported_reason(name: str, size: int, backend: str) -> str | None:
    """Why a file cannot be processed at all (one human sentence), or None when it can.

    Checks the accepted types and, for the cloud backend, the 500 MB upload limit.
    """
    extension = PurePath(name).suffix.lower().lstrip(".")
    if extension not in ACCEPTED_EXTENSIONS:
        shown = f".{extension}" if extension else "no extension"
        return (
            f"{name} has {shown}, which is not an accepted type "
            f"(accepted: {', '.join(sorted(ACCEPTED_EXTENSIONS))})."
        )
    if size == 0:
        return f"{name} is empty (0 bytes)."
    if backend == "cloud" and size > CLOUD_MAX_BYTES:
        return (
            f"{name} is {size / 1e6:.0f} MB, above the cloud's 500 MB limit; "
            "trim or compress it, or use the local backend."
        )
    return None

"""The NemoVideo draft format's track kinds, its one-line human summary and the lines that
say why each pause was cut (``nemod explain``). Pure.

Neutral ground for the local engine (which writes drafts, ``nemod/engine/timeline.py``),
the cloud backend (which reads the drafts the service returns) and ``nemod serve``: none
of them needs the others (or PyAV) to name a track or summarise a draft.
"""

from __future__ import annotations

from typing import Any

VIDEO, AUDIO, TEXT = 0, 1, 7
Draft = dict[str, Any]


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.0f}"


def trim_lines(draft: Draft) -> list[str]:
    """Why each pause was cut, for ``nemod explain``: the trim's settings and signals, the
    notes of the analysis, then one line per cut (source time, length, what the signals said)."""
    video = next((track for track in draft.get("t", []) if track.get("tt") == VIDEO), None)
    trim = (video or {}).get("m", {}).get("trim")
    lines = [f"note: {note}" for note in draft.get("m", {}).get("notes", [])]
    if not trim:
        return lines
    cuts = trim.get("cuts", [])
    lines.append(
        f"pause trim: {len(cuts)} cut{'s' if len(cuts) != 1 else ''} (pauses of {trim['min_pause']:g} s or more, "
        f"{trim['padding']:g} s kept beside speech, sensitivity {trim['sensitivity']}; "
        f"speech found by {', '.join(trim['signals'])})")
    for cut in cuts:
        heard = ""
        if "silero_max" in cut:
            heard = (f": Silero at most {cut['silero_max']:.2f}, level "
                     f"{cut['level_over_floor_db']:g} dB over the recording's noise floor")
        lines.append(f"  cut {clock(cut['start'])}–{clock(cut['end'])} ({cut['seconds']:.1f} s){heard}")
    return lines


def clock(seconds: float, digits: int = 1) -> str:
    """``seconds`` as ``m:ss.s`` (``digits`` decimals; 0 gives ``m:ss``), for logs and explain."""
    minutes, rest = divmod(round(seconds, digits), 60)
    return f"{int(minutes)}:{rest:0{3 + digits if digits else 2}.{digits}f}"


def summarize(draft: Draft) -> str:
    """The human track summary, e.g.
    ``Timeline (2 tracks): 1. Video: talk.mp4 (0-94s, 6 pauses cut) 2. Captions (burned)``."""
    parts = []
    for index, track in enumerate(draft.get("t", []), start=1):
        meta = track.get("m", {})
        duration = track.get("d", draft.get("d", 0))
        kind = track.get("tt")
        if kind == VIDEO:
            extras = []
            if draft.get("m", {}).get("copy"):
                extras.append("copied as is")
            cuts = meta.get("pauses_cut", 0)
            if cuts:
                extras.append(f"{cuts} pause{'s' if cuts != 1 else ''} cut")
            if meta.get("speed", 1.0) not in (1, 1.0, None):
                extras.append(f"{meta['speed']:g}x")
            if meta.get("mute"):
                extras.append("muted")
            extra = "".join(f", {item}" for item in extras)
            parts.append(f"{index}. Video: {meta.get('name', 'video')} (0-{_seconds(duration)}s{extra})")
        elif kind == AUDIO:
            volume = meta.get("volume")
            level = f", {round(volume * 100)}%" if isinstance(volume, (int, float)) else ""
            parts.append(f"{index}. BGM: {meta.get('name', 'audio')} (0-{_seconds(duration)}s{level})")
        elif kind == TEXT and meta.get("kind") == "captions":
            how = "burned" if meta.get("burn", True) else "sidecar only"
            parts.append(f"{index}. Captions ({how})")
        elif kind == TEXT:
            segments = track.get("sg", [])
            if segments:
                seg = segments[0]
                parts.append(f'{index}. Title: "{seg.get("text", "")}" ({_seconds(seg["s"])}-{_seconds(seg["e"])}s)')
            else:
                parts.append(f"{index}. Text: {meta.get('name', 'text')}")
        else:
            parts.append(f"{index}. Track type {kind}: {meta.get('name', '')}".rstrip(": "))
    return f"Timeline ({len(parts)} track{'s' if len(parts) != 1 else ''}): " + " ".join(parts)

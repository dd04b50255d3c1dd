"""Timelines in the NemoVideo draft format. Pure.

A draft is ``{"t": [track, ...], "d": ms, "m": {...}}``; each track has ``tt``
(0 video, 1 audio, 7 text), ``sg`` (segments), ``d`` (duration, ms) and ``m``
(metadata). Video segments are source ranges ``{"src", "s", "e"}`` (ms in the
source) laid end to end on the output timeline.
"""

from __future__ import annotations

from typing import Any

from nemod.edits import Export, Plan
from nemod.media.probe import MediaInfo

VIDEO, AUDIO, TEXT = 0, 1, 7

Draft = dict[str, Any]


def output_size(export: Export, width: int, height: int) -> tuple[int, int]:
    """The output frame size for ``export`` applied to a ``width``×``height`` source.

    ``height`` in an export (720p, 1080p, 4K) names the short side; the aspect is the
    export's or the source's. Both sides are even (H.264 4:2:0 needs it).
    """
    aspect = _aspect(export.aspect) if export.aspect else width / height
    short = export.height or min(width, height)
    if aspect >= 1:
        out_w, out_h = short * aspect, short
    else:
        out_w, out_h = short, short / aspect
    return _even(out_w), _even(out_h)


def _aspect(text: str) -> float:
    left, right = text.split(":")
    return int(left) / int(right)


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def build_draft(plan: Plan, media: MediaInfo) -> Draft:
    """Build the draft for ``plan`` over the whole of ``media``."""
    export = plan.export
    width, height = output_size(export, media.width, media.height)
    duration_ms = int(round(media.duration * 1000))
    video_track = {
        "tt": VIDEO,
        "sg": [{"src": media.path.name, "s": 0, "e": duration_ms}],
        "d": duration_ms,
        "m": {"name": media.path.name},
    }
    return {
        "t": [video_track],
        "d": duration_ms,
        "m": {"canvas": {"w": width, "h": height, "fit": export.fit}, "fps": media.fps or 30},
    }


def summarize(draft: Draft) -> str:
    """The human track summary, e.g. ``Timeline (1 tracks): 1. Video: talk.mp4 (0-94s)``."""
    parts = []
    for index, track in enumerate(draft.get("t", []), start=1):
        meta = track.get("m", {})
        seconds = round(track.get("d", 0) / 1000)
        if track.get("tt") == VIDEO:
            parts.append(f"{index}. Video: {meta.get('name', 'video')} (0-{seconds}s)")
        elif track.get("tt") == AUDIO:
            parts.append(f"{index}. Audio: {meta.get('name', 'audio')} (0-{seconds}s)")
        else:
            parts.append(f"{index}. Text: {meta.get('name', 'text')}")
    return f"Timeline ({len(parts)} tracks): " + " ".join(parts)

"""A picture of one edit, as SVG: what was kept and cut of the source, and what the output
holds. Pure: takes a timeline and the source's loudness, returns text.

Two lanes share one width. The top lane is the *source*: its loudness over time, the kept
stretches on a light ground and the cut ones struck through in grey, each cut with a tooltip
(its times, length and what the speech signals said). The bottom lane is the *output*: the
kept stretches laid end to end, with the caption cues, the title and the music on it. The
heading gives the durations before and after. Every text from a file, rule or transcript is
escaped; the picture holds no script.

Used beside a job's outputs (``<stem>.timeline.svg``, rule option ``picture: svg``), by
``nemod explain --picture`` and by the status page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from nemod.timeline import Timeline, clock

#: The loudness the lane's floor stands for (dBFS); quieter is drawn as nothing.
FLOOR_DB = -60.0
WIDTH = 1200
_MARGIN = 16
_LANE = 90
_TEXT_ROW = 16
_KEPT, _CUT, _WAVE, _CAPTION, _TITLE, _MUSIC = "#e3f4e1", "#d9d9d9", "#2f6f3e", "#3b6ea8", "#8a4fa3", "#b07a1f"


@dataclass(frozen=True)
class Loudness:
    """A source's loudness: one dBFS value per ``step`` seconds from its start."""

    step: float
    db: Sequence[float]

    @property
    def duration(self) -> float:
        return self.step * len(self.db)


def cut_ranges(kept: Sequence[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """The stretches of a ``duration``-second source that ``kept`` leaves out (for a
    source cut in order; overlapping or reordered ranges are merged first)."""
    cuts, position = [], 0.0
    for start, end in sorted(kept):
        if start > position + 1e-6:
            cuts.append((position, start))
        position = max(position, end)
    if duration > position + 1e-6:
        cuts.append((position, duration))
    return cuts


def _attr(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


class _Canvas:
    """SVG elements on a ``WIDTH``-wide picture, seconds mapped to x."""

    def __init__(self, seconds: float) -> None:
        self.scale = (WIDTH - 2 * _MARGIN) / max(seconds, 1e-3)
        self.parts: list[str] = []

    def x(self, seconds: float) -> float:
        return _MARGIN + seconds * self.scale

    def rect(self, start: float, end: float, top: float, height: float, fill: str, tip: str = "",
             css: str = "") -> None:
        width = max(0.5, (end - start) * self.scale)
        title = f"<title>{escape(tip)}</title>" if tip else ""
        kind = f' class="{css}"' if css else ""
        if css == "kept":  # the joins between kept pieces show as thin white lines
            kind += ' stroke="#fff" stroke-width="1"'
        self.parts.append(
            f'<rect{kind} x="{_attr(self.x(start))}" y="{_attr(top)}" width="{_attr(width)}" '
            f'height="{_attr(height)}" fill="{fill}">{title}</rect>'
        )

    def text(self, x: float, y: float, content: str, *, size: int = 12, fill: str = "#222",
             anchor: str = "start") -> None:
        self.parts.append(
            f'<text x="{_attr(x)}" y="{_attr(y)}" font-size="{size}" fill="{fill}" '
            f'text-anchor="{anchor}">{escape(content)}</text>'
        )

    def ticks(self, seconds: float, top: float) -> None:
        step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
                     if seconds / s <= 12), 7200)
        mark = 0.0
        while mark <= seconds + 1e-6:
            self.parts.append(f'<line x1="{_attr(self.x(mark))}" y1="{_attr(top)}" x2="{_attr(self.x(mark))}" '
                              f'y2="{_attr(top + 4)}" stroke="#666"/>')
            self.text(self.x(mark), top + 15, clock(mark, 0), size=10, fill="#666", anchor="middle")
            mark += step


def _envelope(canvas: _Canvas, loudness: Loudness, top: float) -> None:
    """The loudness as a filled outline over the lane (floor at the bottom, 0 dBFS at the top)."""
    if not loudness.db:
        return
    bottom = top + _LANE
    points = [f"{_attr(canvas.x(0))},{_attr(bottom)}"]
    # At most about two points per pixel, each the loudest of its stretch.
    group = max(1, round(len(loudness.db) / (2 * (WIDTH - 2 * _MARGIN))))
    for first in range(0, len(loudness.db), group):
        db = max(loudness.db[first:first + group])
        height = max(0.0, min(1.0, (db - FLOOR_DB) / -FLOOR_DB)) * (_LANE - 4)
        points.append(f"{_attr(canvas.x((first + group / 2) * loudness.step))},{_attr(bottom - height)}")
    points.append(f"{_attr(canvas.x(loudness.duration))},{_attr(bottom)}")
    canvas.parts.append(f'<polygon points="{" ".join(points)}" fill="{_WAVE}" fill-opacity="0.75"/>')


def _cut_tips(timeline: Timeline) -> dict[tuple[float, float], str]:
    """What the trim said of each cut, keyed by rounded source times."""
    trim = timeline.video.trim if timeline.video else None
    tips = {}
    for cut in trim.cuts if trim else ():
        heard = ""
        if "silero_max" in cut:
            heard = (f"; Silero at most {cut['silero_max']:.2f}, "
                     f"{cut['level_over_floor_db']:g} dB over the noise floor")
        tips[(round(cut["start"], 1), round(cut["end"], 1))] = heard
    return tips


def _overlay_rows(canvas: _Canvas, timeline: Timeline, rows: float) -> float:
    """Draw a row each for the music, the titles and the captions of ``timeline`` from
    ``rows`` down; returns where the next row starts."""
    music = timeline.music
    if music is not None:
        canvas.rect(music.start / 1000, music.end / 1000, rows, _TEXT_ROW - 4, _MUSIC,
                    f"music: {music.name} at {round(music.volume * 100)}%", css="music")
        rows += _TEXT_ROW
    for title in timeline.titles:
        span = title.span
        canvas.rect(span.start / 1000, span.end / 1000, rows, _TEXT_ROW - 4, _TITLE, f"title: {span.text}", css="title")
        rows += _TEXT_ROW
    if timeline.captions is not None:
        for cue in timeline.captions.cues:
            canvas.rect(cue.start / 1000, cue.end / 1000, rows, _TEXT_ROW - 4, _CAPTION, cue.text, css="caption")
        rows += _TEXT_ROW
    return rows


def edit_picture(timeline: Timeline, loudness: Loudness, *, name: str = "", source_seconds: float | None = None) -> str:
    """The SVG picture of ``timeline`` applied to a source whose loudness is ``loudness``.

    ``source_seconds`` is the source's length (default: the loudness's); ``name`` heads
    the picture (escaped). A timeline with no video track draws the source lane only.
    """
    source = source_seconds if source_seconds is not None else loudness.duration
    kept = timeline.kept()
    output = timeline.duration / 1000 or sum(end - start for start, end in kept)
    cuts = cut_ranges(kept, source) if kept else []
    seconds = max(source, output, 1e-3)
    canvas = _Canvas(seconds)
    removed = max(0.0, source - output)
    heading = f"{name + ': ' if name else ''}{clock(source, 0)} → {clock(output, 0)}"
    if cuts:
        heading += f" ({len(cuts)} cut{'s' if len(cuts) != 1 else ''}, {clock(removed, 0)} removed)"
    canvas.text(_MARGIN, 18, heading, size=14)

    top = 30
    canvas.text(_MARGIN, top + 10, "source", size=10, fill="#666")
    top += 14
    canvas.rect(0, source, top, _LANE, _KEPT)
    tips = _cut_tips(timeline)
    for start, end in cuts:
        tip = f"cut {clock(start)}–{clock(end)} ({end - start:.1f} s)" + tips.get((round(start, 1), round(end, 1)), "")
        canvas.rect(start, end, top, _LANE, _CUT, tip, css="cut")
    _envelope(canvas, loudness, top)
    for start, end in cuts:  # struck through, over the sound that was cut
        canvas.parts.append(
            f'<line x1="{_attr(canvas.x(start))}" y1="{_attr(top + _LANE / 2)}" x2="{_attr(canvas.x(end))}" '
            f'y2="{_attr(top + _LANE / 2)}" stroke="#999" stroke-width="1"/>'
        )
    canvas.ticks(source, top + _LANE)
    top += _LANE + 24

    canvas.text(_MARGIN, top + 10, "output", size=10, fill="#666")
    top += 14
    position = 0.0
    for start, end in kept:
        length = (end - start) / timeline.speed
        canvas.rect(position, position + length, top, _LANE / 3, _KEPT,
                    f"from the source {clock(start)}–{clock(end)}", css="kept")
        position += length
    rows = _overlay_rows(canvas, timeline, top + _LANE / 3 + 4)
    canvas.ticks(output, rows)
    height = rows + 24
    legend = ("kept", _KEPT), ("cut", _CUT), ("captions", _CAPTION), ("title", _TITLE), ("music", _MUSIC)
    x = WIDTH - _MARGIN - 80 * len(legend)
    for label, colour in legend:
        canvas.parts.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{colour}"/>')
        canvas.text(x + 14, 17, label, size=10, fill="#444")
        x += 80
    label = quoteattr(f"edit of {name}" if name else "edit")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {_attr(height)}" '
        f'width="{WIDTH}" height="{_attr(height)}" role="img" aria-label={label} '
        f'font-family="DejaVu Sans, sans-serif">'
        f'<rect width="100%" height="100%" fill="#fff"/>' + "".join(canvas.parts) + "</svg>\n"
    )

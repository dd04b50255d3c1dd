"""The picture of an edit (pure): where kept and cut stretches, captions, title and music are
drawn, and that no text from a file or transcript can become markup."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from nemod.picture import _MARGIN, WIDTH, Loudness, cut_ranges, edit_picture
from nemod.timeline import CaptionTrack, Clip, MusicTrack, Span, Timeline, TitleTrack, TrimReport, VideoTrack

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<img src=x onerror=alert(1)>"


def _timeline() -> Timeline:
    cut = {"start": 4.0, "end": 6.0, "seconds": 2.0, "silero_max": 0.04, "level_over_floor_db": 1.0}
    trim = TrimReport(min_pause=0.5, padding=0.2, sensitivity="normal", signals=("silero",), cuts=(cut,))
    return Timeline(
        video=VideoTrack((Clip("a.mp4", 1000, 4000), Clip("a.mp4", 6000, 9000)), name="a.mp4", trim=trim),
        duration=6000,
        captions=CaptionTrack((Span(HOSTILE, 0, 1500), Span("second", 2000, 3000))),
        titles=(TitleTrack(Span("Welcome & <b>", 0, 2000)),),
        music=MusicTrack("m.mp3", "m.mp3", 0, 6000, volume=0.3),
    )


def _rects(svg: str, kind: str) -> list[ET.Element]:
    return [r for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("class") == kind]


def test_cut_ranges_are_what_the_kept_ranges_leave() -> None:
    assert cut_ranges([(1.0, 2.0), (3.0, 4.0)], 5.0) == [(0.0, 1.0), (2.0, 3.0), (4.0, 5.0)]
    assert cut_ranges([(0.0, 5.0)], 5.0) == []
    assert cut_ranges([(3.0, 4.0), (0.0, 3.5)], 4.0) == []  # reordered and overlapping: merged


def test_cuts_are_drawn_at_their_source_times_with_what_the_signals_said() -> None:
    svg = edit_picture(_timeline(), Loudness(0.5, [-20.0] * 20), name="a.mp4", source_seconds=10.0)
    cuts = _rects(svg, "cut")
    scale = (WIDTH - 2 * _MARGIN) / 10.0
    expected = [(0.0, 1.0), (4.0, 6.0), (9.0, 10.0)]
    assert [(round(float(r.get("x", 0)), 2), round(float(r.get("width", 0)), 2)) for r in cuts] == [
        (round(_MARGIN + a * scale, 2), round((b - a) * scale, 2)) for a, b in expected]
    tips = [r.findtext(f"{SVG}title") for r in cuts]
    assert tips[1] == "cut 0:04.0–0:06.0 (2.0 s); Silero at most 0.04, 1 dB over the noise floor"
    heading = next(ET.fromstring(svg).iter(f"{SVG}text")).text
    assert heading == "a.mp4: 0:10 → 0:06 (3 cuts, 0:04 removed)"


def test_the_output_lane_holds_kept_pieces_captions_title_and_music() -> None:
    svg = edit_picture(_timeline(), Loudness(0.5, [-20.0] * 20), source_seconds=10.0)
    assert len(_rects(svg, "kept")) == 2
    captions = _rects(svg, "caption")
    assert [c.findtext(f"{SVG}title") for c in captions] == [HOSTILE, "second"]
    (title,) = _rects(svg, "title")
    assert title.findtext(f"{SVG}title") == "title: Welcome & <b>"
    (music,) = _rects(svg, "music")
    assert music.findtext(f"{SVG}title") == "music: m.mp3 at 30%"


def test_text_from_files_and_transcripts_never_becomes_markup() -> None:
    svg = edit_picture(_timeline(), Loudness(0.5, []), name=f'{HOSTILE}".mp4', source_seconds=10.0)
    root = ET.fromstring(svg)  # parses: nothing unescaped broke the document
    tags = {element.tag.removeprefix(SVG) for element in root.iter()}
    assert tags <= {"svg", "rect", "title", "text", "line", "polygon"}
    assert "<img" not in svg and "script" not in svg
    assert root.get("aria-label") == f'edit of {HOSTILE}".mp4'


def test_louder_sound_is_drawn_taller() -> None:
    levels = [-60.0] * 10 + [-6.0] * 10
    svg = edit_picture(Timeline(video=None, duration=0), Loudness(0.5, levels), source_seconds=10.0)
    (polygon,) = ET.fromstring(svg).iter(f"{SVG}polygon")
    points = [tuple(map(float, p.split(","))) for p in (polygon.get("points") or "").split()]
    inner = points[1:-1]
    quiet = [y for x, y in inner if x < _MARGIN + 4.5 * (WIDTH - 2 * _MARGIN) / 10]
    loud = [y for x, y in inner if x > _MARGIN + 5.5 * (WIDTH - 2 * _MARGIN) / 10]
    assert quiet and loud and min(quiet) > max(loud)  # y grows downwards

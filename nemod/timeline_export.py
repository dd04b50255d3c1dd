"""Editor timelines: nemod's timeline → an OpenTimelineIO timeline → FCPXML, FCP 7 XML, Kdenlive,
OTIO and CMX 3600 EDL text. No file is read or written here (the local backend writes the
texts into the job's scratch folder and the pipeline publishes them); the one impurity is
the FCPXML adapter's own: it asks ``ffprobe``, when one is installed, for the frame size of
a media file that exists on this host, to name its format.

:func:`build_timeline` lays the edit out on tracks, frame by frame at its rate:

- ``V1`` the source's kept ranges end to end (the same frames nemod renders), one clip per
  kept range; ``A1`` the same ranges of the source's sound (sound follows picture);
- ``A2`` the background music, looped to the cut's length, with its volume;
- ``V2`` the title and ``V3`` the captions as text-generator clips (in FCPXML a Basic Title
  and ``caption`` elements; Kdenlive and EDL cannot hold them: a note, and the ``.srt``);
- a red marker at each cut (on the timeline; on the clip after the cut where a format
  keeps markers on clips only).

:func:`export` adapts that timeline to each format (what an adapter cannot write is left
out and said in a note) and returns the texts with the notes. Exceptions: :class:`ExportError`
(one sentence) when a format cannot reference the source at all.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import opentimelineio as otio

from nemod.edits import TIMELINE_FORMATS
from nemod.errors import NemodError
from nemod.timeline import MusicTrack, Span, Timeline, clock


class ExportError(NemodError):
    """A timeline format cannot reference the source (e.g. a frame rate it has no timecode for)."""


@dataclass(frozen=True)
class Format:
    """One timeline format: its file suffix, the OpenTimelineIO adapter that writes it, and
    the editors that open it (for notes and the README)."""

    suffix: str
    adapter: str
    label: str
    #: frame rates the format can time a source at (None: any).
    rates: tuple[float, ...] | None = None


_TIMECODE_RATES = (23.976, 24.0, 25.0, 29.97, 30.0, 48.0, 50.0, 59.94, 60.0)
#: The formats, keyed by the names rules use (:data:`nemod.edits.TIMELINE_FORMATS`).
FORMATS: dict[str, Format] = {
    "fcpxml": Format(".fcpxml", "fcpx_xml", "FCPXML (Final Cut Pro, DaVinci Resolve)",
                     (23.976, 24.0, 25.0, 29.97, 30.0, 50.0, 59.94, 60.0)),
    "premiere": Format(".xml", "fcp_xml", "FCP 7 XML (Premiere Pro, DaVinci Resolve)", _TIMECODE_RATES),
    "kdenlive": Format(".kdenlive", "kdenlive", "Kdenlive project"),
    "otio": Format(".otio", "otio_json", "OpenTimelineIO"),
    "edl": Format(".edl", "cmx_3600", "CMX 3600 EDL", _TIMECODE_RATES),
}
assert tuple(FORMATS) == TIMELINE_FORMATS, "every format a rule may name has a writer"


@dataclass(frozen=True)
class MediaFile:
    """A file the timeline references: the ``url`` editors open it by, its ``name``, its
    length in seconds, whether it has sound, its picture size (0: no picture) and its
    average frame rate (0: unknown)."""

    url: str
    name: str
    duration: float
    has_audio: bool = True
    width: int = 0
    height: int = 0
    fps: float = 0.0


@dataclass(frozen=True)
class Exported:
    """The written formats (suffix → file text) and notes on what a format could not hold."""

    texts: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def _frames(ms: float, fps: float) -> int:
    return round(ms / 1000 * fps)


def _range(start: int, duration: int, fps: float) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(otio.opentime.RationalTime(start, fps), otio.opentime.RationalTime(duration, fps))


def _fps(timeline: Timeline) -> float:
    """The timeline's frame rate. Raises :class:`ExportError` when it does not say."""
    if not timeline.fps:
        raise ExportError("the timeline has no frame rate to export at.")
    return timeline.fps


def source_frames(timeline: Timeline) -> list[tuple[int, int]]:
    """The timeline's kept source ranges as (first frame, frame count) at its rate."""
    fps = _fps(timeline)
    out = []
    for clip in timeline.clips:
        start, end = _frames(clip.start, fps), _frames(clip.end, fps)
        if end > start:
            out.append((start, end - start))
    return out


#: The broadcast rates nemod's drafts round to three decimals, as the exact NTSC rates.
_NTSC = {23.976: 24000 / 1001, 29.97: 30000 / 1001, 59.94: 60000 / 1001}


def exact_rate(fps: float) -> float:
    """The frame rate a timeline is timed at for a draft at ``fps``: the NTSC rate for
    23.976, 29.97 and 59.94 (so timecode is right), else ``fps``."""
    return next((rate for label, rate in _NTSC.items() if abs(fps - label) < 0.001), fps)


def _true_rate(fps: float) -> Fraction:
    return Fraction(exact_rate(fps)).limit_denominator(1001)


def build_timeline(edit: Timeline, source: MediaFile, name: str, music: MediaFile | None = None,
                   rate: float | None = None) -> otio.schema.Timeline:
    """The OpenTimelineIO timeline of ``edit`` (the local engine's timeline of ``source``),
    called ``name``; ``music`` is the background music file when the edit has a music track.
    Frames are counted at the edit's rate and timed at ``rate`` (default :func:`exact_rate`).

    Raises :class:`ExportError` when the edit has no video to lay out.
    """
    fps = _fps(edit)
    rate = rate or exact_rate(fps)
    ranges = source_frames(edit)
    if not ranges:
        raise ExportError("the timeline has no video to export.")
    available = _range(0, max(1, round(source.duration * fps)), rate)
    timeline = otio.schema.Timeline(name=name, global_start_time=otio.opentime.RationalTime(0, rate))
    timeline.metadata["nemod"] = {
        "canvas": {"w": edit.canvas.width, "h": edit.canvas.height, "fit": edit.canvas.fit} if edit.canvas else {},
        "fps": fps,
        "source": {"name": source.name, "width": source.width, "height": source.height, "fps": source.fps},
    }
    picture = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    sound = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    for index, (start, count) in enumerate(ranges):
        for track in (picture, sound):
            track.append(otio.schema.Clip(
                name=source.name,
                media_reference=otio.schema.ExternalReference(target_url=source.url, available_range=available),
                source_range=_range(start, count, rate),
                metadata={"nemod": {"cut": index, "track": track.name}},
            ))
    timeline.tracks.append(picture)
    if source.has_audio and not (edit.video and edit.video.mute):
        timeline.tracks.append(sound)
    total = sum(count for _, count in ranges)
    if edit.music is not None and music is not None:
        timeline.tracks.append(_music(edit.music, music, total, fps, rate))
    if edit.titles:
        title = edit.titles[0]
        timeline.tracks.append(_text_track("V2", "title", [title.span], total, fps, rate,
                                           position=title.position, size=title.size))
    if edit.captions is not None and edit.captions.cues:
        timeline.tracks.append(_text_track("V3", "captions", edit.captions.cues, total, fps, rate))
    position = 0
    previous_end: int | None = None
    for start, count in ranges:
        cut_from = previous_end if previous_end is not None else (0 if start > 0 else None)
        if cut_from is not None:
            timeline.tracks.markers.append(otio.schema.Marker(
                name=f"cut {clock(cut_from / fps)}–{clock(start / fps)} ({(start - cut_from) / fps:.1f} s)",
                marked_range=_range(position, 1, rate), color=otio.schema.MarkerColor.RED,
                metadata={"nemod": {"source_start": cut_from, "source_end": start}},
            ))
        position += count
        previous_end = start + count
    return timeline


def _music(track: MusicTrack, music: MediaFile, total: int, fps: float, rate: float) -> otio.schema.Track:
    """The music file looped over ``total`` frames (the renderer loops it the same way)."""
    volume = track.volume
    out = otio.schema.Track(name="A2", kind=otio.schema.TrackKind.Audio)
    length = max(1, math.floor(music.duration * fps))
    available = _range(0, length, rate)
    placed = 0
    while placed < total:
        count = min(length, total - placed)
        out.append(otio.schema.Clip(
            name=music.name,
            media_reference=otio.schema.ExternalReference(target_url=music.url, available_range=available),
            source_range=_range(0, count, rate),
            metadata={"nemod": {"volume": volume, "duck": track.duck}},
        ))
        placed += count
    return out


def _text_track(name: str, kind: str, spans: Sequence[Span], total: int, fps: float, rate: float, *,
                position: str = "bottom", size: float = 0.0) -> otio.schema.Track:
    """``spans`` as text clips (``position`` and ``size`` as generator parameters) with gaps
    between them, on the first ``total`` frames."""
    out = otio.schema.Track(name=name, kind=otio.schema.TrackKind.Video, metadata={"nemod": {"kind": kind}})
    placed = 0
    for span in spans:
        start, end = min(total, _frames(span.start, fps)), min(total, _frames(span.end, fps))
        if end <= start or start < placed:
            continue
        if start > placed:
            out.append(otio.schema.Gap(source_range=_range(0, start - placed, rate)))
        text = span.text
        out.append(otio.schema.Clip(
            name=text.replace("\n", " "),
            media_reference=otio.schema.GeneratorReference(
                name="Text", generator_kind="Text",
                parameters={"text": text, "position": position, "size": size},
                available_range=_range(0, end - start, rate),
            ),
            source_range=_range(0, end - start, rate),
        ))
        placed = end
    return out


# --- per format -----------------------------------------------------------------------------


def _text_tracks(timeline: otio.schema.Timeline) -> list[otio.schema.Track]:
    return [track for track in timeline.tracks if "kind" in track.metadata.get("nemod", {})]


def _without_text(timeline: otio.schema.Timeline) -> None:
    for track in _text_tracks(timeline):
        timeline.tracks.remove(track)


def _markers_on_clips(timeline: otio.schema.Timeline) -> None:
    """Move the timeline's cut markers onto the first frame of the clip after each cut."""
    picture = timeline.tracks[0]
    for marker in list(timeline.tracks.markers):
        at = marker.marked_range.start_time
        for clip in picture.find_clips():
            placed = clip.trimmed_range_in_parent()
            if placed is not None and placed.start_time == at:
                clip.markers.append(otio.schema.Marker(
                    name=marker.name, color=marker.color,
                    marked_range=otio.opentime.TimeRange(clip.source_range.start_time, marker.marked_range.duration),
                ))
                break
    timeline.tracks.markers.clear()


def _volume_db(volume: float) -> float:
    return round(20 * math.log10(volume), 2) if volume > 0 else -96.0


def _for_format(timeline: otio.schema.Timeline, name: str) -> otio.schema.Timeline:
    """A copy of ``timeline`` with what ``name``'s adapter can write, in its own terms."""
    out: otio.schema.Timeline = copy.deepcopy(timeline)
    meta = out.metadata["nemod"]
    music = [track for track in out.tracks if track.name == "A2"]
    if name == "kdenlive":
        _without_text(out)
        for track in music:
            for clip in track.find_clips():
                level = _volume_db(float(clip.metadata["nemod"]["volume"]))
                clip.effects.append(otio.schema.Effect(effect_name="volume", metadata={"keyframes": {"0": level}}))
    elif name == "premiere":
        width, height = int(meta["source"]["width"]), int(meta["source"]["height"])
        if width and height:
            out.metadata["fcp_xml"] = {"media": {"video": {"format": {"samplecharacteristics": {
                "width": str(width), "height": str(height), "pixelaspectratio": "square", "anamorphic": "FALSE",
            }}}}}
        for track in music:
            for clip in track.find_clips():
                clip.metadata["fcp_xml"] = {"filter": {"effect": {
                    "name": "Audio Levels", "effectid": "audiolevels", "effectcategory": "audiolevels",
                    "effecttype": "audiolevels", "mediatype": "audio",
                    "parameter": {"parameterid": "level", "name": "Level", "valuemin": "0", "valuemax": "3.98109",
                                  "value": f"{float(clip.metadata['nemod']['volume']):g}"},
                }}}
        for track in _text_tracks(out):
            for clip in track.find_clips():
                text = str(clip.media_reference.parameters["text"])
                clip.media_reference.metadata["fcp_xml"] = {
                    "effectcategory": "Text", "effecttype": "generator", "mediatype": "video",
                    "parameter": {"parameterid": "str", "name": "Text", "value": text},
                }
    elif name in ("fcpxml", "edl"):
        _without_text(out)
        _markers_on_clips(out)
    return out


def notes_for(edit: Timeline, formats: Sequence[str], timeline: otio.schema.Timeline) -> list[str]:
    """What each of ``formats`` cannot say about ``edit`` (laid out as ``timeline``), one
    sentence each, for the job log: nothing is dropped silently."""
    notes: list[str] = []
    label = ", ".join(formats)
    speed = edit.speed
    if speed != 1.0:
        notes.append(f"timeline ({label}): the {speed:g}x speed change is not in the timeline; its clips play at 1x")
    source = timeline.metadata["nemod"]["source"]
    canvas = edit.canvas
    if source["width"] and canvas is not None and (
        abs(canvas.width / canvas.height - source["width"] / source["height"]) > 0.01
    ):
        notes.append(f"timeline ({label}): the reframe to {canvas.width}x{canvas.height} ({canvas.fit}) is not "
                     f"in the timeline; it is at the source's {source['width']}x{source['height']}")
    fps = edit.fps or 0.0
    source_fps = float(timeline.metadata["nemod"]["source"].get("fps", 0) or 0)
    if source_fps and fps and abs(source_fps - fps) / fps > 0.005:
        notes.append(f"timeline ({label}): the source averages {source_fps:g} fps (variable or unusual); the timeline "
                     f"counts its frames at {fps:g} fps as nemod renders it, so an editor that conforms it "
                     "differently may be off by a frame")
    if edit.fade_in or edit.fade_out:
        notes.append(f"timeline ({label}): the fades are not in the timeline")
    if edit.normalize is not None:
        notes.append(f"timeline ({label}): loudness normalisation is not in the timeline")
    music = edit.music
    if music is not None and music.duck:
        notes.append(f"timeline ({label}): the music is at a constant volume; ducking under speech is not in the timeline")
    texts = [track.name for track in _text_tracks(timeline)]
    for name in formats:
        if name in ("kdenlive", "edl") and texts:
            what = " and ".join("the title" if t == "V2" else "the captions" for t in texts)
            notes.append(f"timeline ({name}): {what} cannot be written as text clips; "
                         + ("import the .srt for the captions" if "V3" in texts else "add the title in the editor"))
        if name == "edl" and music is not None:
            notes.append("timeline (edl): an EDL holds the source's picture and sound only; the music is not in it")
    if edit.captions is not None:
        notes.append("timeline: the captions are also in the .srt beside the timeline")
    return notes


def _check_rate(name: str, fps: float, source: str) -> None:
    rates = FORMATS[name].rates
    if rates is not None and not any(abs(fps - rate) < 0.01 for rate in rates):
        allowed = ", ".join(f"{rate:g}" for rate in rates)
        raise ExportError(f"{FORMATS[name].label} cannot reference {source} at {fps:g} fps "
                          f"(it times sources at {allowed} fps).")


#: The Kdenlive adapter prints a deprecation banner on stdout while it writes; stdout is
#: process-wide, so concurrent jobs take turns while it is redirected.
_STDOUT = threading.Lock()


def _write(timeline: otio.schema.Timeline, name: str) -> tuple[str, list[str]]:
    """``timeline`` in format ``name`` and what its adapter printed (deprecation banner dropped)."""
    fmt = FORMATS[name]
    if name != "kdenlive":
        return otio.adapters.write_to_string(timeline, adapter_name=fmt.adapter), []
    printed = io.StringIO()
    with _STDOUT, contextlib.redirect_stdout(printed):
        text: str = otio.adapters.write_to_string(timeline, adapter_name=fmt.adapter)
    said = [line.strip() for line in printed.getvalue().splitlines()
            if line.strip() and not line.startswith("!!!") and "deprecated" not in line
            and "native support" not in line and "integration offers" not in line and "than the adapter" not in line]
    return text, said


def _aspect(width: int, height: int) -> tuple[int, int]:
    ratio = Fraction(width, height)
    return ratio.numerator, ratio.denominator


def _kdenlive_project(text: str, width: int, height: int, frames: int) -> str:
    """The adapter always writes a 1920x1080 profile, an endless black background track and
    no audio mixing: use the source's size, end the background (so the project) with the
    cut, and mix every track's sound as Kdenlive does."""
    root = ET.fromstring(text)  # noqa: S314 - text the adapter just wrote, not outside input
    # MLT's DTD puts an element's properties before its entries and tracks, and knows no
    # global_feed attribute (MLT reads every attribute as a property, so it becomes one).
    for element in [*root.iter("playlist"), *root.iter("tractor")]:
        feed = element.attrib.pop("global_feed", None)
        if feed is not None:
            ET.SubElement(element, "property", {"name": "global_feed"}).text = feed
        children = list(element)
        for child in children:
            element.remove(child)
        element.extend([child for child in children if child.tag == "property"]
                       + [child for child in children if child.tag != "property"])
    # Kdenlive mixes every track's sound onto the background with a "mix" transition in
    # the main tractor; the adapter writes none, so only one track would be heard.
    main = root.findall("tractor")[-1]
    for index, _track in enumerate(main.findall("track")[1:], start=1):
        mix = ET.SubElement(main, "transition", {"id": f"mix{index}"})
        for key, value in (("a_track", "0"), ("b_track", str(index)), ("mlt_service", "mix"), ("kdenlive_id", "mix"),
                           ("internal_added", "237"), ("always_active", "1"), ("accepts_blanks", "1"), ("sum", "1")):
            ET.SubElement(mix, "property", {"name": key}).text = value
    for producer in root.iter("producer"):
        if producer.get("id") == "black_track":
            producer.set("in", "0")
            producer.set("out", str(max(0, frames - 1)))
            length = ET.SubElement(producer, "property", {"name": "length"})
            length.text = str(frames)
    for profile in root.iter("profile"):
        if not (width and height):
            continue
        num, den = _aspect(width, height)
        profile.set("width", str(width))
        profile.set("height", str(height))
        profile.set("display_aspect_num", str(num))
        profile.set("display_aspect_den", str(den))
        profile.set("description", f"{width}x{height} {profile.get('frame_rate_num')}/{profile.get('frame_rate_den')} fps")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


#: Final Cut Pro's built-in Basic Title (the generator FCPXML titles refer to).
_BASIC_TITLE = (".../Titles.localized/Bumper:Opener.localized/Basic Title.localized/"
                "Basic Title.moti")


def _seconds_text(frames: int, fps: float) -> str:
    """``frames`` at ``fps`` as an FCPXML time (``0s``, ``3s``, ``1001/30000s``)."""
    value = Fraction(frames) / _true_rate(fps)
    if value == 0:
        return "0s"
    return f"{value.numerator}s" if value.denominator == 1 else f"{value.numerator}/{value.denominator}s"


def _frames_of(value: str | None, fps: float) -> int:
    if not value or value == "0s":
        return 0
    return round(Fraction(value.rstrip("s")) * _true_rate(fps))


def _fcpxml_texts(root: ET.Element, timeline: otio.schema.Timeline, fps: float) -> None:
    """Anchor the title (a Basic Title) and the captions (``caption`` elements, iTT role) to
    the spine clips they start over; the adapter writes neither."""
    tracks = {track.name: track for track in _text_tracks(timeline)}
    spine = root.find("./project/sequence/spine")
    resources = root.find("resources")
    if not tracks or spine is None or resources is None:
        return
    parents = [(clip, _frames_of(clip.get("offset"), fps), _frames_of(clip.get("start"), fps),
                _frames_of(clip.get("duration"), fps)) for clip in spine.findall("clip")]
    title_id = ""
    if "V2" in tracks:
        title_id = f"r{len(resources) + 1}"
        ET.SubElement(resources, "effect", {"id": title_id, "name": "Basic Title", "uid": _BASIC_TITLE})
    styles = 0
    for name in ("V2", "V3"):
        if name not in tracks:
            continue
        for clip in tracks[name].find_clips():
            placed = clip.trimmed_range_in_parent()
            start, length = round(placed.start_time.value), round(placed.duration.value)
            parent = next(((element, offset, begin) for element, offset, begin, count in parents
                           if offset <= start < offset + count), None)
            if parent is None:
                continue
            element, offset, begin = parent
            styles += 1
            attributes = {"name": clip.name, "lane": "1" if name == "V2" else "2",
                          "offset": _seconds_text(begin + start - offset, fps), "duration": _seconds_text(length, fps)}
            if name == "V2":
                item = ET.Element("title", {"ref": title_id, **attributes})
            else:
                item = ET.Element("caption", {**attributes, "role": "iTT?captionFormat=ITT.en"})
            text = ET.SubElement(item, "text", {} if name == "V2" else {"placement": "bottom"})
            style = ET.SubElement(text, "text-style", {"ref": f"ts{styles}"})
            style.text = str(clip.media_reference.parameters["text"])
            definition = ET.SubElement(item, "text-style-def", {"id": f"ts{styles}"})
            ET.SubElement(definition, "text-style", {"font": "Helvetica", "fontColor": "1 1 1 1",
                                                     "alignment": "center"})
            markers = [index for index, child in enumerate(element) if child.tag == "marker"]
            element.insert(markers[0] if markers else len(element), item)  # anchored items precede markers


def _fcpxml_volume(root: ET.Element, timeline: otio.schema.Timeline) -> None:
    """Give the music clips their volume (``adjust-volume``, the first of a clip's audio
    parameters); the adapter writes none."""
    music = [clip for track in timeline.tracks if track.name == "A2" for clip in track.find_clips()]
    if not music:
        return
    level = _volume_db(float(music[0].metadata["nemod"]["volume"]))
    assets = {asset.get("id") for asset in root.iter("asset") if asset.get("src") == music[0].media_reference.target_url}
    for clip in root.iter("clip"):
        audio = clip.find("./gap/audio")
        if audio is not None and audio.get("ref") in assets:
            clip.insert(0, ET.Element("adjust-volume", {"amount": f"{level:g}dB"}))


def _fcpxml_formats(text: str, width: int, height: int, timeline: otio.schema.Timeline | None = None,
                    fps: float = 0.0, label: float = 0.0) -> str:
    """Give the formats the source's frame size (the adapter asks ffprobe, which nemod does
    not ship), drop empty names and duplicate asset-clips, and add the title and captions of
    ``timeline``."""
    head, _, body = text.partition("<fcpxml")
    root = ET.fromstring("<fcpxml" + body)  # noqa: S314 - text the adapter just wrote
    seen: set[tuple[tuple[str, str], ...]] = set()
    for element in list(root.findall("asset-clip")):  # the adapter adds one per use of the asset
        key = tuple(sorted(element.attrib.items()))
        if key in seen:
            root.remove(element)
        seen.add(key)
    for element in root.iter("project"):
        if not element.get("uid"):
            element.attrib.pop("uid", None)  # an empty uid would name no project
    for element in root.iter("format"):
        if not element.get("name"):
            element.attrib.pop("name", None)
        if width and height:
            element.set("width", str(width))
            element.set("height", str(height))
    if fps:
        # The adapter times NTSC clips at 29.97 (not 30000/1001) frames a second: put every
        # time back on the true frame boundaries of its frameDuration.
        written = Fraction(label or fps).limit_denominator(1000)
        for element in root.iter():
            for attribute in ("offset", "start", "duration"):
                value = element.get(attribute)
                if value is not None and value != "0s":
                    element.set(attribute, _seconds_text(round(Fraction(value.rstrip("s")) * written), fps))
    if timeline is not None:
        _fcpxml_texts(root, timeline, fps)
        _fcpxml_volume(root, timeline)
    ET.indent(root, space="    ")
    return head + ET.tostring(root, encoding="unicode") + "\n"


def _xmeml_links(text: str) -> str:
    """Link each picture clip to the sound clip of the same range (FCP 7 ``link``, which
    the adapter does not write), so Premiere and Resolve move and trim them together, say
    which of the source's sound tracks each sound clip plays (``sourcetrack``), and drop the
    adapter's second ``rate`` of each clip."""
    root = ET.fromstring(text)  # noqa: S314 - text the adapter just wrote
    for item in [*root.iter("clipitem"), *root.iter("generatoritem")]:
        for extra in item.findall("rate")[1:]:  # the adapter writes each clip's rate twice
            item.remove(extra)
    for sequence in root.iter("sequence"):
        video = sequence.findall("./media/video/track")
        audio = sequence.findall("./media/audio/track")
        if not video or not audio:
            continue
        pictures = video[0].findall("clipitem")
        sounds = audio[0].findall("clipitem")
        for number, (picture, sound) in enumerate(zip(pictures, sounds, strict=False), start=1):
            picture_file, sound_file = picture.find("file"), sound.find("file")
            same_file = (picture_file is not None and sound_file is not None
                         and picture_file.get("id") == sound_file.get("id"))
            if not same_file or any(picture.findtext(tag) != sound.findtext(tag) for tag in ("in", "start")):
                continue  # a muted cut: the first sound track is the music
            source_track = ET.SubElement(sound, "sourcetrack")
            ET.SubElement(source_track, "mediatype").text = "audio"
            ET.SubElement(source_track, "trackindex").text = "1"
            for item in (picture, sound):
                for linked, kind in ((picture, "video"), (sound, "audio")):
                    link = ET.SubElement(item, "link")
                    ET.SubElement(link, "linkclipref").text = linked.get("id")
                    ET.SubElement(link, "mediatype").text = kind
                    ET.SubElement(link, "trackindex").text = "1"
                    ET.SubElement(link, "clipindex").text = str(number)
                    if kind == "audio":
                        ET.SubElement(link, "groupindex").text = "1"
    ET.indent(root, space="    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE xmeml>\n' + ET.tostring(root, encoding="unicode") + "\n"


_EVENT = re.compile(r"^(\d{3,6}\s+\S+\s+)V(\s{5})(C|D|W\d+)", re.MULTILINE)


def _edl_header(text: str) -> str:
    """Say after the title whether the timecode is drop-frame (CMX 3600's ``FCM`` line, which
    the adapter leaves out; the adapter writes drop-frame timecode at 29.97 and 59.94)."""
    mode = "DROP FRAME" if re.search(r"\d\d;\d\d\b", text) else "NON-DROP FRAME"
    title, *rest = text.split("\n")
    if not title.startswith("TITLE:"):
        return text
    while rest and not rest[0].strip():
        rest.pop(0)
    return "\n".join([title, f"FCM: {mode}", "", *rest])


def _edl_with_sound(text: str) -> str:
    """The adapter writes the picture track only (``V``); the sound of the same source
    follows it, so each event carries picture and both audio channels (``AA/V``)."""
    return _EVENT.sub(lambda match: f"{match.group(1)}AA/V  {match.group(3)}", text)


def export(edit: Timeline, source: MediaFile, name: str, formats: Sequence[str],
           music: MediaFile | None = None) -> Exported:
    """``edit`` (of ``source``, with ``music`` if it has background music) written as each of
    ``formats`` (names in :data:`FORMATS`), the timeline called ``name``.

    Raises :class:`ExportError` (one sentence naming the format and the source) when a
    format cannot reference the source, or its adapter refuses the timeline.
    """
    timeline = build_timeline(edit, source, name, music)
    fps = _fps(edit)
    texts: dict[str, str] = {}
    notes = notes_for(edit, formats, timeline)
    for fmt in formats:
        _check_rate(fmt, fps, source.name)
        # The FCPXML adapter knows frame durations by rate labels (23.98, 29.97, 59.94): time its
        # copy at the label and put the times back on exact frames afterwards.
        label = (23.98 if abs(fps - 23.976) < 0.001 else fps) if fmt == "fcpxml" else None
        laid_out = timeline if label is None else build_timeline(edit, source, name, music, label)
        try:
            text, said = _write(_for_format(laid_out, fmt), fmt)
        except (otio.exceptions.OTIOError, ValueError, KeyError, AttributeError, TypeError) as exc:
            raise ExportError(f"{FORMATS[fmt].label} cannot be written for {source.name}: {exc}.") from exc
        if fmt == "kdenlive":
            frames = sum(count for _, count in source_frames(edit))
            text = _kdenlive_project(text, source.width, source.height, frames)
        if fmt == "edl":
            text = _edl_header(text)
            if any(track.kind == otio.schema.TrackKind.Audio and track.name == "A1" for track in timeline.tracks):
                text = _edl_with_sound(text)
        if fmt == "premiere":
            text = _xmeml_links(text)
        if fmt == "fcpxml":
            text = _fcpxml_formats(text, source.width, source.height, timeline, fps, label or fps)
        notes += [f"timeline ({fmt}): {line}" for line in said]
        texts[FORMATS[fmt].suffix] = text
    return Exported(texts, tuple(notes))

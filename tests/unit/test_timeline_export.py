"""Editor timelines (pure): phrases and operations, timeline_media, the edit → OTIO layout,
every format written and read back with OpenTimelineIO frame by frame, FCP XML structure."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pytest

from nemod import config
from nemod.edits import (
    TIMELINE_FORMATS,
    EditParseError,
    Timeline,
    TrimPauses,
    parse_edit,
    plan_from_operations,
)
from nemod.engine.captions import Word
from nemod.engine.timeline import Analysis
from nemod.engine.timeline import build_timeline as build_edit
from nemod.errors import ConfigError
from nemod.media.probe import MediaInfo
from nemod.timeline import Timeline as Edit
from nemod.timeline_export import (
    FORMATS,
    ExportError,
    MediaFile,
    build_timeline,
    exact_rate,
    export,
    source_frames,
)

MEDIA = MediaInfo(Path("/srv/inbox/talk.mp4"), 20.0, 640, 360, 25.0, 0, 1, "h264", True)
SOURCE = MediaFile("file:///Volumes/studio/inbox/talk.mp4", "talk.mp4", 20.0, True, 640, 360)
MUSIC = MediaFile("file:///srv/music/lofi.mp3", "lofi.mp3", 7.0, True)
SPEECH = ((0.3, 3.0), (4.5, 9.1), (11.0, 14.0))
WORDS = (Word(0.4, 0.9, "Hello"), Word(1.0, 1.6, "there."), Word(4.6, 5.2, "Next"), Word(11.1, 11.8, "end."))


def _edit(edit: str, media: MediaInfo = MEDIA) -> Edit:
    return build_edit(parse_edit(edit), media, Analysis(speech=SPEECH, words=WORDS))


# --- phrases and operations -------------------------------------------------------------------


@pytest.mark.parametrize(("edit", "formats", "render"), [
    ("trim the pauses, export the timeline for Resolve", ("fcpxml",), True),
    ("export the timeline", TIMELINE_FORMATS, True),
    ("export an EDL", ("edl",), True),
    ("export the timeline for Premiere / Resolve / Final Cut / Kdenlive", ("premiere", "fcpxml", "kdenlive"), True),
    ("export the timeline for Premiere and Kdenlive", ("premiere", "kdenlive"), True),
    ("trim the pauses, export the timeline only", TIMELINE_FORMATS, False),
    ("export the timeline for Kdenlive without the MP4", ("kdenlive",), False),
    ("export an OTIO timeline, export 720p", ("otio",), True),
    ("export the timeline in Kdenlive format", ("kdenlive",), True),
    ("export the timeline, Kdenlive too", TIMELINE_FORMATS, True),
])
def test_plain_words_ask_for_timelines(edit: str, formats: tuple[str, ...], render: bool) -> None:
    plan = parse_edit(edit)
    assert plan.find(Timeline) == Timeline(formats=formats, render=render)
    assert plan.renders is render


def test_operations_give_the_same_plan_and_name_unknown_formats() -> None:
    assert plan_from_operations([{"op": "trim_pauses"}, {"op": "timeline", "formats": ["Resolve"]}]) == parse_edit(
        "trim the pauses, export the timeline for Resolve")
    assert plan_from_operations([{"op": "timeline", "formats": list(TIMELINE_FORMATS), "render": False}]).renders is False
    with pytest.raises(EditParseError, match="unknown timeline format 'avid'"):
        plan_from_operations([{"op": "timeline", "formats": ["avid"]}])
    with pytest.raises(EditParseError, match="unknown timeline format 'avid'"):
        parse_edit("export the timeline for Avid")
    with pytest.raises(EditParseError, match="formats is a list"):
        plan_from_operations([{"op": "timeline", "formats": []}])
    with pytest.raises(EditParseError, match="timeline render 'no' is not true or false"):
        plan_from_operations([{"op": "timeline", "render": "no"}])
    with pytest.raises(EditParseError, match="does not understand 'export the timeline sideways'"):
        parse_edit("export the timeline sideways")


def test_an_unknown_format_is_a_check_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    path = tmp_path / "nemod.yaml"
    path.write_text(textwrap.dedent("""\
        watch:
          - path: ./inbox
            output: ./outbox
            timeline_media: studio/inbox
        rules:
          - name: a
            operations: [{op: timeline, formats: [fcpxml, avid]}]
        """), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    messages = [str(problem) for problem in caught.value.problems]
    assert any("rules[0].operations: unknown timeline format 'avid'" in message for message in messages), messages
    assert any("watch[0].timeline_media: 'studio/inbox' is neither an absolute path nor a URL prefix" in message
               for message in messages), messages


def test_timeline_media_says_how_editors_reach_the_source() -> None:
    folder, source = Path("/srv/inbox"), Path("/srv/inbox/day 1/talk é.mp4")
    assert config.media_url(source, folder, None) == "file:///srv/inbox/day%201/talk%20%C3%A9.mp4"
    assert config.media_url(source, folder, "/Volumes/studio/inbox/") == (
        "file:///Volumes/studio/inbox/day%201/talk%20%C3%A9.mp4")
    assert config.media_url(source, folder, "Z:\\inbox") == "file:///Z:/inbox/day%201/talk%20%C3%A9.mp4"
    assert config.media_url(source, folder, "\\\\nas\\studio") == "file://nas/studio/day%201/talk%20%C3%A9.mp4"
    assert config.media_url(source, folder, "https://media.example/inbox") == (
        "https://media.example/inbox/day%201/talk%20%C3%A9.mp4")
    watch = config.WatchFolder(folder, Path("/srv/out"), folder / "failed", folder / "done",
                               timeline_media="smb://nas/inbox")
    assert watch.media_url(source) == "smb://nas/inbox/day%201/talk%20%C3%A9.mp4"


# --- the layout -----------------------------------------------------------------------------------


def test_the_timeline_takes_the_edits_frames_with_sound_music_text_and_markers() -> None:
    edited = _edit("trim the pauses, add captions, add BGM lofi.mp3 at 35%, add title 'Urban Dreams', "
                   "export the timeline")
    timeline = build_timeline(edited, SOURCE, "talk", MUSIC)
    names = [track.name for track in timeline.tracks]
    assert names == ["V1", "A1", "A2", "V2", "V3"]
    frames = source_frames(edited)
    assert len(frames) == 3
    for track in timeline.tracks[:2]:
        got = [(clip.source_range.start_time.value, clip.source_range.duration.value) for clip in track.find_clips()]
        assert got == frames
        assert {clip.media_reference.target_url for clip in track.find_clips()} == {SOURCE.url}
    total = sum(count for _, count in frames)
    assert timeline.tracks[0].duration().value == total
    music = list(timeline.tracks[2].find_clips())
    assert sum(clip.source_range.duration.value for clip in music) == total
    assert all(clip.source_range.duration.value <= 7 * 25 for clip in music) and len(music) >= 2  # looped
    assert {clip.metadata["nemod"]["volume"] for clip in music} == {0.35}
    (title,) = timeline.tracks[3].find_clips()
    assert title.media_reference.parameters["text"] == "Urban Dreams"
    assert title.range_in_parent().start_time.value == 0 and title.duration().value == 75
    assert [clip.media_reference.parameters["text"] for clip in timeline.tracks[4].find_clips()]
    # a marker at each join (and at 0: the first range starts after the source's start)
    joins = [0, frames[0][1], frames[0][1] + frames[1][1]] if frames[0][0] > 0 else [frames[0][1], frames[0][1] + frames[1][1]]
    assert [marker.marked_range.start_time.value for marker in timeline.tracks.markers] == joins


def test_a_muted_cut_has_no_sound_track() -> None:
    timeline = build_timeline(_edit("trim the pauses, mute, export the timeline"), SOURCE, "talk")
    assert [track.name for track in timeline.tracks] == ["V1"]


# --- every format, read back ----------------------------------------------------------------------


def _clips(timeline: otio.schema.Timeline, kind: str) -> list[tuple[int, int]]:
    track = next(track for track in timeline.tracks if track.kind == kind)
    return [(round(clip.source_range.start_time.value), round(clip.source_range.duration.value))
            for clip in track.find_clips()]


@pytest.mark.parametrize("name", TIMELINE_FORMATS)
def test_each_format_reads_back_with_the_edits_source_frames(name: str) -> None:
    edited = _edit("trim the pauses, add captions, add BGM lofi.mp3 at 35%, add title 'Urban Dreams', export the timeline")
    exported = export(edited, SOURCE, "talk", [name], MUSIC)
    (text,) = exported.texts.values()
    assert list(exported.texts) == [FORMATS[name].suffix]
    options = {"rate": 25} if name == "edl" else {}  # an EDL does not say its rate
    back = otio.adapters.read_from_string(text, adapter_name=FORMATS[name].adapter, **options)
    frames = source_frames(edited)
    assert _clips(back, otio.schema.TrackKind.Video) == frames
    if name != "edl":
        urls = {clip.media_reference.target_url for clip in back.find_clips()
                if isinstance(clip.media_reference, otio.schema.ExternalReference)}
        expected = {SOURCE.url, MUSIC.url}
        assert urls == expected if name != "kdenlive" else {"/Volumes/studio/inbox/talk.mp4", "/srv/music/lofi.mp3"}
    if name in ("premiere", "otio", "fcpxml"):
        sound = [track for track in back.tracks if track.kind == otio.schema.TrackKind.Audio]
        assert [(round(c.source_range.start_time.value), round(c.source_range.duration.value))
                for c in sound[0].find_clips()] == frames
    if name == "edl":
        assert text.count("AA/V") == len(frames)  # sound follows picture
        assert text.splitlines()[:3] == ["TITLE: talk", "FCM: NON-DROP FRAME", ""]
    # What the format cannot hold is said, not dropped silently.
    if name in ("kdenlive", "edl"):
        assert any(note.startswith(f"timeline ({name}):") and "title" in note for note in exported.notes)
    else:
        assert not any(note.startswith(f"timeline ({name}):") and "title" in note for note in exported.notes)


def test_otio_keeps_everything() -> None:
    edited = _edit("trim the pauses, add captions, add BGM lofi.mp3 at 35%, add title 'Urban Dreams', export the timeline")
    back = otio.adapters.read_from_string(export(edited, SOURCE, "talk", ["otio"], MUSIC).texts[".otio"], "otio_json")
    assert [track.name for track in back.tracks] == ["V1", "A1", "A2", "V2", "V3"]
    assert len(back.tracks.markers) >= 2


def test_speed_and_reframe_are_noted() -> None:
    edited = _edit("trim the pauses, speed up 1.5x, export 1080p vertical, fade in, export the timeline")
    notes = export(edited, SOURCE, "talk", ["otio"]).notes
    assert any("1.5x speed change is not in the timeline" in note for note in notes)
    assert any("reframe to 1080x1920 (crop) is not in the timeline" in note for note in notes)
    assert any("fades are not in the timeline" in note for note in notes)


def test_a_source_the_format_cannot_time_is_a_one_line_error() -> None:
    slow = MediaInfo(Path("/srv/inbox/slides.mp4"), 20.0, 640, 360, 12.5, 0, 1, "h264", True)
    edited = _edit("trim the pauses, export the timeline", slow)
    with pytest.raises(ExportError, match=r"^CMX 3600 EDL cannot reference slides.mp4 at 12.5 fps"):
        export(edited, MediaFile("file:///x/slides.mp4", "slides.mp4", 20.0), "slides", ["kdenlive", "otio", "edl"])
    assert export(edited, MediaFile("file:///x/slides.mp4", "slides.mp4", 20.0), "slides", ["kdenlive", "otio"]).texts


# --- structure editors require --------------------------------------------------------------------


def _time(value: str) -> Fraction:
    return Fraction(0) if value == "0s" else Fraction(value.rstrip("s"))


def test_fcpxml_structure() -> None:
    """What Final Cut Pro's FCPXML 1.8 DTD asks (no DTD ships in any package nemod installs, so the
    rules are checked here): root ``fcpxml`` with version 1.8, children in the order
    resources → event items; every format has a frameDuration; every ``ref`` is a resource id;
    every asset has a ``src``; clip offsets, starts and durations fall on frame boundaries."""
    edited = _edit("trim the pauses, add captions, add BGM lofi.mp3 at 35%, add title 'Urban Dreams', "
                   "export the timeline")
    text = export(edited, SOURCE, "talk", ["fcpxml"], MUSIC).texts[".fcpxml"]
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>')
    root = ET.fromstring(text.split("<!DOCTYPE fcpxml>", 1)[1])
    assert root.tag == "fcpxml" and root.get("version") == "1.8"
    children = [child.tag for child in root]
    assert children[0] == "resources"
    assert set(children[1:]) <= {"asset-clip", "project", "event", "clip", "ref-clip"}
    resources = {element.get("id"): element for element in root.find("resources")}
    (fmt,) = [element for element in resources.values() if element.tag == "format"]
    frame = _time(fmt.get("frameDuration"))
    assert frame == Fraction(1, 25) and (fmt.get("width"), fmt.get("height")) == ("640", "360")
    for asset in (element for element in resources.values() if element.tag == "asset"):
        assert asset.get("src") in (SOURCE.url, MUSIC.url) and asset.get("format") in resources
    ids = [element.get("id") for element in root.iter() if element.get("id") is not None]
    assert len(ids) == len(set(ids))  # IDs are unique and every IDREF names one
    for element in root.iter():
        if element.get("ref") is not None:
            assert element.get("ref") in (resources if element.tag != "text-style" else ids), element.attrib
        for key in ("offset", "start", "duration"):
            if element.get(key) is not None and element.tag != "asset":
                assert (_time(element.get(key)) / frame).denominator == 1, (element.tag, key, element.get(key))
    (project,) = root.iter("project")
    assert project.get("name") == "talk" and project.get("uid", "x") != ""
    sequence = project.find("sequence")
    assert sequence is not None and sequence.get("format") == fmt.get("id")
    spine = sequence.find("spine")
    assert spine is not None
    total = sum(count for _, count in source_frames(edited))
    assert _time(sequence.get("duration")) == total * frame
    assert sum(_time(clip.get("duration")) for clip in spine) == total * frame
    # The title is a Basic Title, the captions are caption elements, both anchored to spine
    # clips at their timeline time; the music has its volume.
    (effect,) = [element for element in resources.values() if element.tag == "effect"]
    assert effect.get("name") == "Basic Title" and effect.get("uid", "").endswith("Basic Title.moti")
    (title,) = root.iter("title")
    assert title.get("ref") == effect.get("id") and title.findtext("text/text-style") == "Urban Dreams"
    assert _time(title.get("duration")) == 3
    captions = list(root.iter("caption"))
    cues = edited.captions.cues if edited.captions else ()
    assert len(captions) == len(cues) > 0
    for caption in captions:
        assert caption.get("role", "").startswith("iTT") and caption.findtext("text/text-style")
    timeline_starts = []
    for clip in spine:
        for anchored in clip:
            if anchored.tag == "caption":
                local = _time(anchored.get("offset")) - _time(clip.get("start") or "0s")
                timeline_starts.append(round((_time(clip.get("offset")) + local) * 1000))
    assert timeline_starts == [round(cue.start / 1000 * 25) * 40 for cue in cues]
    style_ids = [element.get("id") for element in root.iter("text-style-def")]
    assert len(style_ids) == len(set(style_ids))
    volumes = [element.get("amount") for element in root.iter("adjust-volume")]
    assert volumes and set(volumes) == {"-9.12dB"}
    for clip in root.iter("clip"):  # anchored items come before markers
        tags = [child.tag for child in clip]
        if "marker" in tags:
            assert all(tag == "marker" for tag in tags[tags.index("marker"):]), tags


def test_fcp7_xml_structure() -> None:
    """What Premiere Pro and Resolve need of FCP 7 XML (``xmeml``): version 4 or 5; project →
    children → sequence with name, duration, rate (timebase, ntsc), media with video and audio
    tracks; each clipitem has name, rate, start/end/in/out and a file that either defines
    ``pathurl`` or refers to a file defined before; ids are unique."""
    edited = _edit("trim the pauses, add BGM lofi.mp3 at 35%, add title 'Urban Dreams', export the timeline")
    text = export(edited, SOURCE, "talk", ["premiere"], MUSIC).texts[".xml"]
    root = ET.fromstring(text)
    assert root.tag == "xmeml" and root.get("version") in ("4", "5")
    (sequence,) = root.findall("./project/children/sequence")
    assert sequence.findtext("name") == "talk"
    assert sequence.findtext("rate/timebase") == "25" and sequence.findtext("rate/ntsc") == "FALSE"
    assert sequence.findtext("media/video/format/samplecharacteristics/width") == "640"
    total = sum(count for _, count in source_frames(edited))
    assert int(sequence.findtext("duration")) == total
    video = sequence.findall("media/video/track")
    audio = sequence.findall("media/audio/track")
    assert len(video) == 2 and len(audio) == 2  # picture + title; sound + music
    defined: set[str] = set()
    ids: list[str] = []
    for item in sequence.iter("clipitem"):
        ids.append(item.get("id"))
        for tag in ("name", "rate/timebase", "start", "end", "in", "out"):
            assert item.findtext(tag) is not None, (item.get("id"), tag)
        file = item.find("file")
        assert file is not None
        if file.find("pathurl") is not None:
            defined.add(file.get("id"))
            assert file.findtext("pathurl") in (SOURCE.url, MUSIC.url)
        else:
            assert file.get("id") in defined
    assert len(ids) == len(set(ids))
    for item in [*sequence.iter("clipitem"), *sequence.iter("generatoritem")]:
        assert len(item.findall("rate")) == 1, item.get("id")
    # Sound follows picture: each picture clip is linked to the sound clip of the same range.
    pictures, sounds = video[0].findall("clipitem"), audio[0].findall("clipitem")
    assert len(pictures) == len(sounds) == len(source_frames(edited))
    for picture, sound in zip(pictures, sounds, strict=True):
        for tag in ("start", "end", "in", "out"):
            assert picture.findtext(tag) == sound.findtext(tag)
        for item in (picture, sound):
            assert [link.findtext("linkclipref") for link in item.findall("link")] == [picture.get("id"), sound.get("id")]
        assert sound.findtext("sourcetrack/mediatype") == "audio"
    (generator,) = sequence.iter("generatoritem")
    assert generator.findtext("effect/effecttype") == "generator"
    assert generator.findtext("effect/parameter/value") == "Urban Dreams"
    levels = [item.findtext("filter/effect/parameter/value") for item in audio[1].iter("clipitem")]
    assert levels and set(levels) == {"0.35"}
    assert [int(m.findtext("in")) for m in sequence.findall("marker")] == [
        marker.marked_range.start_time.value for marker in build_timeline(edited, SOURCE, "talk", MUSIC).tracks.markers]


def test_kdenlive_project_has_the_sources_profile_and_length() -> None:
    edited = _edit("trim the pauses, add BGM lofi.mp3 at 35%, export the timeline")
    root = ET.fromstring(export(edited, SOURCE, "talk", ["kdenlive"], MUSIC).texts[".kdenlive"])
    profile = root.find("profile")
    assert profile is not None and (profile.get("width"), profile.get("height")) == ("640", "360")
    assert (profile.get("frame_rate_num"), profile.get("frame_rate_den")) == ("25", "1")
    total = sum(count for _, count in source_frames(edited))
    black = next(p for p in root.iter("producer") if p.get("id") == "black_track")
    assert black.get("out") == str(total - 1)
    volumes = [f.findtext("property[@name='level']") for f in root.iter("filter")]
    assert volumes and set(volumes) == {"0=-9.12"}


def test_trim_plan_is_untouched_by_the_timeline_operation() -> None:
    plan = parse_edit("trim the pauses, export the timeline")
    assert plan.find(TrimPauses) == TrimPauses()


@pytest.mark.parametrize("fps", [23.976, 29.97, 50.0, 59.94, 60.0])
@pytest.mark.parametrize("name", TIMELINE_FORMATS)
def test_broadcast_rates_read_back_frame_exact(name: str, fps: float) -> None:
    media = MediaInfo(Path("/srv/inbox/talk.mp4"), 20.0, 640, 360, fps, 0, 1, "h264", True)
    edited = _edit("trim the pauses, add captions, add title 'Hi', export the timeline", media)
    assert edited.fps == fps
    text = export(edited, SOURCE, "talk", [name]).texts[FORMATS[name].suffix]
    options = {"rate": exact_rate(fps)} if name == "edl" else {}
    if name != "fcpxml" or fps == round(fps):
        # (the FCPXML adapter's reader truncates NTSC rates to whole frames a second, so
        # NTSC FCPXML is read below from the XML itself)
        back = otio.adapters.read_from_string(text, adapter_name=FORMATS[name].adapter, **options)
        assert _clips(back, otio.schema.TrackKind.Video) == source_frames(edited)
    if name == "edl":
        assert text.splitlines()[1] == ("FCM: DROP FRAME" if fps in (29.97, 59.94) else "FCM: NON-DROP FRAME")
    if name == "fcpxml":
        root = ET.fromstring(text.split("<!DOCTYPE fcpxml>", 1)[1])
        (fmt,) = root.iter("format")
        frame = _time(fmt.get("frameDuration"))
        assert 1 / frame == Fraction(exact_rate(fps)).limit_denominator(1001)
        spine = root.find("./project/sequence/spine")
        assert [(int(_time(clip.get("start") or "0s") / frame), int(_time(clip.get("duration")) / frame))
                for clip in spine] == source_frames(edited)
        for element in root.find("project").iter():
            for key in ("offset", "start", "duration"):
                if element.get(key) is not None:
                    assert (_time(element.get(key)) / frame).denominator == 1, (element.tag, key, element.get(key))


def test_the_kdenlive_adapters_banner_stays_off_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    export(_edit("trim the pauses, export the timeline"), SOURCE, "talk", ["kdenlive"])
    assert capsys.readouterr().out == ""


def test_a_variable_rate_source_is_noted() -> None:
    phone = MediaInfo(Path("/srv/inbox/phone.mp4"), 20.0, 640, 360, 29.6, 0, 1, "h264", True)
    edited = _edit("trim the pauses, export the timeline", phone)
    assert edited.fps == 30.0
    reference = MediaFile("file:///x/phone.mp4", "phone.mp4", 20.0, True, 640, 360, 29.6)
    notes = export(edited, reference, "phone", ["otio"]).notes
    assert any("averages 29.6 fps" in note for note in notes)
    assert not any("averages" in note for note in export(_edit("export the timeline"), SOURCE, "t", ["otio"]).notes)


def test_a_muted_cut_links_no_music_to_the_picture() -> None:
    edited = _edit("trim the pauses, mute, add BGM lofi.mp3 at 35%, export the timeline")
    root = ET.fromstring(export(edited, SOURCE, "talk", ["premiere"], MUSIC).texts[".xml"])
    assert not list(root.iter("link"))
    (music,) = root.findall(".//media/audio/track")
    assert {item.findtext("name") for item in music.iter("clipitem")} == {"lofi.mp3"}


def test_names_with_markup_and_accents_survive_every_format() -> None:
    name = "Tom & Jerry <é>.mp4"
    source = MediaFile(config.media_url(Path(f"/srv/inbox/{name}"), Path("/srv/inbox"), None), name, 20.0,
                       True, 640, 360)
    edited = _edit("trim the pauses, add title 'Q&A <live>', export the timeline")
    exported = export(edited, source, "Tom & Jerry", list(TIMELINE_FORMATS))
    for fmt_name, fmt in FORMATS.items():
        options = {"rate": 25} if fmt_name == "edl" else {}
        back = otio.adapters.read_from_string(exported.texts[fmt.suffix], adapter_name=fmt.adapter, **options)
        assert _clips(back, otio.schema.TrackKind.Video) == source_frames(edited), fmt_name
    assert "Q&amp;A &lt;live&gt;" in exported.texts[".xml"]
    assert source.url.endswith("Tom%20%26%20Jerry%20%3C%C3%A9%3E.mp4")

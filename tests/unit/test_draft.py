"""The NemoVideo draft at nemod's edges (pure): a timeline written as a draft and read back
is the same timeline, what nemod does not model survives, a malformed draft is refused with
a message saying where, and a service-made draft is read leniently."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nemod.draft import AUDIO, TEXT, VIDEO, DraftError, from_draft, log_timeline, to_draft
from nemod.timeline import (
    Canvas,
    CaptionTrack,
    Clip,
    MusicTrack,
    Span,
    Timeline,
    TitleTrack,
    TrimReport,
    VideoTrack,
    summarize,
)

CUT = {"start": 4.0, "end": 6.0, "seconds": 2.0, "silero_max": 0.04, "level_over_floor_db": 1.0}
FULL = Timeline(
    video=VideoTrack((Clip("talk.mp4", 0, 4000), Clip("talk.mp4", 6000, 9000)), name="talk.mp4", pauses_cut=1,
                     speed=1.5, mute=True, trim=TrimReport(0.5, 0.2, "normal", ("silero", "level"), (CUT,))),
    duration=4667, fps=29.97, canvas=Canvas(1080, 1920, "pad"), copy=False,
    music=MusicTrack("lofi.mp3", "/srv/music/lofi.mp3", 0, 4667, volume=0.2, duck=False),
    titles=(TitleTrack(Span("Hi", 0, 3000), position="top", size=0.08), TitleTrack(Span("Bye", 4000, 4667))),
    captions=CaptionTrack((Span("Hello\nthere", 0, 900), Span("again", 1000, 1500)), burn=False, language="de"),
    fade_in=0.5, fade_out=1.0, normalize=-14.0, language={"detected": "de", "probability": 0.97},
    notes=("no speech after 0:09",), analysis_seconds={"vad": 1.25, "transcribe": 3.5},
)


def _wire(timeline: Timeline) -> Any:
    """The draft as it crosses a wire or a log file: JSON text and back."""
    return json.loads(json.dumps(to_draft(timeline)))


def test_a_timeline_survives_a_round_trip_through_json() -> None:
    assert from_draft(_wire(FULL)) == FULL
    bare = Timeline(video=VideoTrack((Clip("a.mp4", 0, 1000),)), duration=1000)
    assert from_draft(_wire(bare)) == bare
    copied = Timeline(video=VideoTrack((Clip("a.mp4", 0, 20_000),)), duration=20_000, copy=True)
    assert from_draft(_wire(copied)).copy


def test_the_draft_has_the_nemovideo_layout() -> None:
    draft = to_draft(FULL)
    assert [track["tt"] for track in draft["t"]] == [VIDEO, AUDIO, TEXT, TEXT, TEXT]
    video, music, title, _, captions = draft["t"]
    assert video["sg"] == [{"src": "talk.mp4", "s": 0, "e": 4000}, {"src": "talk.mp4", "s": 6000, "e": 9000}]
    assert video["m"]["trim"]["cuts"] == [CUT] and video["m"]["speed"] == 1.5
    assert music["sg"] == [{"src": "lofi.mp3", "s": 0, "e": 4667, "v": 0.2}]
    assert title["m"]["kind"] == "title" and title["m"]["position"] == "top"
    assert captions["m"] == {"kind": "captions", "name": "Captions", "burn": False, "language": "de"}
    assert draft["d"] == 4667 and draft["m"]["canvas"] == {"w": 1080, "h": 1920, "fit": "pad"}
    assert draft["m"]["fade"] == {"in": 0.5, "out": 1.0} and draft["m"]["audio"] == {"normalize": -14.0}


def test_tracks_and_settings_nemod_does_not_model_are_kept() -> None:
    draft = _wire(FULL)
    sticker = {"tt": 4, "sg": [{"src": "logo.png", "s": 0, "e": 1000}], "d": 4667, "m": {"name": "Logo"}}
    draft["t"].append(sticker)
    draft["m"]["second_stage"] = {"style": "warm"}
    timeline = from_draft(draft)
    assert timeline.other_tracks == (sticker,) and timeline.extra == {"second_stage": {"style": "warm"}}
    assert to_draft(timeline)["t"][-1] == sticker and to_draft(timeline)["m"]["second_stage"] == {"style": "warm"}
    assert summarize(timeline).endswith("6. Track type 4: Logo")


def test_defaults_fill_what_a_sparse_draft_leaves_out() -> None:
    timeline = from_draft({"t": [{"tt": VIDEO, "sg": [{"src": "a.mp4", "s": 0, "e": 500}]},
                                 {"tt": TEXT, "sg": [{"text": "Hi", "s": 0, "e": 400}]}], "d": 500})
    assert timeline.video == VideoTrack((Clip("a.mp4", 0, 500),))
    assert timeline.titles == (TitleTrack(Span("Hi", 0, 400)),)
    assert (timeline.fps, timeline.canvas, timeline.normalize, timeline.fade_in) == (None, None, None, 0.0)


@pytest.mark.parametrize(("draft", "where"), [
    ([], "not a JSON object"),
    ({"t": {"tt": 0}}, "tracks (t)"),
    ({"t": [1]}, "tracks (t)"),
    ({"t": [{"tt": VIDEO, "sg": "a.mp4"}]}, "track 1's segments"),
    ({"t": [{"tt": VIDEO, "sg": [{"s": 0, "e": 1000}]}]}, "track 1 names no source"),
    ({"t": [{"tt": VIDEO, "sg": [{"src": "a.mp4", "s": "0", "e": 1000}]}]}, "track 1's s is not a number"),
    ({"t": [{"tt": VIDEO, "sg": [{"src": "a.mp4", "s": 0, "e": True}]}]}, "track 1's e is not a number"),
    ({"t": [{"tt": VIDEO, "sg": [{"src": "a.mp4"}], "m": []}]}, "track 1's m"),
    ({"t": [{"tt": AUDIO, "sg": [{"s": 0, "e": 1}]}]}, "music of track 1 names no source"),
    ({"t": [{"tt": VIDEO, "sg": [{"src": "a", "e": 1}], "m": {"trim": {"signals": 3}}}]}, "the trim's signals"),
    ({"t": [{"tt": VIDEO, "sg": [{"src": "a", "e": 1}], "m": {"trim": {"cuts": "all"}}}]}, "the trim's cuts"),
    ({"t": [], "m": {"fps": "fast"}}, "fps is not a number"),
    ({"t": [], "m": {"canvas": [1080, 1920]}}, "canvas is not a JSON object"),
    ({"t": [], "d": None}, "length (d) is not a number"),
    ({"t": [], "m": 5}, "settings (m)"),
])
def test_a_malformed_draft_is_refused_saying_where(draft: object, where: str) -> None:
    with pytest.raises(DraftError) as refused:
        from_draft(draft)
    assert where in str(refused.value)


def test_a_service_draft_is_read_leniently() -> None:
    broken_video = {"tt": VIDEO, "sg": [{"s": 0, "e": 1000}]}
    good_video = {"tt": VIDEO, "sg": [{"src": "a.mp4", "s": 0, "e": 1000}]}
    timeline = from_draft({"t": [broken_video, good_video], "d": 1000, "m": {"fps": "fast", "x": 1}}, strict=False)
    assert timeline.video == VideoTrack((Clip("a.mp4", 0, 1000),))
    assert timeline.other_tracks == (broken_video,)
    assert timeline.fps is None and timeline.extra == {"fps": "fast", "x": 1}
    with pytest.raises(DraftError):
        from_draft([], strict=False)  # not a draft at all, however lenient


def test_a_log_without_a_readable_draft_has_no_timeline() -> None:
    assert log_timeline(None) is None and log_timeline({}) is None
    assert log_timeline({"draft": {"t": [{"tt": VIDEO, "sg": [{"e": 1}]}]}}) is None
    timeline = log_timeline({"draft": to_draft(FULL)})
    assert timeline == FULL

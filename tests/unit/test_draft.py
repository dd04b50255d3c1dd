"""The NemoVideo draft at nemod's edges (pure): a timeline written as a draft and read back
is the same timeline, what nemod does not model survives, a malformed draft is refused with
a message saying where, and a service-made draft is read leniently."""

from __future__ import annotations

import contextlib
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

CLIP = {"src": "a.mp4", "s": 0, "e": 1000}
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


CAPTIONS_ZH = {"tt": TEXT, "sg": [{"text": "你好", "s": 0, "e": 500}], "m": {"kind": "captions", "language": "zh"}}


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
    ({"t": [{"tt": VIDEO, "sg": [{"src": "a.mp4", "s": 0}]}]}, "track 1 (a.mp4) has no start (s) or end (e)"),
    ({"t": [{"tt": VIDEO, "sg": [CLIP], "m": {"trim": {"signals": 3}}}]}, "the trim's signals"),
    ({"t": [{"tt": VIDEO, "sg": [CLIP], "m": {"trim": {"cuts": "all"}}}]}, "the trim's cuts"),
    ({"t": [{"tt": VIDEO, "sg": [CLIP], "m": {"trim": {"cuts": [{}]}}}]}, "a cut's start"),
    ({"t": [{"tt": VIDEO, "sg": [CLIP], "m": {"speed": -1}}]}, "speed is not more than 0"),
    ({"t": [{"tt": VIDEO, "sg": [{**CLIP, "s": float("nan")}]}]}, "not a finite number"),
    ({"t": [{"tt": VIDEO, "sg": [{**CLIP, "e": 10**400}]}]}, "too large"),
    ({"t": [], "d": float("inf")}, "not a finite number"),
    ({"t": [], "m": {"notes": 5}}, "notes are not a list"),
    ({"t": [], "m": {"language": "de"}}, "language is not a JSON object"),
    ({"t": [], "m": {"canvas": {"w": 1280}}}, "the canvas h is not a number"),
    ({"t": [], "m": {"canvas": {"w": 1280, "h": 0.5}}}, "not a frame size"),
    ({"t": [], "m": {"fps": -30}}, "fps is not more than 0"),
    ({"t": [None]}, "tracks (t)"),
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
    assert log_timeline({"draft": [1]}) is None and log_timeline({"draft": "yes"}) is None
    # A service's draft is logged as it came; what nemod cannot read is kept aside, not fatal.
    odd = log_timeline({"draft": {"t": [{"tt": VIDEO, "sg": [{"e": 1}]}, CAPTIONS_ZH], "m": {"fps": "30"}}})
    assert odd is not None and odd.video is None and odd.extra == {"fps": "30"}
    assert odd.captions is not None and odd.captions.language == "zh"
    timeline = log_timeline({"draft": to_draft(FULL)})
    assert timeline == FULL


def test_every_segment_of_a_text_track_is_a_title_and_tracks_nemod_does_not_read_may_hold_anything() -> None:
    lower_third = {"tt": TEXT, "sg": [{"text": "A", "s": 0, "e": 1000}, {"text": "B", "s": 5000, "e": 6000}],
                   "m": {"kind": "lower-third", "position": "top"}}
    sticker = {"tt": 4, "sg": ["logo.png"], "m": None}
    timeline = from_draft({"t": [{"tt": VIDEO, "sg": [CLIP]}, lower_third, sticker], "d": 6000})
    assert timeline.titles == (TitleTrack(Span("A", 0, 1000), position="top"),
                               TitleTrack(Span("B", 5000, 6000), position="top"))
    assert timeline.other_tracks == (sticker,)


def test_a_lenient_read_sets_aside_only_what_it_cannot_read() -> None:
    draft = {"t": [None, {"tt": VIDEO, "sg": [CLIP]}], "d": 1000,
             "m": {"copy": True, "fps": 25, "fade": {"in": "0.5"}}}
    timeline = from_draft(draft, strict=False)
    assert timeline.copy and timeline.fps == 25 and timeline.fade_in == 0.0
    assert timeline.extra == {"fade": {"in": "0.5"}}
    assert timeline.clips == (Clip("a.mp4", 0, 1000),)


JUNK: list[object] = [None, "x", "", [], [1], {}, {"a": 1}, True, -1, 0, 0.5, float("nan"), float("inf"), 10**400]


def _paths(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every place (dict key or list index, from the root) in a JSON value."""
    places: list[tuple[object, ...]] = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            places += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            places += _paths(item, (*path, index))
    return places


def _with(value: Any, path: tuple[object, ...], junk: object) -> Any:
    copied = json.loads(json.dumps(value))
    *parents, last = path
    for step in parents:
        copied = copied[step]  # type: ignore[index]
    copied[last] = junk  # type: ignore[index]
    return copied


def test_any_value_anywhere_in_a_draft_raises_draft_error_or_reads() -> None:
    """Each place of a full draft replaced by each junk value: from_draft either reads it
    or raises DraftError (nemod serve answers 400, the cloud backend fails the job in one
    sentence); no other exception escapes, strict or not."""
    base = _wire(FULL)
    base["t"].append({"tt": 4, "sg": [{"src": "logo.png", "s": 0, "e": 1}], "m": {"name": "Logo"}})
    tried = 0
    for path in _paths(base):
        for junk in JUNK:
            mutated = _with(base, path, junk)
            for strict in (True, False):
                with contextlib.suppress(DraftError):
                    from_draft(mutated, strict=strict)
                tried += 1
    assert tried > 2000

"""Smart cutting's pure planning: GOPs copied, runs, verification windows, timestamp checks,
and cuts moved onto IDR frames inside a pause's room."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from nemod.engine import smartcut
from nemod.media.probe import MediaInfo
from nemod.media.splice import OutputTimes, SplicePlan, VideoIndex, annexb_to_avcc
from nemod.timeline import Canvas, CaptionTrack, Clip, Span, Timeline, TitleTrack, VideoTrack

FRAME = 1 / 30


def index(idr: tuple[int, ...] = (0, 30, 60, 90), frames: int = 120, **changes: object) -> VideoIndex:
    fields: dict[str, object] = {
        "codec": "h264", "pix_fmt": "yuv420p", "profile": "High", "level": 40, "width": 640, "height": 360,
        "sample_aspect": Fraction(1), "colour": {}, "time_base": Fraction(1, 15360), "frame_ticks": 512,
        "first_pts": 0, "frames": frames, "idr_frames": idr, "reorder": 2, "problems": (),
    }
    fields.update(changes)
    return VideoIndex(**fields)  # type: ignore[arg-type]


def media(seconds: float = 4.0) -> MediaInfo:
    return MediaInfo(Path("a.mp4"), seconds, 640, 360, 30.0, 0, 1, "h264", True)


def timeline(segments: list[tuple[int, int]], **changes: object) -> Timeline:
    clips = tuple(Clip("a.mp4", a, b) for a, b in segments)
    plain = Timeline(VideoTrack(clips, name="a.mp4"), duration=sum(b - a for a, b in segments),
                     fps=30.0, canvas=Canvas(640, 360))
    return replace(plain, **changes)  # type: ignore[arg-type]


def test_only_gops_inside_one_kept_range_are_copied() -> None:
    assert smartcut.copied_gops([(0, 45), (70, 120)], (0, 30, 60, 90), 120) == [0, 90]
    assert smartcut.copied_gops([(0, 60), (60, 120)], (0, 30, 60, 90), 120) == [0, 30, 60, 90]
    assert smartcut.copied_gops([(5, 115)], (0, 30, 60, 90), 120) == [30, 60]


def test_a_plan_copies_whole_gops_and_reencodes_the_rest() -> None:
    planned = smartcut.plan_splice(timeline([(0, 2000), (2500, 4000)]), media(), index(), preset="veryfast")
    assert isinstance(planned, smartcut.SmartPlan)
    assert planned.splice.ranges == ((0, 60), (75, 120))
    assert planned.splice.copied_gops == {0: 30, 30: 60, 90: 120}
    assert (planned.copied, planned.encoded) == (90, 15)
    assert planned.splice.delay == 2 and planned.splice.bframes == 2


def test_a_source_without_b_frames_gets_none_in_its_reencoded_runs() -> None:
    planned = smartcut.plan_splice(timeline([(0, 2000), (2500, 4000)]), media(), index(reorder=0), preset="veryfast")
    assert isinstance(planned, smartcut.SmartPlan)
    assert (planned.splice.delay, planned.splice.bframes) == (0, 0)


@pytest.mark.parametrize(("changes", "why"), [
    ({"codec": "hevc"}, "not H.264"),
    ({"pix_fmt": "yuv420p10le"}, "8-bit 4:2:0"),
    ({"profile": "High 4:4:4 Predictive"}, "profile"),
    ({"problems": ("its frames are not evenly spaced (variable frame rate)",)}, "variable frame rate"),
    ({"idr_frames": (0,)}, "fewer than two IDR"),
    ({"reorder": 3}, "reordered by 3"),
])
def test_a_source_that_cannot_be_spliced_says_why(changes: dict[str, object], why: str) -> None:
    reason = smartcut.plan_splice(timeline([(0, 2000)]), media(), index(**changes), preset="veryfast")
    assert isinstance(reason, str) and why in reason


@pytest.mark.parametrize(("changes", "why"), [
    ({"canvas": Canvas(1280, 720)}, "resizes"),
    ({"fade_in": 1.0}, "fades"),
    ({"fade_out": 0.5}, "fades"),
    ({"copy": True}, "copies"),
])
def test_an_edit_that_changes_the_picture_is_not_spliced(changes: dict[str, object], why: str) -> None:
    reason = smartcut.timeline_reason(timeline([(0, 2000)], **changes), media())
    assert reason is not None and why in reason


def test_burned_text_and_speed_are_not_spliced_but_sidecar_captions_are() -> None:
    assert smartcut.timeline_reason(timeline([(0, 2000)]), media()) is None
    titled = timeline([(0, 2000)], titles=(TitleTrack(Span("Hi", 0, 1000)),))
    assert "burns" in (smartcut.timeline_reason(titled, media()) or "")
    burned = timeline([(0, 2000)], captions=CaptionTrack((Span("hello", 0, 500),)))
    assert "burns" in (smartcut.timeline_reason(burned, media()) or "")
    sidecar = timeline([(0, 2000)], captions=CaptionTrack((Span("hello", 0, 500),), burn=False))
    assert smartcut.timeline_reason(sidecar, media()) is None
    fast = timeline([(0, 2000)], video=VideoTrack((Clip("a.mp4", 0, 2000),), speed=1.5))
    assert "speed" in (smartcut.timeline_reason(fast, media()) or "")
    joined = timeline([(0, 1000)], video=VideoTrack((Clip("a.mp4", 0, 1000), Clip("b.mp4", 0, 1000))))
    assert "more than one source" in (smartcut.timeline_reason(joined, media()) or "")
    backwards = timeline([(2000, 3000), (0, 1000)])
    assert "not in source order" in (smartcut.timeline_reason(backwards, media()) or "")
    second_picture = timeline([(0, 1000)], other_tracks=({"tt": 0, "sg": [{"src": "b.mp4"}]},))
    assert "more than one" in (smartcut.timeline_reason(second_picture, media()) or "")
    assert "no video track" in (smartcut.timeline_reason(timeline([(0, 1000)], video=None), media()) or "")


def test_too_many_reencoded_frames_fall_back() -> None:
    reason = smartcut.plan_splice(timeline([(100, 900), (1100, 1900), (2100, 2900)]), media(), index(), preset="x")
    assert isinstance(reason, str) and "re-encoded" in reason


def test_runs_and_the_windows_verification_decodes() -> None:
    plan = SplicePlan(((0, 60), (75, 120)), {0: 30, 30: 60, 90: 120}, 2, 2, 16, "veryfast")
    runs = smartcut.output_runs(plan, (0, 30, 60, 90), 120)
    assert runs == [(True, 0, 30), (True, 30, 60), (False, 60, 75), (True, 75, 105)]
    assert smartcut.check_windows(runs, 30.0) == [(2.0, 78 / 30)]
    # Two re-encoded runs close together are decoded in one go.
    plan = SplicePlan(((0, 40), (50, 120)), {0: 30, 90: 120}, 2, 2, 16, "veryfast")
    runs = smartcut.output_runs(plan, (0, 30, 60, 90), 120)
    assert runs == [(True, 0, 30), (False, 30, 80), (True, 80, 110)]
    assert smartcut.check_windows(runs, 30.0) == [(1.0, 83 / 30)]


def times(pts: list[int], dts: list[int], audio: float | None = 1.0) -> OutputTimes:
    return OutputTimes(tuple(pts), tuple(dts), len(pts) / 30, audio, Fraction(1, 30))


def test_sane_timestamps_pass_and_each_fault_is_named() -> None:
    good = times([0, 3, 1, 2, *range(4, 30)], [-2, -1, 0, 1, *range(2, 28)])
    assert smartcut.timing_problems(good, 30, 30.0) == []
    assert "29 frames, not 30" in smartcut.timing_problems(times(list(range(29)), list(range(29)), 29 / 30), 30, 30.0)[0]
    assert "decode times" in smartcut.timing_problems(times(list(range(30)), [0, 0, *range(2, 30)]), 30, 30.0)[0]
    assert "before it is decoded" in smartcut.timing_problems(times(list(range(30)), list(range(1, 31))), 30, 30.0)[0]
    assert "evenly spaced" in smartcut.timing_problems(times([0, 1, *range(3, 31)], list(range(-1, 29))), 30, 30.0)[0]
    assert "sound lasts" in smartcut.timing_problems(times(list(range(30)), list(range(30)), 1.2), 30, 30.0)[0]


def test_annexb_becomes_length_prefixed() -> None:
    packet = b"\x00\x00\x00\x01\x67\xaa\xbb\x00\x00\x01\x68\xcc\x00\x00\x00\x01\x65\x01\x02\x03"
    assert annexb_to_avcc(packet) == (b"\x00\x00\x00\x03\x67\xaa\xbb" b"\x00\x00\x00\x02\x68\xcc"
                                      b"\x00\x00\x00\x04\x65\x01\x02\x03")


# --- keyframe snapping ------------------------------------------------------------------

SPEECH = [(0.0, 4.0), (6.0, 10.0)]


def test_an_end_moves_later_onto_an_idr_inside_the_pause_room() -> None:
    # A 2 s pause cut down to 0.2 s + 0.2 s; a pause of up to 1 s would be kept: 0.6 s room.
    kept = [(0.0, 4.2), (5.8, 10.0)]
    assert smartcut.snap_to_idr(kept, SPEECH, [0.0, 4.5, 8.0], longest_pause=1.0, frame=FRAME) == [
        (0.0, 4.5), (5.8, 10.0)]


def test_a_start_moves_earlier_when_no_idr_follows_the_end() -> None:
    kept = [(0.0, 4.2), (5.8, 10.0)]
    assert smartcut.snap_to_idr(kept, SPEECH, [0.0, 5.5], longest_pause=1.0, frame=FRAME) == [
        (0.0, 4.2), (5.5, 10.0)]


def test_both_sides_share_the_room_of_one_pause() -> None:
    kept = [(0.0, 4.2), (5.8, 10.0)]
    snapped = smartcut.snap_to_idr(kept, SPEECH, [0.0, 4.6, 5.4], longest_pause=1.0, frame=FRAME)
    assert snapped == [(0.0, 4.6), (5.8, 10.0)]  # 0.4 s more at the end leaves 0.2 s: 5.4 is too far
    silence = (snapped[0][1] - 4.0) + (6.0 - snapped[1][0])
    assert silence <= 1.0 + 1e-9


def test_no_idr_in_the_room_leaves_the_cut_and_speech_is_never_cut() -> None:
    kept = [(0.0, 4.2), (5.8, 10.0)]
    assert smartcut.snap_to_idr(kept, SPEECH, [0.0, 3.9, 6.1, 4.9], longest_pause=0.6, frame=FRAME) == kept
    for idr in ([3.5], [6.5], [4.1], [5.9]):  # inside speech or inside the kept padding: never moved inwards
        snapped = smartcut.snap_to_idr(kept, SPEECH, idr, longest_pause=1.0, frame=FRAME)
        assert snapped[0][1] >= 4.2 and snapped[1][0] <= 5.8


def test_ranges_meeting_on_an_idr_join() -> None:
    kept = [(0.0, 4.2), (4.5, 10.0)]
    speech = [(0.0, 4.0), (4.7, 10.0)]
    assert smartcut.snap_to_idr(kept, speech, [4.49], longest_pause=1.0, frame=FRAME) == [(0.0, 10.0)]


def test_a_range_ending_inside_a_gop_copies_its_decode_order_prefix() -> None:
    idr = (0, 30, 60)
    in_order = tuple(range(90))
    assert smartcut.copied_heads([(0, 45)], idr, in_order) == {30: 45}
    # With B-frames (decode order 30 33 31 32 36 34 35 …) only an end just after a
    # reference frame leaves a prefix that decodes on its own.
    gop = [30, 33, 31, 32, 36, 34, 35, *range(37, 60)]
    with_b = (*range(30), *gop, *range(60, 90))
    assert smartcut.copied_heads([(0, 34)], idr, with_b) == {30: 34}
    assert smartcut.copied_heads([(0, 35)], idr, with_b) == {}
    # Not when the range starts inside the GOP, or the next range keeps more of it.
    assert smartcut.copied_heads([(35, 45)], idr, in_order) == {}
    assert smartcut.copied_heads([(0, 45), (50, 90)], idr, in_order) == {}


def test_a_source_without_b_frames_reencodes_only_range_starts() -> None:
    order = tuple(range(120))
    planned = smartcut.plan_splice(timeline([(0, 1500), (2500, 4000)]), media(),
                                   index(reorder=0, decode_order=order), preset="veryfast")
    assert isinstance(planned, smartcut.SmartPlan)
    assert planned.splice.copied_gops == {0: 30, 30: 45, 90: 120}
    assert (planned.copied, planned.encoded) == (75, 15)

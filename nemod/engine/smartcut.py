"""Smart cutting, the pure part: whether a timeline can be rendered by copying most of the
source's packets, which GOPs are copied and which frames re-encoded, where cuts inside a
pause can move onto IDR frames, and whether a finished splice's timestamps are sane.

A timeline is eligible when it only keeps ranges of one H.264 (8-bit 4:2:0, constant frame
rate, closed-GOP) source in order, with nothing changed in the picture: no speed, scale,
crop, rotation, burned text or picture fades. Sound may be anything the full render does
(it is rendered by the same ffmpeg graph). HEVC sources are not eligible (yet).
The execution is :mod:`nemod.media.splice`.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from nemod.draft import VIDEO
from nemod.media.probe import MediaInfo
from nemod.media.splice import X264_PROFILES, OutputTimes, SplicePlan, VideoIndex
from nemod.timeline import Timeline

#: Smart cutting is not worth it when more than this share of the kept frames would be
#: re-encoded (short segments between long GOPs): the full render is about as fast then.
MOST_REENCODED = 0.4
#: The largest decode delay (frames) a source may have (x264's default B-pyramid has 2).
LARGEST_REORDER = 2
#: CRF of the re-encoded runs: close to the source (≥ 40 dB PSNR on test footage), so
#: re-encoded frames do not stand out between copied ones.
SPLICE_CRF = 16


@dataclass(frozen=True)
class SmartPlan:
    """A splice to run (``splice``) and its sizes for the job log."""

    splice: SplicePlan
    copied: int
    encoded: int


def timeline_reason(timeline: Timeline, media: MediaInfo) -> str | None:
    """Why ``timeline`` (a one-source render of ``media``) cannot be smart-cut, judged from
    the timeline alone; None when it can be, as far as the timeline tells."""
    if timeline.copy:
        return "the edit copies the source whole"
    clips = timeline.clips
    if not clips or any(track.get("tt") == VIDEO for track in timeline.other_tracks):
        return "the edit has no video track, or more than one"
    if len({clip.source for clip in clips}) != 1:
        return "the edit joins more than one source"
    if any(a.end > b.start for a, b in itertools.pairwise(clips)):
        return "the edit's ranges are not in source order"
    if timeline.speed != 1.0:
        return "the edit changes the speed"
    canvas = timeline.canvas
    if canvas is not None and (canvas.width, canvas.height) != (media.width, media.height):
        return "the edit resizes or crops the picture"
    if media.rotation:
        return "the source is rotated"
    if timeline.fade_in > 0 or timeline.fade_out > 0:
        return "the edit fades the picture"
    if timeline.titles or (timeline.captions is not None and timeline.captions.burn):
        return "the edit burns text into the picture"
    return None


def index_reason(index: VideoIndex) -> str | None:
    """Why a source with ``index`` cannot be spliced; None when it can be."""
    if index.codec != "h264":
        return f"the source's video is {index.codec}, not H.264"
    if index.pix_fmt != "yuv420p":
        return f"the source's pixels are {index.pix_fmt}, not 8-bit 4:2:0"
    if index.profile not in X264_PROFILES:
        return f"the source's H.264 profile is {index.profile or 'unknown'}"
    if index.problems:
        return f"the source cannot be spliced: {index.problems[0]}"
    if len(index.idr_frames) < 2:
        return "the source has fewer than two IDR frames"
    if index.reorder > LARGEST_REORDER:
        return f"the source's frames are reordered by {index.reorder} (more than {LARGEST_REORDER})"
    return None


def kept_frames(timeline: Timeline, media: MediaInfo, index: VideoIndex) -> list[tuple[int, int]]:
    """The source frames ``[start, end)`` ``timeline`` keeps (display indices, touching ranges
    joined), computed as the full render's frame selection does."""
    fps = timeline.fps or index.fps
    ranges: list[tuple[int, int]] = []
    for clip in timeline.clips:
        start = round(clip.start / 1000 * fps)
        to_end = clip.end >= media.duration * 1000 - 1
        end = index.frames if to_end else max(start + 1, round(clip.end / 1000 * fps))
        start, end = min(start, index.frames), min(end, index.frames)
        if end <= start:
            continue
        if ranges and start <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], end))
        else:
            ranges.append((start, end))
    return ranges


def copied_gops(ranges: Sequence[tuple[int, int]], idr_frames: Sequence[int], frames: int) -> list[int]:
    """The GOPs (by IDR display index) lying wholly inside one of ``ranges``: a GOP runs
    from one IDR to the next (the last to ``frames``)."""
    out = []
    starts = [start for start, _ in ranges]
    for number, first in enumerate(idr_frames):
        end = idr_frames[number + 1] if number + 1 < len(idr_frames) else frames
        slot = bisect.bisect_right(starts, first) - 1
        if slot >= 0 and end <= ranges[slot][1]:
            out.append(first)
    return out


def copied_heads(
    ranges: Sequence[tuple[int, int]], idr_frames: Sequence[int], decode_order: Sequence[int]
) -> dict[int, int]:
    """GOPs whose kept frames are a leading run of their decode order (a range keeps the
    GOP from its IDR and ends inside it; nothing later in the GOP is kept): IDR display
    index → where the range ends. Those packets decode on their own — each refers only to
    packets before it — so they are copied instead of re-encoded. With B-frames that holds
    only where a range ends just after a reference frame; without B-frames, always."""
    idr = set(idr_frames)
    positions = [position for position, shown in enumerate(decode_order) if shown in idr]
    gop_of = {decode_order[position]: number for number, position in enumerate(positions)}
    bounds = sorted(idr)
    heads: dict[int, int] = {}
    for number, (start, end) in enumerate(ranges):
        slot = bisect.bisect_right(bounds, end - 1) - 1
        if slot < 0:
            continue
        first = bounds[slot]
        following = bounds[slot + 1] if slot + 1 < len(bounds) else None
        if following is None or end >= following or start > first:
            continue  # the GOP is whole, or the range starts inside it
        if number + 1 < len(ranges) and ranges[number + 1][0] < following:
            continue  # the next range also keeps frames of this GOP
        gop = gop_of[first]
        stop = positions[gop + 1] if gop + 1 < len(positions) else len(decode_order)
        leading = decode_order[positions[gop]:stop][: end - first]
        if max(leading) == end - 1:
            heads[first] = end
    return heads


def plan_splice(
    timeline: Timeline, media: MediaInfo, index: VideoIndex, *, preset: str, threads: int = 0
) -> SmartPlan | str:
    """The splice rendering ``timeline`` from the source ``index`` describes, or why there is
    none (a sentence for the job log)."""
    reason = timeline_reason(timeline, media) or index_reason(index)
    if reason is not None:
        return reason
    fps = timeline.fps or 0.0
    if abs(fps - index.fps) > 0.001 * index.fps:
        return f"the source's {index.fps:.3f} fps is rendered at {fps:.3f} fps"
    ranges = kept_frames(timeline, media, index)
    if not ranges:
        return "the edit keeps no frame"
    bounds = [*index.idr_frames, index.frames]
    gops = {first: bounds[bounds.index(first) + 1] for first in copied_gops(ranges, index.idr_frames, index.frames)}
    if index.decode_order:
        gops.update(copied_heads(ranges, index.idr_frames, index.decode_order))
    copied = sum(end - first for first, end in gops.items())
    kept = sum(end - start for start, end in ranges)
    if kept - copied > MOST_REENCODED * kept:
        return (f"{kept - copied} of {kept} frames would be re-encoded "
                f"(more than {MOST_REENCODED:.0%}: the GOPs are long for these cuts)")
    # x264 without B-pyramid delays decoding by one frame when it uses B-frames: use them
    # only when the copied frames are delayed that much anyway.
    bframes = 2 if index.reorder >= 1 and index.profile in ("Main", "High") else 0
    delay = max(index.reorder, 1 if bframes else 0)
    splice = SplicePlan(tuple(ranges), gops, delay, bframes, SPLICE_CRF, preset, threads)
    return SmartPlan(splice, copied, kept - copied)


def output_runs(plan: SplicePlan, idr_frames: Sequence[int], frames: int) -> list[tuple[bool, int, int]]:
    """The output as runs ``(copied, first frame, end frame)``: one run per copied GOP, and
    one per stretch of consecutive re-encoded frames (one x264 session)."""
    runs: list[tuple[bool, int, int]] = []
    bounds = [*idr_frames, frames]
    position = 0
    for number, first in enumerate(idr_frames):
        end = bounds[number + 1]
        kept = sum(max(0, min(end, b) - max(first, a)) for a, b in plan.ranges)
        if not kept:
            continue
        copied = first in plan.copied_gops
        if not copied and runs and not runs[-1][0]:
            runs[-1] = (False, runs[-1][1], position + kept)
        else:
            runs.append((copied, position, position + kept))
        position += kept
    return runs


def check_windows(
    runs: Sequence[tuple[bool, int, int]], fps: float, *, into_copy: int = 3, gap: float = 1.0
) -> list[tuple[float, float]]:
    """The output spans (seconds) to decode in verification: each re-encoded run and the
    first ``into_copy`` frames of the copied GOP after it (where the source's parameter
    sets must take over again); spans less than ``gap`` apart are joined. The other copied
    frames are the source's own packets."""
    spans: list[tuple[float, float]] = []
    for number, (copied, first, end) in enumerate(runs):
        if copied:
            continue
        last = min(runs[number + 1][2], end + into_copy) if number + 1 < len(runs) else end
        start, stop = first / fps, last / fps
        if spans and start - spans[-1][1] < gap:
            spans[-1] = (spans[-1][0], stop)
        else:
            spans.append((start, stop))
    return spans


def timing_problems(times: OutputTimes, frames: int, fps: float) -> list[str]:
    """What is wrong with a finished splice's timestamps: the frame count differs from the
    plan's ``frames``, PTS repeat or leave gaps, DTS do not increase, a frame is shown before
    it is decoded, or sound and picture lengths differ by more than a frame."""
    problems = []
    if len(times.pts) != frames:
        problems.append(f"it has {len(times.pts)} frames, not {frames}")
    if any(b <= a for a, b in zip(times.dts, times.dts[1:], strict=False)):
        problems.append("its decode times do not increase")
    if any(p < d for p, d in zip(times.pts, times.dts, strict=False)):
        problems.append("a frame is shown before it is decoded")
    shown = sorted(times.pts)
    steps = {b - a for a, b in itertools.pairwise(shown)}
    if len(steps) > 1 or 0 in steps:
        problems.append("its frame times are not evenly spaced")
    if times.audio_seconds is None:
        problems.append("it has no sound")
    elif abs(times.audio_seconds - frames / fps) > 1 / fps + 1e-3:
        problems.append(f"its sound lasts {times.audio_seconds:.3f} s and its picture {frames / fps:.3f} s")
    return problems


def snap_to_idr(
    kept: Sequence[tuple[float, float]],
    speech: Sequence[tuple[float, float]],
    idr_times: Sequence[float],
    *,
    longest_pause: float,
    frame: float,
) -> list[tuple[float, float]]:
    """``kept`` (a pause trim's ranges, source seconds, in order) with cuts moved onto IDR
    frames where the pause has room: at each join the end moves later and/or the next start
    earlier, only outwards (no padding is lost, so never into a word of ``speech``), never
    past the neighbouring range, and only while the silence kept at the join stays within
    ``longest_pause`` (a pause the trim would have kept anyway). ``frame`` is one frame's
    length: ranges that end up less than a frame apart are joined.

    An end on an IDR time keeps the frames before that IDR, so the GOP before it is copied
    whole instead of re-encoded; a start on an IDR time starts a copied GOP.
    """
    ordered = sorted(idr_times)
    out = [list(span) for span in kept]
    for number in range(len(out) - 1):
        end, start = out[number][1], out[number + 1][0]
        silence = (end - _speech_end_before(speech, end)) + (_speech_start_after(speech, start) - start)
        room = longest_pause - silence
        later = _first_in(ordered, end, min(start, end + room)) if room > 0 else None
        if later is not None:
            out[number][1] = later
            room -= later - end
        earlier = _last_in(ordered, max(out[number][1], start - room), start) if room > 0 else None
        if earlier is not None:
            out[number + 1][0] = earlier
    joined: list[tuple[float, float]] = []
    for a, b in out:
        if joined and a - joined[-1][1] < frame - 1e-9:
            joined[-1] = (joined[-1][0], max(joined[-1][1], b))
        else:
            joined.append((a, b))
    return joined


def _speech_end_before(speech: Sequence[tuple[float, float]], at: float) -> float:
    """Where the last speech ending by ``at`` ends (``at`` when none does)."""
    return max((b for _, b in speech if b <= at + 1e-9), default=at)


def _speech_start_after(speech: Sequence[tuple[float, float]], at: float) -> float:
    """Where the first speech starting from ``at`` starts (``at`` when none does)."""
    return min((a for a, _ in speech if a >= at - 1e-9), default=at)


def _first_in(ordered: Sequence[float], low: float, high: float) -> float | None:
    position = bisect.bisect_left(ordered, low - 1e-9)
    return ordered[position] if position < len(ordered) and ordered[position] <= high + 1e-9 else None


def _last_in(ordered: Sequence[float], low: float, high: float) -> float | None:
    position = bisect.bisect_right(ordered, high + 1e-9) - 1
    return ordered[position] if position >= 0 and ordered[position] >= low - 1e-9 else None

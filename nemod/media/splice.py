"""Smart cutting's packet work with PyAV: index a source's H.264 packets, write a video
that copies whole GOPs packet for packet and re-encodes the frames around the cuts, and
read an output's packet timestamps back for verification.

Planning (which GOPs are copied, eligibility) is pure and lives in
:mod:`nemod.engine.smartcut`; this module only executes a :class:`SplicePlan`.
Sound is not handled here: the engine renders it with ffmpeg and muxes it afterwards.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from nemod.errors import MediaError
from nemod.malloc import release_free_memory
from nemod.media.ffmpeg import ProgressCallback

#: H.264 NAL unit type of an IDR slice: the only frames a copied run may start on (an
#: open-GOP I frame is flagged "key" too, but frames after it may refer back past it).
_IDR = 5
#: x264's sequence/picture parameter set id for re-encoded runs, distinct from the source's
#: (usually 0), so a decoder holds both sets and copied frames keep referring to theirs.
SPLICE_SPS_ID = 3
#: x264 profile names for the source profiles a splice can match.
X264_PROFILES = {"Constrained Baseline": "baseline", "Baseline": "baseline", "Main": "main", "High": "high"}
#: x264 settings that bound one session's frame buffers: runs are a few GOPs long, so a
#: short lookahead costs little, and each 1080p frame it holds is ~3 MB (with its copies).
_X264_LEAN = ("rc-lookahead=5", "sync-lookahead=0")


@dataclass(frozen=True)
class VideoIndex:
    """What smart cutting needs to know of a source's first video stream.

    ``frame_ticks`` is the constant frame duration in ``time_base`` ticks (0: the frame
    times are not on one grid, i.e. variable frame rate); ``idr_frames`` the display
    indices of IDR frames that start a closed GOP; ``reorder`` the largest number of
    frames a frame is decoded ahead of its display slot; ``problems`` why the stream
    cannot be spliced (empty: it can).
    """

    codec: str
    pix_fmt: str
    profile: str
    level: int
    width: int
    height: int
    sample_aspect: Fraction | None
    colour: dict[str, int]
    time_base: Fraction
    frame_ticks: int
    first_pts: int
    frames: int
    idr_frames: tuple[int, ...]
    reorder: int
    problems: tuple[str, ...] = ()
    #: The display index of every frame in decode order.
    decode_order: tuple[int, ...] = ()

    @property
    def fps(self) -> float:
        """Frames per second (0.0 for variable frame rate)."""
        return 1 / float(self.frame_ticks * self.time_base) if self.frame_ticks else 0.0


@dataclass(frozen=True)
class SplicePlan:
    """What to write: ``ranges`` are the kept source frames ``[start, end)`` (display
    indices, in order); ``copied_gops`` maps the IDR display index of each copied GOP to
    where its copied frames end (the next IDR for a whole GOP; earlier for a GOP whose kept
    frames are a prefix of its decode order); every other kept frame is re-encoded. ``delay`` is the decode delay (frames) the
    output's timestamps are built with; ``bframes`` is given to x264 (0 when the source has
    none, so its reorder delay cannot exceed the copied frames')."""

    ranges: tuple[tuple[int, int], ...]
    copied_gops: Mapping[int, int]
    delay: int
    bframes: int
    crf: int
    preset: str
    threads: int = 0

    @property
    def frames(self) -> int:
        """Frames in the output."""
        return sum(end - start for start, end in self.ranges)


@dataclass
class SpliceResult:
    """Frames the splice copied and re-encoded."""

    copied: int = 0
    encoded: int = 0


@dataclass(frozen=True)
class OutputTimes:
    """An output's video packet timestamps (decode order, stream ticks) and stream lengths."""

    pts: tuple[int, ...]
    dts: tuple[int, ...]
    video_seconds: float
    audio_seconds: float | None
    time_base: Fraction


def _nal_types(data: bytes, length_size: int = 4) -> Iterator[int]:
    """The NAL unit types in a length-prefixed (AVCC) H.264 packet."""
    offset = 0
    while offset + length_size < len(data):
        size = int.from_bytes(data[offset:offset + length_size], "big")
        if size <= 0:
            return
        yield data[offset + length_size] & 0x1F
        offset += length_size + size


def annexb_to_avcc(data: bytes) -> bytes:
    """An Annex B packet (start codes, as libx264 writes without global headers) as
    4-byte length-prefixed NAL units (as MP4 stores them)."""
    out = bytearray()
    for nal in _annexb_nals(data):
        out += len(nal).to_bytes(4, "big") + nal
    return bytes(out)


def _annexb_nals(data: bytes) -> Iterator[bytes]:
    starts: list[tuple[int, int]] = []  # (start of prefix, start of payload)
    index = data.find(b"\x00\x00\x01")
    while index >= 0:
        prefix = index - 1 if index > 0 and data[index - 1] == 0 else index
        starts.append((prefix, index + 3))
        index = data.find(b"\x00\x00\x01", index + 3)
    for number, (_, payload) in enumerate(starts):
        end = starts[number + 1][0] if number + 1 < len(starts) else len(data)
        nal = data[payload:end].rstrip(b"\x00") if number + 1 < len(starts) else data[payload:end]
        if nal:
            yield nal


def _parameter_set_ids(avcc: bytes) -> set[int]:
    """The SPS and PPS ids in an avcC record (empty when it cannot be read)."""
    ids: set[int] = set()
    try:
        offset, count = 6, avcc[5] & 0x1F
        for kind in ("sps", "pps"):
            for _ in range(count):
                size = int.from_bytes(avcc[offset:offset + 2], "big")
                nal = avcc[offset + 2:offset + 2 + size].replace(b"\x00\x00\x03", b"\x00\x00")
                ids.add(_exp_golomb(nal[4:] if kind == "sps" else nal[1:]))
                offset += 2 + size
            if kind == "sps":
                count, offset = avcc[offset], offset + 1
    except IndexError:
        return set()
    return ids


def _exp_golomb(data: bytes) -> int:
    """The unsigned Exp-Golomb number at the start of ``data``."""
    bits = "".join(f"{byte:08b}" for byte in data[:8])
    zeros = len(bits) - len(bits.lstrip("0"))
    if 2 * zeros + 1 > len(bits):
        raise IndexError("an Exp-Golomb number longer than the data")
    return int(bits[zeros:2 * zeros + 1], 2) - 1


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{path.name} cannot be read for smart cutting ({exc}).") from exc


def index_video(path: Path) -> VideoIndex:
    """Demux (no decoding) the first video stream of ``path`` and index its packets.

    Raises :class:`MediaError` when the file cannot be read.
    """
    with _open(path) as container:
        videos = [s for s in container.streams.video
                  if not s.disposition & av.stream.Disposition.attached_pic]
        if not videos:
            raise MediaError(f"{path.name} has no video stream.")
        stream = videos[0]
        context = stream.codec_context
        problems: list[str] = []
        if len(videos) > 1:
            problems.append("it has more than one video stream")
        extradata = bytes(context.extradata or b"")
        length_size = (extradata[4] & 3) + 1 if len(extradata) > 4 and extradata[0] == 1 else 0
        if context.name == "h264" and length_size != 4:
            problems.append("its H.264 is not stored with 4-byte NAL lengths (avcC)")
        elif context.name == "h264" and SPLICE_SPS_ID in _parameter_set_ids(extradata):
            problems.append(f"it already uses parameter set id {SPLICE_SPS_ID}")
        for audio in container.streams.audio:
            if audio.start_time and audio.time_base and abs(float(audio.start_time * audio.time_base)) > 0.001:
                problems.append("its sound does not start at time 0")
        pts: list[int] = []
        keys: list[bool] = []
        interlaced: bool | None = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None or packet.is_discard or packet.pts < 0:
                    problems.append("it has frames without a time or hidden by an edit list")
                    break
                if interlaced is None and len(pts) < 16:
                    interlaced = _interlaced(context, packet)
                pts.append(packet.pts)
                keys.append(packet.is_keyframe and length_size == 4
                            and _IDR in _nal_types(bytes(packet), length_size))
        except av.error.FFmpegError as exc:
            raise MediaError(f"{path.name} cannot be read for smart cutting ({exc}).") from exc
        if interlaced:
            problems.append("its picture is interlaced")
        time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
        colour = {name: int(getattr(context, name, 0) or 0)
                  for name in ("color_range", "colorspace", "color_primaries", "color_trc")}
        sar = context.sample_aspect_ratio
        ticks, first, idr, reorder = _grid(pts, keys, problems)
        decode_order = tuple((value - first) // ticks for value in pts) if ticks else ()
        return VideoIndex(
            codec=context.name, pix_fmt=str(context.pix_fmt or ""), profile=str(context.profile or ""),
            level=int(context.level or 0), width=context.width, height=context.height,
            sample_aspect=Fraction(sar) if sar else None, colour=colour, time_base=time_base,
            frame_ticks=ticks, first_pts=first, frames=len(pts), idr_frames=idr, reorder=reorder,
            problems=tuple(dict.fromkeys(problems)), decode_order=decode_order,
        )


def _interlaced(context: av.video.codeccontext.VideoCodecContext, packet: av.Packet[Any]) -> bool | None:
    """Whether the first frame decoded from ``packet`` is interlaced (None: no frame yet)."""
    for frame in context.decode(packet):
        return bool(getattr(frame, "interlaced_frame", False))
    return None


def _grid(pts: list[int], idr: list[bool], problems: list[str]) -> tuple[int, int, tuple[int, ...], int]:
    """Frame duration, first time, IDR display indices and reorder delay of packets in
    decode order; appends to ``problems`` what rules out splicing."""
    if len(pts) < 2:
        problems.append("it has fewer than two frames")
        return 0, 0, (), 0
    ordered = sorted(pts)
    steps = {b - a for a, b in itertools.pairwise(ordered)}
    if len(steps) != 1 or 0 in steps:
        problems.append("its frames are not evenly spaced (variable frame rate)")
        return 0, ordered[0], (), 0
    ticks, first = steps.pop(), ordered[0]
    if first != 0:
        problems.append("its picture does not start at time 0")
    display = [(value - first) // ticks for value in pts]
    starts = [display[i] for i, key in enumerate(idr) if key]
    if not idr[0]:
        problems.append("it does not start on an IDR frame")
    # Closed GOPs: every frame decoded after an IDR (and before the next) shows between them.
    bounds = sorted(starts)
    gop = -1
    for position, shown in enumerate(display):
        if idr[position]:
            gop = shown
        following = bisect.bisect_right(bounds, gop)
        limit = bounds[following] if following < len(bounds) else len(pts)
        if not gop <= shown < limit:
            problems.append("a frame shows outside its GOP (open GOP)")
            break
    reorder = max(0, *(position - shown for position, shown in enumerate(display)))
    return ticks, first, tuple(bounds), reorder


def splice_video(
    source: Path,
    plan: SplicePlan,
    output: Path,
    index: VideoIndex,
    *,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> SpliceResult:
    """Write ``output`` (MP4, video only): ``plan``'s copied GOPs as ``source``'s packets,
    unchanged, and its other kept frames re-encoded with libx264 matching ``index``;
    timestamps rebuilt on the frame grid (PTS = output frame, DTS = decode position −
    ``plan.delay``). Raises :class:`MediaError` when reading, encoding or muxing fails,
    when a timestamp would break ordering, or when cancelled.
    """
    try:
        return _splice(source, plan, output, index, on_progress, cancel)
    except av.error.FFmpegError as exc:
        raise MediaError(f"smart cutting failed ({exc}).") from exc


class _Writer:
    """The output stream with its decode counter: every packet gets PTS from its output
    frame and DTS from its decode position."""

    def __init__(self, container: av.container.OutputContainer, stream: av.video.stream.VideoStream,
                 index: VideoIndex, delay: int) -> None:
        self.container, self.stream, self.ticks, self.delay = container, stream, index.frame_ticks, delay
        self.time_base = index.time_base
        self.decoded = 0

    def write(self, packet: av.Packet[Any], frame: int) -> None:
        dts = (self.decoded - self.delay) * self.ticks
        pts = frame * self.ticks
        if pts < dts:
            raise MediaError(f"smart cutting would show frame {frame} before it is decoded.")
        packet.pts, packet.dts, packet.duration = pts, dts, self.ticks
        packet.time_base = self.time_base
        packet.stream = self.stream
        self.container.mux(packet)
        self.decoded += 1


def _splice(source: Path, plan: SplicePlan, output: Path, index: VideoIndex,
            on_progress: ProgressCallback | None, cancel: threading.Event | None) -> SpliceResult:
    starts = [start for start, _ in plan.ranges]
    offsets, total = [], 0
    for start, end in plan.ranges:
        offsets.append(total)
        total += end - start

    def out_frame(shown: int) -> int | None:
        slot = bisect.bisect_right(starts, shown) - 1
        if slot < 0 or shown >= plan.ranges[slot][1]:
            return None
        return offsets[slot] + shown - starts[slot]

    result = SpliceResult()
    with _open(source) as container, av.open(str(output), "w", format="mp4") as out:
        stream = next(s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic)
        ostream = out.add_stream_from_template(stream)
        ostream.codec_tag = "avc1"
        writer = _Writer(out, ostream, index, plan.delay)
        encoder: _Encoder | None = None
        gop: list[av.Packet[Any]] = []
        gop_start = -1
        copied = dict(plan.copied_gops)
        idr = set(index.idr_frames)

        def finish_gop() -> None:
            nonlocal encoder
            if not gop:
                return
            if gop_start in copied:
                if encoder is not None:
                    result.encoded += encoder.close(writer)
                    encoder = None
                end = copied[gop_start]
                for packet in gop:
                    shown = _shown(packet, index)
                    if shown >= end:
                        continue  # after a copied prefix: nothing of it is kept
                    frame = out_frame(shown)
                    if frame is None:
                        raise MediaError("smart cutting planned to copy frames that are not kept.")
                    writer.write(packet, frame)
                    result.copied += 1
                return
            wanted = [out_frame(_shown(packet, index)) for packet in gop]
            if all(frame is None for frame in wanted):
                return
            if encoder is None:
                encoder = _Encoder(index, plan)
            needed = sum(frame is not None for frame in wanted)
            encoder.add(_decoded_gop(stream, gop), needed, index, out_frame, writer)

        done = 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if cancel is not None and cancel.is_set():
                raise MediaError("the edit was stopped")
            if _shown(packet, index) in idr and packet.is_keyframe:
                finish_gop()
                gop, gop_start = [], _shown(packet, index)
            gop.append(packet)
            done += 1
            if on_progress is not None and done % 250 == 0:
                on_progress(min(1.0, done / max(1, index.frames)))
        finish_gop()
        if encoder is not None:
            result.encoded += encoder.close(writer)
    if result.copied + result.encoded != plan.frames:
        raise MediaError(f"smart cutting wrote {result.copied + result.encoded} frames, not {plan.frames}.")
    return result


def _shown(packet: av.Packet[Any], index: VideoIndex) -> int:
    return (int(packet.pts or 0) - index.first_pts) // index.frame_ticks


def _decoded_gop(stream: av.video.stream.VideoStream, packets: list[av.Packet[Any]]) -> Iterator[av.VideoFrame]:
    """The frames of one closed GOP, decoded on their own, in display order (as decoded:
    never more than the decoder's reorder delay held at once)."""
    decoder = av.CodecContext.create("h264", "r")
    decoder.extradata = stream.codec_context.extradata
    # One thread: frame threads would hold a picture pool per thread (tens of MB at 1080p)
    # for a GOP that x264, running on every core, is the bottleneck of anyway.
    decoder.thread_count = 1
    for packet in [*packets, None]:
        for frame in decoder.decode(packet):
            assert isinstance(frame, av.VideoFrame)
            yield frame


class _Encoder:
    """One libx264 session: consecutive re-encoded output frames, flushed before the next
    copied GOP so that its packets never interleave with copied ones."""

    def __init__(self, index: VideoIndex, plan: SplicePlan) -> None:
        codec = av.CodecContext.create("libx264", "w")
        assert isinstance(codec, av.video.codeccontext.VideoCodecContext)
        codec.width, codec.height, codec.pix_fmt = index.width, index.height, index.pix_fmt
        codec.time_base = index.time_base
        codec.framerate = Fraction(1) / (index.frame_ticks * index.time_base)
        if index.sample_aspect:
            codec.sample_aspect_ratio = index.sample_aspect
        for name, value in index.colour.items():
            setattr(codec, name, value)
        params = [f"sps-id={SPLICE_SPS_ID}", f"bframes={plan.bframes}", "b-pyramid=none", "open-gop=0",
                  *_X264_LEAN]
        if index.level:
            params.append(f"level={index.level / 10:.1f}")
        codec.options = {"crf": str(plan.crf), "preset": plan.preset, "profile": X264_PROFILES[index.profile],
                         "x264-params": ":".join(params), "threads": str(plan.threads or 0)}
        self.codec = codec
        self.frames = 0

    def add(self, frames: Iterator[av.VideoFrame], needed: int, index: VideoIndex,
            out_frame: Callable[[int], int | None], writer: _Writer) -> None:
        """Encode the kept ones of ``frames`` (one GOP's, in display order) at their output
        positions; stop decoding once the ``needed`` kept frames are in."""
        for frame in frames:
            if needed <= 0:
                break
            target = out_frame((int(frame.pts or 0) - index.first_pts) // index.frame_ticks)
            if target is None:
                continue
            frame.pts, frame.time_base = target * index.frame_ticks, index.time_base
            frame.pict_type = av.video.frame.PictureType.NONE  # libx264 obeys decoded types otherwise
            self._write(self.codec.encode(frame), writer)
            self.frames += 1
            needed -= 1

    def close(self, writer: _Writer) -> int:
        """Flush the session into ``writer``, free it and return how many frames it encoded."""
        self._write(self.codec.encode(None), writer)
        del self.codec
        release_free_memory()  # glibc would keep the session's ~100 MB of buffers
        return self.frames

    def _write(self, packets: list[av.Packet[Any]], writer: _Writer) -> None:
        for packet in packets:
            frame = int(packet.pts or 0) // writer.ticks
            copy = av.Packet(annexb_to_avcc(bytes(packet)))
            copy.is_keyframe = packet.is_keyframe
            writer.write(copy, frame)


def output_times(path: Path) -> OutputTimes:
    """The video packet timestamps (decode order) and the video and sound lengths of ``path``.

    Raises :class:`MediaError` when it cannot be read.
    """
    with _open(path) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        pts: list[int] = []
        dts: list[int] = []
        last_audio = 0
        for packet in container.demux(*( [video, audio] if audio is not None else [video])):
            if packet.size == 0:
                continue
            if packet.stream.type == "video":
                pts.append(int(packet.pts if packet.pts is not None else -1))
                dts.append(int(packet.dts if packet.dts is not None else -1))
            elif packet.pts is not None:
                last_audio = max(last_audio, packet.pts + (packet.duration or 0))
        base = Fraction(video.time_base) if video.time_base else Fraction(1)
        ticks = (max(pts) - min(pts)) / max(1, len(pts) - 1) if pts else 0
        video_seconds = float((max(pts) - min(pts) + ticks) * base) if pts else 0.0
        audio_seconds = None
        if audio is not None and audio.time_base is not None:
            start = audio.start_time or 0
            audio_seconds = float((last_audio - start) * Fraction(audio.time_base))
    return OutputTimes(tuple(pts), tuple(dts), video_seconds, audio_seconds, base)

"""ffmpeg argument lists for a timeline. Pure: returns argv, runs nothing.

Everything is one ffmpeg invocation with one ``filter_complex``: the source is
decoded once, put on a constant frame-rate grid, split into the kept ranges
(``trim``/``atrim`` on frame boundaries, so sound and picture stay in step),
joined with ``concat`` — each join gets a 10 ms fade out/in on the sound so there
is no click — then sped up, fitted to the canvas (crop or blurred pad), captions
and titles burned with libass, music mixed and ducked, loudness normalised, faded,
and encoded once (libx264 + AAC, ``+faststart``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nemod.config import EngineSettings
from nemod.media.probe import MediaInfo
from nemod.timeline import Clip, Timeline

#: Length of the fade out/in applied to the sound at every join and at the ends (seconds).
JOIN_FADE = 0.01
SAMPLE_RATE = 48_000


@dataclass(frozen=True)
class RenderInputs:
    """The files a timeline refers to: video sources and music by name, the ASS file
    to burn (None: nothing to burn) and the font folder for libass."""

    media: Mapping[str, MediaInfo]
    music: Mapping[str, Path] = field(default_factory=dict)
    overlay: Path | None = None
    fonts_dir: Path | None = None


def escape_filter_value(value: str) -> str:
    """Escape ``value`` for use as an option value inside a ``filter_complex`` graph
    (two levels: the option parser, then the graph parser)."""
    level1 = "".join("\\" + char if char in "\\':" else char for char in value)
    return "".join("\\" + char if char in "\\'[],;" else char for char in level1)


def _number(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def copy_args(media: MediaInfo, output: Path, *, reencode_audio: bool = False) -> list[str]:
    """Remux ``media`` into an MP4 without re-encoding the picture (all sound tracks kept;
    re-encoded to AAC when ``reencode_audio``, for codecs MP4 cannot hold)."""
    args = ["-y", "-i", str(media.path), "-map", "0:v:0", "-map", "0:a?", "-c:v", "copy"]
    args += ["-c:a", "aac", "-b:a", "160k"] if reencode_audio else ["-c:a", "copy"]
    return [*args, "-movflags", "+faststart", "-f", "mp4", str(output)]


def _fit(source_w: int, source_h: int, width: int, height: int, fit: str, tag: str = "fit") -> str:
    """Filters taking a ``source_w``×``source_h`` picture to exactly ``width``×``height``
    (``tag`` keeps the pad branch's labels unique in the graph)."""
    if (source_w, source_h) == (width, height):
        return ""
    if abs(source_w / source_h - width / height) < 0.01:
        return f"scale={width}:{height},"
    if fit == "pad":
        small_w, small_h = max(2, width // 16 * 2), max(2, height // 16 * 2)
        return (
            f"split=2[{tag}bg][{tag}fg];"
            f"[{tag}bg]scale={small_w}:{small_h}:force_original_aspect_ratio=increase,"
            f"crop={small_w}:{small_h},gblur=sigma=6,scale={width}:{height}[{tag}bgb];"
            f"[{tag}fg]scale={width}:{height}:force_original_aspect_ratio=decrease[{tag}fgs];"
            f"[{tag}bgb][{tag}fgs]overlay=(W-w)/2:(H-h)/2,"
        )
    return f"scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height},"


def _atempo(factor: float) -> str:
    steps = []
    while factor < 0.5:
        steps.append("atempo=0.5")
        factor /= 0.5
    steps.append(f"atempo={_number(factor)}")
    return ",".join(steps)


@dataclass(frozen=True)
class _Shape:
    """What every builder needs to know about a timeline: its sources in order of first use,
    its non-empty clips, the frame rate, the canvas and the picture options."""

    names: list[str]
    segments: tuple[Clip, ...]
    fps: float
    width: int
    height: int
    fit: str
    speed: float
    mute: bool
    #: One source cut in order (the usual case): the picture goes through a single select on
    #: the frame grid — no per-range branches holding decoded frames — and only the (small)
    #: sound is split per range, so each join can get its own short fades.
    single: bool
    fade_in: float
    fade_out: float


def _shape(timeline: Timeline, inputs: RenderInputs) -> _Shape:
    """Read ``timeline``'s video track and settings. Raises ValueError as :func:`render_args`."""
    segments = timeline.clips
    if not segments:
        raise ValueError("the timeline has no video to render")
    names = list(dict.fromkeys(clip.source for clip in segments))
    missing = [name for name in names if name not in inputs.media]
    if missing:
        raise ValueError(f"the timeline uses {missing[0]!r}, which is not among the sources given")
    first = inputs.media[names[0]]
    canvas = timeline.canvas
    width, height = (canvas.width, canvas.height) if canvas else (first.width, first.height)
    in_order = all(a.end <= b.start for a, b in itertools.pairwise(segments))
    return _Shape(
        names=names, segments=segments, fps=timeline.fps or 30.0,
        width=width // 2 * 2, height=height // 2 * 2, fit=canvas.fit if canvas else "crop",
        speed=timeline.speed, mute=bool(timeline.video and timeline.video.mute),
        single=len(names) == 1 and in_order, fade_in=timeline.fade_in, fade_out=timeline.fade_out,
    )


def _input_args(shape: _Shape, inputs: RenderInputs) -> list[str]:
    """``-i`` for each video source, in the order the graph numbers them."""
    return [arg for name in shape.names for arg in ("-i", str(inputs.media[name].path))]


def _source_branches(shape: _Shape, inputs: RenderInputs) -> list[str]:
    """Per source: the picture on the frame grid (fitted, when several sources are joined)
    and the sound resampled, each split into one branch per range taken from it."""
    graph = []
    for index, name in enumerate(shape.names):
        info = inputs.media[name]
        count = sum(1 for seg in shape.segments if seg.source == name)
        if not shape.single:
            split_v = f"split={count}" + "".join(f"[v{index}_{k}]" for k in range(count))
            # Several sources: each is fitted to the canvas before the ranges are joined.
            fitted = _fit(info.width, info.height, shape.width, shape.height, shape.fit, f"fit{index}")
            graph.append(
                f"[{index}:v:0]fps={_number(shape.fps)},{fitted}setsar=1,"
                + (split_v if count > 1 else f"null[v{index}_0]")
            )
        if info.has_audio and not shape.mute:
            split_a = f"asplit={count}" + "".join(f"[a{index}_{k}]" for k in range(count))
            graph.append(
                f"[{index}:a:0]aresample={SAMPLE_RATE}:async=1:first_pts=0,"
                f"aformat=sample_fmts=fltp:channel_layouts=stereo,"
                + (split_a if count > 1 else f"anull[a{index}_0]")
            )
    return graph


def any_of(terms: list[str]) -> str:
    """The ffmpeg expression true when any of ``terms`` is: a balanced sum. ffmpeg's parser
    refuses a flat sum of 100 or more terms ("Cannot allocate memory"), which a pause trim
    of an hour-long recording easily has; a balanced one is only log2(n) deep. Raises
    ValueError when there are no terms."""
    if not terms:
        raise ValueError("an expression needs at least one term")
    if len(terms) == 1:
        return terms[0]
    middle = len(terms) // 2
    return f"({any_of(terms[:middle])}+{any_of(terms[middle:])})"


def _segments(shape: _Shape, inputs: RenderInputs, *, picture: bool = True) -> tuple[list[str], float]:
    """The kept ranges cut on frame boundaries and joined into ``[vcat][acat]``, each range's
    sound faded in and out by :data:`JOIN_FADE`; returns the graph lines and the joined
    length in seconds (before any speed change)."""
    graph = _source_branches(shape, inputs)
    fps = shape.fps
    used = dict.fromkeys(shape.names, 0)
    pieces, audio_pieces, selections = [], [], []
    total = 0.0
    for number, seg in enumerate(shape.segments):
        index = shape.names.index(seg.source)
        info = inputs.media[seg.source]
        k = used[seg.source]
        used[seg.source] += 1
        start_frame = round(seg.start / 1000 * fps)
        end_frame = max(start_frame + 1, round(seg.end / 1000 * fps))
        to_end = seg.end >= info.duration * 1000 - 1
        start, end = start_frame / fps, end_frame / fps
        # Frames are kept when start <= pts < end; the bounds sit a quarter frame before the
        # wanted frames so that rounding to the time base never moves them by a frame.
        low, high = _number((start_frame - 0.25) / fps), _number((end_frame - 0.25) / fps)
        if shape.single:
            terms = ([f"gte(t,{low})"] if start_frame > 0 else []) + ([] if to_end else [f"lt(t,{high})"])
            selections.append("*".join(terms) or "1")
        else:
            trim = ([f"start={low}"] if start_frame > 0 else []) + ([] if to_end else [f"end={high}"])
            vtrim = f"trim={':'.join(trim)}," if trim else ""
            graph.append(f"[v{index}_{k}]{vtrim}setpts=PTS-STARTPTS[cv{number}]")
        length = (end if not to_end else info.duration) - start
        total += length
        graph.append(_range_sound(info, shape, number, index, k, start if start_frame > 0 else None,
                                  None if to_end else end, length))
        pieces.append(f"[cv{number}][ca{number}]")
        audio_pieces.append(f"[ca{number}]")
    if shape.single:
        selection = any_of(selections)
        picked = "" if selection == "1" else f"select='{selection}',setpts=N/FRAME_RATE/TB,"
        if picture:
            graph.append(f"[0:v:0]fps={_number(fps)},{picked}null[vcat]")
        if len(audio_pieces) > 1:
            graph.append(f"{''.join(audio_pieces)}concat=n={len(audio_pieces)}:v=0:a=1[acat]")
        else:
            graph.append("[ca0]anull[acat]")
    elif len(pieces) > 1:
        graph.append(f"{''.join(pieces)}concat=n={len(pieces)}:v=1:a=1[vcat][acat]")
    else:
        graph.append("[cv0]null[vcat]")
        graph.append("[ca0]anull[acat]")
    return graph, total


def _range_sound(info: MediaInfo, shape: _Shape, number: int, index: int, branch: int,
                 start: float | None, end: float | None, length: float) -> str:
    """The sound of range ``number`` as ``[ca<number>]``: source samples from ``start`` to
    ``end`` (None: the source's own start or end) with the join fades, or silence of the
    range's ``length`` when the source has none or the picture is muted."""
    if not info.has_audio or shape.mute:
        return (
            f"anullsrc=r={SAMPLE_RATE}:cl=stereo,atrim=duration={_number(length)},"
            f"aformat=sample_fmts=fltp:channel_layouts=stereo[ca{number}]"
        )
    fade = min(JOIN_FADE, length / 4)
    atrim = ([f"start={_number(start)}"] if start is not None else []) + (
        [f"end={_number(end)}"] if end is not None else [])
    atrim_text = f"atrim={':'.join(atrim)}," if atrim else ""
    return (
        f"[a{index}_{branch}]{atrim_text}asetpts=PTS-STARTPTS,"
        f"afade=t=in:d={_number(fade)},afade=t=out:st={_number(max(0.0, length - fade))}:d={_number(fade)}"
        f"[ca{number}]"
    )


def _picture(shape: _Shape, inputs: RenderInputs, duration: float) -> str:
    """``[vcat]`` → ``[vout]``: speed, the canvas, burned captions and titles, fades."""
    chain = "[vcat]"
    if shape.speed != 1.0:
        chain += f"setpts=PTS/{_number(shape.speed)},fps={_number(shape.fps)},"
    if shape.single:
        first = inputs.media[shape.names[0]]
        chain += _fit(first.width, first.height, shape.width, shape.height, shape.fit)
    if inputs.overlay is not None:
        option = f"filename={escape_filter_value(str(inputs.overlay))}"
        if inputs.fonts_dir is not None:
            option += f":fontsdir={escape_filter_value(str(inputs.fonts_dir))}"
        chain += f"ass={option},"
    if shape.fade_in > 0:
        chain += f"fade=t=in:st=0:d={_number(shape.fade_in)},"
    if shape.fade_out > 0:
        chain += f"fade=t=out:st={_number(max(0.0, duration - shape.fade_out))}:d={_number(shape.fade_out)},"
    return chain + "setsar=1,format=yuv420p[vout]"


def _sound(timeline: Timeline, shape: _Shape, inputs: RenderInputs, duration: float) -> tuple[list[str], list[str]]:
    """``[acat]`` → ``[aout]``: speed, music (looped, ducked under the voice unless the
    track says not to), loudness, fades. Returns the graph lines and the music's input
    arguments. Raises ValueError when the music is not among ``inputs.music``."""
    graph: list[str] = []
    chain = "[acat]"
    if shape.speed != 1.0:
        chain += _atempo(shape.speed) + ","
    music = timeline.music
    music_args: list[str] = []
    if music is not None:
        graph.append(chain + "asplit=2[voice][sidechain]")
        path = inputs.music.get(music.name)
        if path is None:
            raise ValueError(f"the timeline's music {music.name!r} is not among the sources given")
        music_args = ["-stream_loop", "-1", "-i", str(path)]
        volume = music.volume
        graph.append(
            f"[{len(shape.names)}:a:0]aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
            f"atrim=duration={_number(duration)},asetpts=PTS-STARTPTS,volume={_number(volume)}[music]"
        )
        if music.duck:
            graph.append("[music][sidechain]sidechaincompress=threshold=0.02:ratio=8:attack=20:release=400[ducked]")
        else:
            graph.append("[sidechain]anullsink;[music]anull[ducked]")
        chain = "[voice][ducked]amix=inputs=2:duration=first:normalize=0,"
    target = timeline.normalize
    if target is not None:
        chain += f"loudnorm=I={_number(target)}:TP=-1.5:LRA=11,aresample={SAMPLE_RATE},"
    if shape.fade_in > 0:
        chain += f"afade=t=in:st=0:d={_number(shape.fade_in)},"
    if shape.fade_out > 0:
        chain += f"afade=t=out:st={_number(max(0.0, duration - shape.fade_out))}:d={_number(shape.fade_out)},"
    graph.append(chain + "aformat=sample_fmts=fltp:channel_layouts=stereo[aout]")
    return graph, music_args


def _encoder_args(shape: _Shape, duration: float, output: Path, *, preset: str, crf: int,
                  threads: int, picture: bool = True) -> list[str]:
    """libx264 on the timeline's frame rate (unless not ``picture``) and AAC at
    :data:`SAMPLE_RATE`, cut to ``duration``, into an MP4 with the index first (``+faststart``)."""
    args = ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-r", _number(shape.fps)] if picture else []
    if threads:
        args += ["-threads", str(threads)]
    args += ["-c:a", "aac", "-b:a", "160k", "-ar", str(SAMPLE_RATE), "-t", _number(duration)]
    return [*args, "-movflags", "+faststart", "-f", "mp4", str(output)]


def render_args(
    timeline: Timeline,
    inputs: RenderInputs,
    output: Path,
    *,
    preset: str = EngineSettings.preset,
    crf: int = EngineSettings.crf,
    threads: int = 0,
    audio_only: bool = False,
) -> list[str]:
    """Return ffmpeg arguments (without the executable) rendering ``timeline`` to ``output``:
    inputs, then one graph of segments → picture and sound, then the encoders.

    With ``audio_only`` only the sound is rendered (an M4A: what a smart cut muxes with its
    spliced picture), from the same graph, so it is cut on the same frame times.
    Raises ValueError when the timeline has no video clips or names a source (or music)
    missing from ``inputs``, or asks for ``audio_only`` on a timeline that is not one source
    in order.
    """
    shape = _shape(timeline, inputs)
    if audio_only and not shape.single:
        raise ValueError("only the sound of one source cut in order can be rendered alone")
    graph, total = _segments(shape, inputs, picture=not audio_only)
    duration = total / shape.speed
    if not audio_only:
        graph.append(_picture(shape, inputs, duration))
    sound, music_args = _sound(timeline, shape, inputs, duration)
    graph += sound
    maps = ["-map", "[aout]", "-vn"] if audio_only else ["-map", "[vout]", "-map", "[aout]"]
    return [
        "-y", *_input_args(shape, inputs), *music_args, "-filter_complex", ";".join(graph), *maps,
        *_encoder_args(shape, duration, output, preset=preset, crf=crf, threads=threads,
                       picture=not audio_only),
    ]


def mux_args(video: Path, audio: Path, output: Path) -> list[str]:
    """Join a spliced picture (``video``, MP4) and its rendered sound (``audio``, M4A) into
    ``output`` without re-encoding: ``avc1``, ``+faststart``."""
    return ["-y", "-i", str(video), "-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-c", "copy",
            "-tag:v", "avc1", "-movflags", "+faststart", "-f", "mp4", str(output)]


def decode_check_args(path: Path, *, start: float | None = None, duration: float | None = None,
                      stream: str = "v") -> list[str]:
    """Decode ``path``'s first ``stream`` (``v`` or ``a``) — all of it, or ``duration``
    seconds from the frame at ``start`` — and discard it, logging errors only: a clean file
    logs nothing."""
    window = [] if start is None else ["-ss", _number(max(0.0, start))]
    window += [] if duration is None else ["-t", _number(duration)]
    return ["-v", "error", *window, "-i", str(path), "-map", f"0:{stream}:0", "-f", "null", "-"]


def output_duration(timeline: Timeline, media: Mapping[str, MediaInfo]) -> float:
    """The rendered length in seconds (for progress), from the timeline's video clips."""
    if not timeline.clips:
        return timeline.duration / 1000
    total = 0.0
    for clip in timeline.clips:
        info = media.get(clip.source)
        end = min(clip.end / 1000, info.duration) if info else clip.end / 1000
        total += max(0.0, end - clip.start / 1000)
    return total / timeline.speed

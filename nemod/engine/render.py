"""ffmpeg argument lists for a draft. Pure: returns argv, runs nothing.

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
from typing import Any

from nemod.config import EngineSettings
from nemod.draft import AUDIO, VIDEO, Draft
from nemod.media.probe import MediaInfo

#: Length of the fade out/in applied to the sound at every join and at the ends (seconds).
JOIN_FADE = 0.01
SAMPLE_RATE = 48_000


@dataclass(frozen=True)
class RenderInputs:
    """The files a draft refers to: video sources and music by ``src`` name, the ASS file
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


def _video_track(draft: Draft) -> dict[str, Any]:
    for track in draft.get("t", []):
        if track.get("tt") == VIDEO and track.get("sg"):
            return dict(track)
    raise ValueError("the draft has no video track with segments")


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


def render_args(
    draft: Draft,
    inputs: RenderInputs,
    output: Path,
    *,
    preset: str = EngineSettings.preset,
    crf: int = EngineSettings.crf,
    threads: int = 0,
    audio_only: bool = False,
) -> list[str]:
    """Return ffmpeg arguments (without the executable) rendering ``draft`` to ``output``.

    With ``audio_only`` only the sound is rendered (an M4A: what a smart cut muxes with its
    spliced picture), from the same graph, so it is cut on the same frame times.
    Raises ValueError when the draft has no video segments or names a source missing
    from ``inputs``, or asks for ``audio_only`` on a draft that is not one source in order.
    """
    video = _video_track(draft)
    meta = draft.get("m", {})
    fps = float(meta.get("fps") or 30)
    canvas = meta.get("canvas") or {}
    segments = [seg for seg in video["sg"] if seg.get("e", 0) > seg.get("s", 0)]
    names = list(dict.fromkeys(seg["src"] for seg in segments))
    missing = [name for name in names if name not in inputs.media]
    if missing:
        raise ValueError(f"the draft uses {missing[0]!r}, which is not among the sources given")
    first = inputs.media[names[0]]
    width = int(canvas.get("w") or first.width)
    height = int(canvas.get("h") or first.height)
    width, height = width // 2 * 2, height // 2 * 2
    vmeta = video.get("m", {})
    speed = float(vmeta.get("speed") or 1.0)
    mute = bool(vmeta.get("mute"))

    args: list[str] = ["-y"]
    for name in names:
        args += ["-i", str(inputs.media[name].path)]
    graph: list[str] = []
    # One source cut in order (the usual case): the picture goes through a single select on
    # the frame grid — no per-range branches holding decoded frames — and only the (small)
    # sound is split per range, so each join can get its own short fades.
    in_order = all(a["e"] <= b["s"] for a, b in itertools.pairwise(segments))
    single = len(names) == 1 and in_order
    if audio_only and not single:
        raise ValueError("only the sound of one source cut in order can be rendered alone")
    counts = {name: sum(1 for seg in segments if seg["src"] == name) for name in names}
    for index, name in enumerate(names):
        info = inputs.media[name]
        if not single:
            split_v = f"split={counts[name]}" + "".join(f"[v{index}_{k}]" for k in range(counts[name]))
            # Several sources: each is fitted to the canvas before the ranges are joined.
            fitted = _fit(info.width, info.height, width, height, str(canvas.get("fit") or "crop"), f"fit{index}")
            graph.append(
                f"[{index}:v:0]fps={_number(fps)},{fitted}setsar=1,"
                + (split_v if counts[name] > 1 else f"null[v{index}_0]")
            )
        if info.has_audio and not mute:
            split_a = f"asplit={counts[name]}" + "".join(f"[a{index}_{k}]" for k in range(counts[name]))
            graph.append(
                f"[{index}:a:0]aresample={SAMPLE_RATE}:async=1:first_pts=0,"
                f"aformat=sample_fmts=fltp:channel_layouts=stereo,"
                + (split_a if counts[name] > 1 else f"anull[a{index}_0]")
            )
    used = dict.fromkeys(names, 0)
    pieces, audio_pieces, selections = [], [], []
    total = 0.0
    for number, seg in enumerate(segments):
        index = names.index(seg["src"])
        info = inputs.media[seg["src"]]
        k = used[seg["src"]]
        used[seg["src"]] += 1
        start_frame = round(seg["s"] / 1000 * fps)
        end_frame = max(start_frame + 1, round(seg["e"] / 1000 * fps))
        to_end = seg["e"] >= info.duration * 1000 - 1
        start, end = start_frame / fps, end_frame / fps
        # Frames are kept when start <= pts < end; the bounds sit a quarter frame before the
        # wanted frames so that rounding to the time base never moves them by a frame.
        low, high = _number((start_frame - 0.25) / fps), _number((end_frame - 0.25) / fps)
        if single:
            terms = ([f"gte(t,{low})"] if start_frame > 0 else []) + ([] if to_end else [f"lt(t,{high})"])
            selections.append("*".join(terms) or "1")
        else:
            trim = ([f"start={low}"] if start_frame > 0 else []) + ([] if to_end else [f"end={high}"])
            vtrim = f"trim={':'.join(trim)}," if trim else ""
            graph.append(f"[v{index}_{k}]{vtrim}setpts=PTS-STARTPTS[cv{number}]")
        length = (end if not to_end else info.duration) - start
        total += length
        fade = min(JOIN_FADE, length / 4)
        if info.has_audio and not mute:
            atrim = [f"start={_number(start)}"] if start_frame > 0 else []
            if not to_end:
                atrim.append(f"end={_number(end)}")
            atrim_text = f"atrim={':'.join(atrim)}," if atrim else ""
            graph.append(
                f"[a{index}_{k}]{atrim_text}asetpts=PTS-STARTPTS,"
                f"afade=t=in:d={_number(fade)},afade=t=out:st={_number(max(0.0, length - fade))}:d={_number(fade)}"
                f"[ca{number}]"
            )
        else:
            graph.append(
                f"anullsrc=r={SAMPLE_RATE}:cl=stereo,atrim=duration={_number(length)},"
                f"aformat=sample_fmts=fltp:channel_layouts=stereo[ca{number}]"
            )
        pieces.append(f"[cv{number}][ca{number}]")
        audio_pieces.append(f"[ca{number}]")
    if single:
        selection = "+".join(selections)
        picked = "" if selection == "1" else f"select='{selection}',setpts=N/FRAME_RATE/TB,"
        if not audio_only:
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
    duration = total / speed

    # Picture: speed, canvas, burned text, fades.
    chain = "[vcat]"
    if speed != 1.0:
        chain += f"setpts=PTS/{_number(speed)},fps={_number(fps)},"
    if single:
        chain += _fit(first.width, first.height, width, height, str(canvas.get("fit") or "crop"))
    if inputs.overlay is not None:
        option = f"filename={escape_filter_value(str(inputs.overlay))}"
        if inputs.fonts_dir is not None:
            option += f":fontsdir={escape_filter_value(str(inputs.fonts_dir))}"
        chain += f"ass={option},"
    fades = meta.get("fade") or {}
    fade_in, fade_out = float(fades.get("in") or 0), float(fades.get("out") or 0)
    if fade_in > 0:
        chain += f"fade=t=in:st=0:d={_number(fade_in)},"
    if fade_out > 0:
        chain += f"fade=t=out:st={_number(max(0.0, duration - fade_out))}:d={_number(fade_out)},"
    chain += "setsar=1,format=yuv420p[vout]"
    if not audio_only:
        graph.append(chain)

    # Sound: speed, music (ducked), loudness, fades.
    audio_chain = "[acat]"
    if speed != 1.0:
        audio_chain += _atempo(speed) + ","
    music_tracks = [t for t in draft.get("t", []) if t.get("tt") == AUDIO and t.get("sg")]
    music_args: list[str] = []
    if music_tracks:
        audio_chain += "asplit=2[voice][sidechain]"
        graph.append(audio_chain)
        track = music_tracks[0]
        seg = track["sg"][0]
        path = inputs.music.get(seg["src"])
        if path is None:
            raise ValueError(f"the draft's music {seg['src']!r} is not among the sources given")
        music_index = len(names)
        music_args = ["-stream_loop", "-1", "-i", str(path)]
        volume = float(seg.get("v", track.get("m", {}).get("volume", 0.35)))
        graph.append(
            f"[{music_index}:a:0]aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
            f"atrim=duration={_number(duration)},asetpts=PTS-STARTPTS,volume={_number(volume)}[music]"
        )
        if track.get("m", {}).get("duck", True):
            graph.append("[music][sidechain]sidechaincompress=threshold=0.02:ratio=8:attack=20:release=400[ducked]")
        else:
            graph.append("[sidechain]anullsink;[music]anull[ducked]")
        audio_chain = "[voice][ducked]amix=inputs=2:duration=first:normalize=0,"
    target = (meta.get("audio") or {}).get("normalize")
    if target is not None:
        audio_chain += f"loudnorm=I={_number(float(target))}:TP=-1.5:LRA=11,aresample={SAMPLE_RATE},"
    if fade_in > 0:
        audio_chain += f"afade=t=in:st=0:d={_number(fade_in)},"
    if fade_out > 0:
        audio_chain += f"afade=t=out:st={_number(max(0.0, duration - fade_out))}:d={_number(fade_out)},"
    audio_chain += "aformat=sample_fmts=fltp:channel_layouts=stereo[aout]"
    graph.append(audio_chain)

    args += music_args
    args += ["-filter_complex", ";".join(graph)]
    if audio_only:
        args += ["-map", "[aout]", "-vn"]
    else:
        args += ["-map", "[vout]", "-map", "[aout]"]
        args += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-r", _number(fps)]
    if threads:
        args += ["-threads", str(threads)]
    args += ["-c:a", "aac", "-b:a", "160k", "-ar", str(SAMPLE_RATE), "-t", _number(duration)]
    args += ["-movflags", "+faststart", "-f", "mp4", str(output)]
    return args


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


def output_duration(draft: Draft, media: Mapping[str, MediaInfo]) -> float:
    """The rendered length in seconds (for progress), from the draft's video segments."""
    try:
        video = _video_track(draft)
    except ValueError:
        return float(draft.get("d", 0)) / 1000
    speed = float(video.get("m", {}).get("speed") or 1.0)
    total = 0.0
    for seg in video["sg"]:
        info = media.get(seg["src"])
        end = min(seg["e"] / 1000, info.duration) if info else seg["e"] / 1000
        total += max(0.0, end - seg["s"] / 1000)
    return total / speed

"""ffmpeg argument lists for a draft. Pure: returns argv, runs nothing."""

from __future__ import annotations

from pathlib import Path

from nemod.engine.timeline import Draft
from nemod.media.probe import MediaInfo


def render_args(
    draft: Draft, media: MediaInfo, output: Path, *, preset: str = "veryfast", crf: int = 23
) -> list[str]:
    """Return ffmpeg arguments (without the executable) rendering ``draft`` to ``output``.

    One pass: scale/pad to the canvas, H.264 (libx264, ``preset``/``crf``), AAC, ``+faststart``.
    """
    canvas = draft["m"]["canvas"]
    width, height = canvas["w"], canvas["h"]
    video = (
        f"[0:v:0]scale={width}:{height}:force_original_aspect_ratio=decrease,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p[v]"
    )
    args = ["-y", "-i", str(media.path), "-filter_complex", video, "-map", "[v]"]
    if media.has_audio:
        args += ["-map", "0:a:0", "-c:a", "aac", "-b:a", "160k", "-ac", "2"]
    args += [
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf),
        "-movflags", "+faststart", "-f", "mp4", str(output),
    ]
    return args

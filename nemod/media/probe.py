"""Reading a media file's streams with PyAV (imageio-ffmpeg ships no ffprobe)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from nemod.errors import MediaError


@dataclass(frozen=True)
class MediaInfo:
    """What nemod needs to know about an input file.

    ``width``/``height`` are the *displayed* size (rotation applied); ``duration`` is
    in seconds; ``audio_streams`` counts audio tracks (0: silent video).
    """

    path: Path
    duration: float
    width: int
    height: int
    fps: float
    rotation: int
    audio_streams: int
    video_codec: str | None
    has_video: bool
    is_still: bool = False

    @property
    def has_audio(self) -> bool:
        """True when the file has at least one audio track."""
        return self.audio_streams > 0


def probe(path: Path) -> MediaInfo:
    """Read ``path``'s container and stream headers.

    Raises :class:`MediaError` (one sentence) when the file is not readable media.
    """
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise MediaError(f"{path.name} is not a readable video or audio file ({_short(exc)}).") from exc
    with container:
        videos = [s for s in container.streams.video if not _is_cover_art(s)]
        audios = list(container.streams.audio)
        if not videos and not audios:
            raise MediaError(f"{path.name} has no video or audio stream.")
        still = _is_still(container)
        duration = 0.0 if still else _duration(container, videos[0] if videos else audios[0])
        width = height = rotation = 0
        fps = 0.0
        codec = None
        if videos:
            stream = videos[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            codec = stream.codec_context.name
            rotation = _rotation(container, stream)
            if rotation % 180:
                width, height = height, width
            if width <= 0 or height <= 0:
                raise MediaError(f"{path.name}: the video stream has no picture size.")
    return MediaInfo(
        path, duration, width, height, fps, rotation, len(audios), codec, bool(videos), still
    )


def _is_still(container: av.container.InputContainer) -> bool:
    """True for a still picture (a one-frame image file), false for video and audio."""
    names = container.format.name.split(",")
    return any(name == "image2" or name.endswith("_pipe") for name in names)


def _is_cover_art(stream: av.video.stream.VideoStream) -> bool:
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _duration(container: av.container.InputContainer, stream: av.stream.Stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    raise MediaError(f"{Path(container.name).name}: the duration cannot be read.")


def _rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """The display rotation in degrees (0, 90, 180, 270), read off the first decoded frame."""
    try:
        for frame in container.decode(stream):
            return round(getattr(frame, "rotation", 0) or 0) % 360
    except av.error.FFmpegError as exc:
        raise MediaError(f"{Path(container.name).name}: the video cannot be decoded ({_short(exc)}).") from exc
    return 0


def _short(exc: BaseException) -> str:
    text = str(exc).split(":")[0] if isinstance(exc, av.error.FFmpegError) else str(exc)
    return text.strip() or type(exc).__name__

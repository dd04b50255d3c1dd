"""Sample media made on this machine: the demo clip, test clips and benchmark clips.

Pictures come from ffmpeg's lavfi test sources; speech is a real recording bundled
with nemod (``data/speech-mit-licence.mp3``), cut into phrases with pauses of
*known* length inserted between them, so tests can check exactly what was cut.
Nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from nemod.media import ffmpeg

#: Phrases of the English reading in the bundled recording: (start, end) seconds. The cut
#: points sit in the reader's own short breaths, so no word is split.
PHRASES: tuple[tuple[float, float], ...] = ((0.0, 11.26), (11.26, 21.08), (21.08, 25.67), (25.67, 29.02))
#: Pauses inserted after each phrase but the last, in seconds.
DEFAULT_PAUSES: tuple[float, ...] = (1.8, 1.2, 2.5)
#: What the reader says in PHRASES, for word-error checks.
TRANSCRIPT = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this "
    "software and associated documentation files (the Software), to deal in the Software "
    "without restriction, including without limitation the rights to use, copy, modify, "
    "merge, publish, distribute, sublicense, and/or sell copies of the Software"
)


@dataclass(frozen=True)
class Talk:
    """A generated talking clip: its path, the inserted pauses as (start, end) seconds in
    the clip, and its total duration."""

    path: Path
    pauses: tuple[tuple[float, float], ...]
    duration: float


def speech_file() -> Path:
    """The bundled speech recording."""
    return Path(str(resources.files("nemod") / "data" / "speech-mit-licence.mp3"))


def make_talk(
    path: Path,
    *,
    width: int = 1280,
    height: int = 720,
    fps: int = 30,
    pauses: tuple[float, ...] = DEFAULT_PAUSES,
    repeat: int = 1,
    lead_in: float = 0.0,
) -> Talk:
    """Write a talking clip to ``path``: the phrases ``repeat`` times with ``pauses`` between
    them (cycled), over a moving test picture. Returns where the pauses are."""
    segments: list[tuple[str, float, float]] = []  # ("speech"|"pause", a, b)
    if lead_in:
        segments.append(("pause", 0.0, lead_in))
    for round_index in range(repeat):
        for index, (start, end) in enumerate(PHRASES):
            segments.append(("speech", start, end))
            last = round_index == repeat - 1 and index == len(PHRASES) - 1
            if not last:
                pause = pauses[(round_index * len(PHRASES) + index) % len(pauses)]
                segments.append(("pause", 0.0, pause))
    filters, labels = [], []
    clock = 0.0
    found: list[tuple[float, float]] = []
    for index, (kind, start, end) in enumerate(segments):
        label = f"s{index}"
        if kind == "speech":
            filters.append(
                f"[0:a]atrim={start}:{end},asetpts=PTS-STARTPTS,aresample=48000,"
                f"aformat=channel_layouts=mono[{label}]"
            )
        else:
            filters.append(f"aevalsrc=0:d={end}:s=48000:c=mono[{label}]")
            found.append((round(clock, 3), round(clock + end, 3)))
        clock += end - start
        labels.append(f"[{label}]")
    filters.append(f"{''.join(labels)}concat=n={len(labels)}:v=0:a=1[a]")
    args = [
        "-y", "-i", str(speech_file()),
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={clock:.3f}",
        "-filter_complex", ";".join(filters),
        "-map", "1:v", "-map", "[a]",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "96k", "-shortest", "-movflags", "+faststart", str(path),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg.run(args)
    return Talk(path, tuple(found), round(clock, 3))


def make_clip(path: Path, *, width: int = 1280, height: int = 720, seconds: float = 2.0,
              fps: int = 30, audio: bool = True, extra: tuple[str, ...] = ()) -> Path:
    """Write a plain test clip (test picture, optional sine tone) to ``path``."""
    args = ["-y", "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}:sample_rate=48000"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-b:a", "64k"]
    args += [*extra, str(path)]
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg.run(args)
    return path

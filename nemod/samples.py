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
PHRASES: tuple[tuple[float, float], ...] = ((0.0, 11.26), (11.26, 21.08), (21.08, 25.67), (25.67, 29.12))
#: Where speech starts and ends inside each phrase, seconds from the phrase's start (measured
#: on the recording by level and by Silero VAD, ±0.05 s): the rest is the reader's breath.
SPEECH_IN_PHRASES: tuple[tuple[float, float], ...] = ((0.12, 11.18), (0.16, 9.70), (0.18, 4.44), (0.21, 3.40))
#: Pauses inserted after each phrase but the last, in seconds.
DEFAULT_PAUSES: tuple[float, ...] = (1.8, 1.2, 2.5)
#: What the reader says in PHRASES, for word-error checks (checked against Whisper tiny.en:
#: the reading skips the licence's "(the Software)").
TRANSCRIPT = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this "
    "software and associated documentation files, to deal in the Software without "
    "restriction, including without limitation the rights to use, copy, modify, merge, "
    "publish, distribute, sublicense, and/or sell copies of the Software, and to permit "
    "persons to whom the Software is furnished to do so, subject to the following "
    "conditions: The above copyright notice and this permission notice shall be included "
    "in all copies or substantial portions of the Software."
)


@dataclass(frozen=True)
class Talk:
    """A generated talking clip: its path, the inserted pauses as (start, end) seconds in
    the clip, its total duration, where speech is (start, end seconds in the clip), and
    the times of sync marks (a beep heard and a white frame seen together; empty unless
    asked for)."""

    path: Path
    pauses: tuple[tuple[float, float], ...]
    duration: float
    speech: tuple[tuple[float, float], ...] = ()
    marks: tuple[float, ...] = ()


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
    sync_marks: bool = False,
) -> Talk:
    """Write a talking clip to ``path``: the phrases ``repeat`` times with ``pauses`` between
    them (cycled), over a moving test picture. Returns where the pauses and speech are.

    With ``sync_marks`` the picture is black with one white frame 2 s into each phrase,
    exactly when a short 3 kHz beep sounds over the speech (for A/V sync checks).
    """
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
    speech: list[tuple[float, float]] = []
    marks: list[float] = []
    for index, (kind, start, end) in enumerate(segments):
        label = f"s{index}"
        if kind == "speech":
            inner = SPEECH_IN_PHRASES[PHRASES.index((start, end))]
            speech.append((round(clock + inner[0], 3), round(clock + inner[1], 3)))
            marks.append(round(clock * fps + 2.0 * fps) / fps)
            filters.append(
                f"[0:a]atrim={start}:{end},asetpts=PTS-STARTPTS,aresample=48000,"
                f"aformat=channel_layouts=mono[{label}]"
            )
        else:
            filters.append(f"aevalsrc=0:d={end}:s=48000:c=mono[{label}]")
            found.append((round(clock, 3), round(clock + end, 3)))
        clock += end - start
        labels.append(f"[{label}]")
    if sync_marks:
        filters.append(f"{''.join(labels)}concat=n={len(labels)}:v=0:a=1[speech]")
        gate = "+".join(f"between(t,{mark:.6f},{mark + 1 / fps - 1e-6:.6f})" for mark in marks)
        filters.append(f"aevalsrc='0.7*sin(2*PI*3000*t)*({gate})':d={clock:.3f}:s=48000:c=mono[beep]")
        filters.append("[speech][beep]amix=inputs=2:duration=first:normalize=0[a]")
        frames = "+".join(f"eq(n,{round(mark * fps)})" for mark in marks)
        picture = (f"color=c=black:size={width}x{height}:rate={fps}:duration={clock:.3f},"
                   f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='{frames}'")
    else:
        filters.append(f"{''.join(labels)}concat=n={len(labels)}:v=0:a=1[a]")
        picture = f"testsrc2=size={width}x{height}:rate={fps}:duration={clock:.3f}"
    args = [
        "-y", "-i", str(speech_file()),
        "-f", "lavfi", "-i", picture,
        "-filter_complex", ";".join(filters),
        "-map", "1:v", "-map", "[a]",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "96k", "-shortest", "-movflags", "+faststart", str(path),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg.run(args)
    return Talk(path, tuple(found), round(clock, 3), tuple(speech), tuple(marks) if sync_marks else ())


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

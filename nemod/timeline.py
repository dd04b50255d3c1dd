"""nemod's timeline: what an edit keeps of its sources and lays over them, typed. Pure.

The local engine builds one from a plan and the source's facts
(:func:`nemod.engine.timeline.build_timeline`), then renders, smart-cuts, draws and exports
it. Outside nemod a timeline travels as a NemoVideo draft (the job's ``.log.json``, the
cloud API, ``nemod serve``): :mod:`nemod.draft` converts at those edges and nowhere else.

Times on a timeline are integer milliseconds, as in the draft format: ranges of a source
(:class:`Clip`) or of the output (:class:`Span`). This module also gives the one-line human
summary and the lines saying why each pause was cut (``nemod explain``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nemod.edits import Title


@dataclass(frozen=True)
class Clip:
    """The range ``start``–``end`` (ms) of the source named ``source``; a video track's clips
    are laid end to end on the output."""

    source: str
    start: int
    end: int

    @property
    def length(self) -> int:
        """How long the clip is (ms; 0 when empty)."""
        return max(0, self.end - self.start)


@dataclass(frozen=True)
class TrimReport:
    """How a pause trim was made: its settings, the signals speech was found by, and one
    entry per cut (``start``, ``end``, ``seconds`` in source seconds, and what the signals
    said of it: ``silero_max``, ``level_over_floor_db``)."""

    min_pause: float
    padding: float
    sensitivity: str
    signals: tuple[str, ...]
    cuts: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class VideoTrack:
    """The picture and its sound: ``clips`` in output order, the source's ``name``, how many
    pauses were cut, the speed factor and whether the sound is muted."""

    clips: tuple[Clip, ...]
    name: str = "video"
    pauses_cut: int = 0
    speed: float = 1.0
    mute: bool = False
    trim: TrimReport | None = None

    @property
    def sources(self) -> list[str]:
        """The source names in order of first use."""
        return list(dict.fromkeys(clip.source for clip in self.clips))

    def kept(self) -> list[tuple[float, float]]:
        """The non-empty clips as source stretches in seconds, in output order."""
        return [(clip.start / 1000, clip.end / 1000) for clip in self.clips if clip.length]


@dataclass(frozen=True)
class MusicTrack:
    """Background music: the file ``name`` (``path`` as the rule gave it) from output time
    ``start`` to ``end`` (ms), at ``volume`` (0–1), ducked under the voice unless ``duck`` is
    false."""

    name: str
    path: str
    start: int
    end: int
    volume: float = 0.35
    duck: bool = True


@dataclass(frozen=True)
class Span:
    """``text`` shown from ``start`` to ``end`` on the output (ms); lines split on ``\\n``."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class TitleTrack:
    """A title: its text span, where it sits (``position``) and its font height as a
    fraction of the frame's (``size``); the defaults are the ``title`` operation's."""

    span: Span
    position: str = Title.position
    size: float = Title.size


@dataclass(frozen=True)
class CaptionTrack:
    """Captions: the cues, whether they are burned into the picture, their language tag."""

    cues: tuple[Span, ...]
    burn: bool = True
    language: str = "en"


@dataclass(frozen=True)
class Canvas:
    """The output frame: ``width``×``height`` and how a different aspect fits (``crop``, ``pad``)."""

    width: int
    height: int
    fit: str = "crop"


@dataclass(frozen=True)
class Timeline:
    """One edit of one or more sources.

    ``duration`` is the output length (ms), ``fps`` the output frame rate (None: the source's,
    for a draft that does not say), ``canvas`` the output frame (None: the first source's).
    ``copy`` marks a remux of the source whole. ``fade_in``/``fade_out`` are seconds,
    ``normalize`` the loudness target (LUFS; None: untouched). ``language`` describes the
    caption language found, ``notes`` what the analysis noticed, ``analysis_seconds`` how
    long each analysis step took. ``extra`` holds the draft settings nemod does not model
    and ``other_tracks`` its tracks nemod does not model (drafts from the NemoVideo service),
    so that they are not lost when the timeline is written as a draft again. That draft is
    nemod's own layout, not a copy of the one read: keys nemod does not model inside the
    tracks and segments it reads are not kept (a cloud job logs the service's draft itself).
    """

    video: VideoTrack | None
    duration: int
    fps: float | None = None
    canvas: Canvas | None = None
    copy: bool = False
    music: MusicTrack | None = None
    titles: tuple[TitleTrack, ...] = ()
    captions: CaptionTrack | None = None
    fade_in: float = 0.0
    fade_out: float = 0.0
    normalize: float | None = None
    language: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = ()
    analysis_seconds: Mapping[str, float] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    other_tracks: tuple[Mapping[str, Any], ...] = ()

    @property
    def clips(self) -> tuple[Clip, ...]:
        """The video track's non-empty clips (none without a video track)."""
        return tuple(clip for clip in self.video.clips if clip.length) if self.video else ()

    def kept(self) -> list[tuple[float, float]]:
        """The kept source stretches (seconds) of the video track, in output order."""
        return self.video.kept() if self.video else []

    @property
    def speed(self) -> float:
        """The video track's speed factor (1 without one)."""
        return self.video.speed if self.video else 1.0


def trim_lines(timeline: Timeline) -> list[str]:
    """Why each pause was cut, for ``nemod explain``: the trim's settings and signals, the
    notes of the analysis, then one line per cut (source time, length, what the signals said)."""
    lines = [f"note: {note}" for note in timeline.notes]
    trim = timeline.video.trim if timeline.video else None
    if trim is None:
        return lines
    cuts = trim.cuts
    lines.append(
        f"pause trim: {len(cuts)} cut{'s' if len(cuts) != 1 else ''} (pauses of {trim.min_pause:g} s or more, "
        f"{trim.padding:g} s kept beside speech, sensitivity {trim.sensitivity}; "
        f"speech found by {', '.join(trim.signals)})")
    for cut in cuts:
        heard = ""
        if "silero_max" in cut:
            heard = (f": Silero at most {cut['silero_max']:.2f}, level "
                     f"{cut['level_over_floor_db']:g} dB over the recording's noise floor")
        lines.append(f"  cut {clock(cut['start'])}–{clock(cut['end'])} ({cut['seconds']:.1f} s){heard}")
    return lines


def clock(seconds: float, digits: int = 1) -> str:
    """``seconds`` as ``m:ss.s`` (``digits`` decimals; 0 gives ``m:ss``), for logs and explain."""
    minutes, rest = divmod(round(seconds, digits), 60)
    return f"{int(minutes)}:{rest:0{3 + digits if digits else 2}.{digits}f}"


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.0f}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _video_part(timeline: Timeline, video: VideoTrack) -> str:
    extras = ["copied as is"] if timeline.copy else []
    if video.pauses_cut:
        extras.append(f"{_plural(video.pauses_cut, 'pause')} cut")
    if video.speed != 1.0:
        extras.append(f"{video.speed:g}x")
    if video.mute:
        extras.append("muted")
    extra = "".join(f", {item}" for item in extras)
    return f"Video: {video.name} (0-{_seconds(timeline.duration)}s{extra})"


def summarize(timeline: Timeline) -> str:
    """The human track summary, e.g.
    ``Timeline (2 tracks): 1. Video: talk.mp4 (0-94s, 6 pauses cut) 2. Captions (burned)``."""
    parts = []
    if timeline.video is not None:
        parts.append(_video_part(timeline, timeline.video))
    if timeline.music is not None:
        level = f", {round(timeline.music.volume * 100)}%"
        parts.append(f"BGM: {timeline.music.name} (0-{_seconds(timeline.music.end)}s{level})")
    for title in timeline.titles:
        parts.append(f'Title: "{title.span.text}" ({_seconds(title.span.start)}-{_seconds(title.span.end)}s)')
    if timeline.captions is not None:
        parts.append(f"Captions ({'burned' if timeline.captions.burn else 'sidecar only'})")
    for track in timeline.other_tracks:
        name = (track.get("m") or {}).get("name", "") if isinstance(track.get("m"), dict) else ""
        parts.append(f"Track type {track.get('tt')}: {name}".rstrip(": "))
    numbered = " ".join(f"{index}. {part}" for index, part in enumerate(parts, start=1))
    return f"Timeline ({_plural(len(parts), 'track')}): " + numbered

"""Building a timeline from a plan and the source's facts. Pure.

:func:`build_timeline` lays out what a plan keeps of the source (``keep``/``cut``, the
pauses a trim leaves out, on frame boundaries and, for a smart cut, on the source's IDR
frames where a pause has room) and what it lays over it (music, a title, captions retimed
to the cuts), as a :class:`nemod.timeline.Timeline`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from nemod import languages
from nemod.edits import (
    Captions,
    Cut,
    Export,
    Fade,
    Keep,
    Music,
    Mute,
    Normalize,
    Plan,
    Speed,
    Title,
    TrimPauses,
)
from nemod.engine import captions as caption_rules
from nemod.engine.captions import Word
from nemod.engine.pauses import Evidence, explain_cuts, onset_fitted, protect
from nemod.engine.smartcut import snap_to_idr
from nemod.engine.vad import kept_ranges
from nemod.media.probe import MediaInfo
from nemod.timeline import (
    Canvas,
    CaptionTrack,
    Clip,
    MusicTrack,
    Span,
    Timeline,
    TitleTrack,
    TrimReport,
    VideoTrack,
)

#: A pause trim keeps a silent source whole up to this many seconds (B-roll, a silent shot);
#: a longer one with no speech at all is refused: trimming its pauses leaves nothing.
LONGEST_SILENT_CLIP = 600.0
#: The cloud renders H.264 up to 1080×1920; the local engine allows 4K when asked.


@dataclass(frozen=True)
class Analysis:
    """What the engine learned from the source's sound: speech ranges (source seconds) when
    pauses are trimmed, timed words (source seconds) when captions are wanted, the per-frame
    ``evidence`` the speech was found from (explains each cut), and notes for the log."""

    speech: tuple[tuple[float, float], ...] | None = None
    words: tuple[Word, ...] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    evidence: Evidence | None = None
    #: The caption language: ``asked`` (the rule's, None: English unchecked), ``detected`` and
    #: its ``probability`` (when asked), the ``language`` written and the ``model`` used.
    language: dict[str, Any] | None = None


def output_size(export: Export, width: int, height: int) -> tuple[int, int]:
    """The output frame size for ``export`` applied to a ``width``×``height`` source.

    ``height`` in an export (720p, 1080p, 4K) names the short side; the aspect is the
    export's or the source's. Both sides are even (H.264 4:2:0 needs it).
    """
    aspect = _aspect(export.aspect) if export.aspect else width / height
    short: float = export.height or min(width, height)
    if aspect >= 1:
        out_w, out_h = short * aspect, short
    else:
        out_w, out_h = short, short / aspect
    return _even(out_w), _even(out_h)


def _aspect(text: str) -> float:
    left, right = text.split(":")
    return int(left) / int(right)


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


STANDARD_RATES = (23.976, 24.0, 25.0, 29.97, 30.0, 48.0, 50.0, 59.94, 60.0)


def frame_rate(average: float) -> float:
    """The constant output frame rate for a source averaging ``average`` frames per second:
    the standard rate it is (within 0.5 %); from 20 fps up, the next standard rate above it
    (a variable-rate phone clip averaging 29.6 becomes 30), at most 60; below 20 fps
    (time-lapses, slides, screen recordings) the source's own rate, so nothing is padded
    with repeated frames; 30 when unknown."""
    if not average or average <= 0:
        return 30.0
    nearest = min(STANDARD_RATES, key=lambda rate: abs(average - rate))
    if abs(average - nearest) / nearest < 0.005:
        return nearest
    if average < 20:
        return round(average, 3)
    return next((rate for rate in (24.0, 25.0, 30.0, 50.0, 60.0) if rate >= average), 60.0)


def source_window(plan: Plan, duration: float) -> tuple[float, float]:
    """The part of a ``duration``-second source left by ``keep`` and ``cut`` (seconds)."""
    start, end = 0.0, duration
    keep: Keep | None = plan.find(Keep)
    if keep is not None:
        start = min(keep.start, duration)
        end = min(keep.end, duration) if keep.end is not None else duration
    cut: Cut | None = plan.find(Cut)
    if cut is not None:
        start, end = start + cut.first, end - cut.last
    return start, end


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def build_timeline(
    plan: Plan, media: MediaInfo, analysis: Analysis | None = None, *, cut_points: Sequence[float] = ()
) -> Timeline:
    """Build the timeline carrying out ``plan`` on ``media``.

    ``analysis`` holds speech and words (source time) when the plan trims pauses or adds
    captions; without it (e.g. ``nemod explain`` on a plan with neither) nothing is cut.
    ``cut_points`` are source times where a cut costs no re-encoding (the IDR frames of a
    source that will be smart-cut): pause cuts move onto them where the pause has room
    (:func:`nemod.engine.smartcut.snap_to_idr`).
    Raises ValueError when ``keep``/``cut`` leave nothing of the source.
    """
    analysis = analysis or Analysis()
    name = media.path.name
    fps = round(frame_rate(media.fps), 3)
    canvas = Canvas(*output_size(plan.export, media.width, media.height), fit=plan.export.fit)
    if plan.is_copy:
        whole = _ms(media.duration)
        return Timeline(VideoTrack((Clip(name, 0, whole),), name=name), whole, fps=fps, canvas=canvas, copy=True)

    window = source_window(plan, media.duration)
    if window[1] - window[0] < 0.1:
        raise ValueError(f"the cut/keep settings leave nothing of {name} ({media.duration:.1f} s long)")
    kept, cuts = _kept(plan, analysis, window, cut_points, fps, name)
    speed: Speed | None = plan.find(Speed)
    factor = speed.factor if speed else 1.0
    clips = tuple(Clip(name, _ms(a), _ms(b)) for a, b in kept if _ms(b) > _ms(a))
    duration = round(sum(clip.length for clip in clips) / factor)
    trim: TrimPauses | None = plan.find(TrimPauses)
    report = None
    if trim is not None and analysis.speech is not None:
        report = TrimReport(
            min_pause=trim.min_pause, padding=trim.padding, sensitivity=trim.sensitivity,
            signals=("silero", "level", *(("whisper words",) if analysis.words else ())),
            cuts=tuple(explain_cuts([(c.start / 1000, c.end / 1000) for c in clips], window, analysis.evidence)),
        )
    video = VideoTrack(clips, name=name, pauses_cut=cuts, speed=factor, mute=plan.find(Mute) is not None, trim=report)
    fade: Fade | None = plan.find(Fade)
    normalize: Normalize | None = plan.find(Normalize)
    wanted: Captions | None = plan.find(Captions)
    return Timeline(
        video, duration, fps=fps, canvas=canvas, music=_music(plan, duration), titles=_titles(plan, duration),
        captions=_captions(wanted, analysis, clips, factor, canvas, duration) if wanted is not None else None,
        fade_in=fade.fade_in if fade else 0.0, fade_out=fade.fade_out if fade else 0.0,
        normalize=normalize.lufs if normalize else None,
        language=dict(analysis.language) if wanted is not None and analysis.language is not None else None,
        notes=tuple(analysis.notes),
    )


def _kept(
    plan: Plan, analysis: Analysis, window: tuple[float, float], cut_points: Sequence[float], fps: float, name: str,
) -> tuple[list[tuple[float, float]], int]:
    """The source ranges ``plan`` keeps of ``window`` (seconds, on frame boundaries) and how
    many pauses were cut. Raises ValueError for an hour of sound with no speech to keep."""
    kept: list[tuple[float, float]] = [window]
    cuts = 0
    trim: TrimPauses | None = plan.find(TrimPauses)
    trimmed = trim is not None and analysis.speech is not None
    if trim is not None and analysis.speech is not None:
        _refuse_long_silence(name, analysis.speech, window)
        # A cut never lands inside a word Whisper heard, when the job transcribes anyway.
        speech = protect(analysis.speech, [(w.start, w.end) for w in analysis.words or ()])
        kept, cuts = kept_ranges(speech, window, min_pause=trim.min_pause, padding=trim.padding)
        if cut_points:
            kept = snap_to_idr(kept, speech, cut_points, longest_pause=trim.min_pause, frame=1 / fps)
    # Cut on frame boundaries, outwards (a frame is never taken from speech): the renderer
    # cuts picture and sound at the same frame times, and captions retimed here then match
    # the rendered joins exactly (no drift over many cuts).
    kept = _on_frames(kept, fps, window)
    if trimmed:
        cuts = len(kept) - 1 + (kept[0][0] > window[0]) + (kept[-1][1] < window[1])
    return kept, cuts


def _music(plan: Plan, duration: int) -> MusicTrack | None:
    music: Music | None = plan.find(Music)
    if music is None:
        return None
    return MusicTrack(name=PurePath(music.path).name, path=music.path, start=0, end=duration,
                      volume=music.volume, duck=music.duck)


def _titles(plan: Plan, duration: int) -> tuple[TitleTrack, ...]:
    title: Title | None = plan.find(Title)
    if title is None or title.start * 1000 >= duration:
        return ()
    span = Span(title.text, _ms(title.start), min(duration, _ms(title.start + title.duration)))
    return (TitleTrack(span, position=title.position, size=title.size),)


def _captions(
    wanted: Captions, analysis: Analysis, clips: Sequence[Clip], factor: float, canvas: Canvas, duration: int,
) -> CaptionTrack:
    written = (analysis.language or {}).get("language") or wanted.language
    cues = _cues(onset_fitted(analysis.words or (), analysis.evidence), [(c.start / 1000, c.end / 1000) for c in clips],
                 factor, canvas.width, canvas.height, duration / 1000, written)
    return CaptionTrack(tuple(Span(cue.text, _ms(cue.start), _ms(cue.end)) for cue in cues),
                        burn=wanted.burn, language=written or languages.ENGLISH)


def _on_frames(kept: Sequence[tuple[float, float]], fps: float, window: tuple[float, float]) -> list[tuple[float, float]]:
    """``kept`` moved onto frame boundaries of ``fps``: starts down, ends up (within
    ``window``; the window's own edges to the nearest frame), so rounding never takes sound
    from speech; ranges that now touch, or leave less than a frame between them, are joined."""
    out: list[tuple[float, float]] = []
    for a, b in kept:
        start = max(window[0], math.floor(a * fps + 1e-6) / fps) if a > window[0] else round(a * fps) / fps
        end = min(window[1], math.ceil(b * fps - 1e-6) / fps if b < window[1] else round(b * fps) / fps)
        if out and start - out[-1][1] < 1 / fps - 1e-6:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _refuse_long_silence(name: str, speech: Sequence[tuple[float, float]], window: tuple[float, float]) -> None:
    """Raise ValueError when ``window`` is longer than :data:`LONGEST_SILENT_CLIP` and holds
    no speech: a pause trim would cut all of it, and rendering hours of silence helps no one."""
    lo, hi = window
    if hi - lo > LONGEST_SILENT_CLIP and not any(end > lo and start < hi for start, end in speech):
        raise ValueError(
            f"{name} has no speech in its {spoken_duration(hi - lo)} of sound: "
            "nothing left after trimming the pauses."
        )


def spoken_duration(seconds: float) -> str:
    """``seconds`` as people say it: ``6 h 0 min``, ``12 min 5 s``, ``40 s``."""
    whole = round(seconds)
    if whole >= 3600:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    if whole >= 60:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole} s"


def _cues(
    words: Sequence[Word], kept: Sequence[tuple[float, float]], speed: float, width: int, height: int,
    end: float, language: str | None = None,
) -> list[caption_rules.Cue]:
    """Cues for ``words`` in ``language`` (None: judged from the text) on a ``width``×``height``
    frame, after the cuts and speed change."""
    if language is None and any(languages.has_cjk(word.text) for word in words):
        language = "zh"
    norms = languages.norms(language)
    _, max_chars = caption_rules.caption_layout(width, height, norms)
    timed = caption_rules.retime(words, kept, speed)
    return caption_rules.segment(timed, max_chars=max_chars, end=end, norms=norms)


def timeline_cues(timeline: Timeline) -> list[caption_rules.Cue]:
    """The caption cues of ``timeline`` (empty when it has no captions)."""
    if timeline.captions is None:
        return []
    return [caption_rules.Cue(cue.start / 1000, cue.end / 1000, tuple(cue.text.split("\n")))
            for cue in timeline.captions.cues]

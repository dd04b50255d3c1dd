"""Timelines in the NemoVideo draft format. Pure.

A draft is ``{"t": [track, ...], "d": ms, "m": {...}}``; each track has ``tt``
(0 video, 1 audio, 7 text), ``sg`` (segments), ``d`` (duration, ms) and ``m``
(metadata). The local engine writes:

- video (``tt`` 0): segments ``{"src", "s", "e"}`` — ranges of the source (ms) laid
  end to end on the output timeline; ``m`` has ``name``, ``pauses_cut``, ``speed``,
  ``mute``;
- BGM (``tt`` 1): one segment ``{"src", "s", "e", "v"}`` (output ms, volume 0–1);
  ``m`` has ``name``, ``path``, ``volume``, ``duck``;
- text (``tt`` 7): ``m.kind`` ``"title"`` or ``"captions"`` (``m.burn``); segments
  ``{"text", "s", "e"}`` in output ms;
- draft ``m``: ``canvas`` ``{w, h, fit}``, ``fps``, ``copy`` (remux only),
  ``audio`` ``{normalize, fade_in, fade_out}``, ``fade`` ``{in, out}`` (seconds).

:func:`nemod.draft.summarize` gives the one-line human summary shown by ``nemod explain``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from nemod import languages
from nemod.draft import AUDIO, TEXT, VIDEO, Draft
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


def build_draft(
    plan: Plan, media: MediaInfo, analysis: Analysis | None = None, *, cut_points: Sequence[float] = ()
) -> Draft:
    """Build the draft carrying out ``plan`` on ``media``.

    ``analysis`` holds speech and words (source time) when the plan trims pauses or adds
    captions; without it (e.g. ``nemod explain`` on a plan with neither) nothing is cut.
    ``cut_points`` are source times where a cut costs no re-encoding (the IDR frames of a
    source that will be smart-cut): pause cuts move onto them where the pause has room
    (:func:`nemod.engine.smartcut.snap_to_idr`).
    Raises ValueError when ``keep``/``cut`` leave nothing of the source.
    """
    analysis = analysis or Analysis()
    name = media.path.name
    fps = frame_rate(media.fps)
    canvas_w, canvas_h = output_size(plan.export, media.width, media.height)
    meta: dict[str, Any] = {
        "canvas": {"w": canvas_w, "h": canvas_h, "fit": plan.export.fit},
        "fps": round(fps, 3),
    }
    if plan.is_copy:
        duration = _ms(media.duration)
        video = {"tt": VIDEO, "sg": [{"src": name, "s": 0, "e": duration}], "d": duration,
                 "m": {"name": name, "pauses_cut": 0, "speed": 1.0, "mute": False}}
        return {"t": [video], "d": duration, "m": {**meta, "copy": True}}

    window = source_window(plan, media.duration)
    if window[1] - window[0] < 0.1:
        raise ValueError(f"the cut/keep settings leave nothing of {name} ({media.duration:.1f} s long)")
    kept: list[tuple[float, float]] = [window]
    cuts = 0
    trim: TrimPauses | None = plan.find(TrimPauses)
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
    if trim is not None and analysis.speech is not None:
        cuts = len(kept) - 1 + (kept[0][0] > window[0]) + (kept[-1][1] < window[1])
    speed: Speed | None = plan.find(Speed)
    factor = speed.factor if speed else 1.0
    segments: list[dict[str, Any]] = [{"src": name, "s": _ms(a), "e": _ms(b)} for a, b in kept if _ms(b) > _ms(a)]
    total = sum(segment["e"] - segment["s"] for segment in segments)
    duration = round(total / factor)
    tracks: list[dict[str, Any]] = [{
        "tt": VIDEO, "sg": segments, "d": duration,
        "m": {"name": name, "pauses_cut": cuts, "speed": factor, "mute": plan.find(Mute) is not None},
    }]
    if trim is not None and analysis.speech is not None:
        tracks[0]["m"]["trim"] = {
            "min_pause": trim.min_pause, "padding": trim.padding, "sensitivity": trim.sensitivity,
            "signals": ["silero", "level"] + (["whisper words"] if analysis.words else []),
            "cuts": explain_cuts([(s["s"] / 1000, s["e"] / 1000) for s in segments], window, analysis.evidence),
        }
    music: Music | None = plan.find(Music)
    if music is not None:
        tracks.append({
            "tt": AUDIO, "sg": [{"src": PurePath(music.path).name, "s": 0, "e": duration, "v": music.volume}],
            "d": duration,
            "m": {"name": PurePath(music.path).name, "path": music.path, "volume": music.volume, "duck": music.duck},
        })
    title: Title | None = plan.find(Title)
    if title is not None and title.start * 1000 < duration:
        end = min(duration, _ms(title.start + title.duration))
        tracks.append({
            "tt": TEXT, "sg": [{"text": title.text, "s": _ms(title.start), "e": end}], "d": duration,
            "m": {"kind": "title", "name": title.text, "position": title.position, "size": title.size},
        })
    wanted: Captions | None = plan.find(Captions)
    if wanted is not None:
        written = (analysis.language or {}).get("language") or wanted.language
        cues = _cues(onset_fitted(analysis.words or (), analysis.evidence), [(s["s"] / 1000, s["e"] / 1000) for s in segments],
                     factor, canvas_w, canvas_h, duration / 1000, written)
        tracks.append({
            "tt": TEXT, "sg": [{"text": cue.text, "s": _ms(cue.start), "e": _ms(cue.end)} for cue in cues],
            "d": duration, "m": {"kind": "captions", "name": "Captions", "burn": wanted.burn,
                                 "language": written or languages.ENGLISH},
        })
        if analysis.language is not None:
            meta["language"] = dict(analysis.language)
    fade: Fade | None = plan.find(Fade)
    normalize: Normalize | None = plan.find(Normalize)
    meta["fade"] = {"in": fade.fade_in if fade else 0.0, "out": fade.fade_out if fade else 0.0}
    meta["audio"] = {"normalize": normalize.lufs if normalize else None}
    if analysis.notes:
        meta["notes"] = list(analysis.notes)
    return {"t": tracks, "d": duration, "m": meta}


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


def draft_cues(draft: Draft) -> list[caption_rules.Cue]:
    """The caption cues of ``draft`` (empty when it has no captions track)."""
    for track in draft.get("t", []):
        if track.get("tt") == TEXT and track.get("m", {}).get("kind") == "captions":
            return [
                caption_rules.Cue(seg["s"] / 1000, seg["e"] / 1000, tuple(str(seg.get("text", "")).split("\n")))
                for seg in track.get("sg", [])
            ]
    return []


def has_captions(draft: Draft) -> bool:
    """True when ``draft`` has a captions track (sidecars are written even if it is empty)."""
    return any(
        track.get("tt") == TEXT and track.get("m", {}).get("kind") == "captions" for track in draft.get("t", [])
    )

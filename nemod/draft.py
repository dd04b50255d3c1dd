"""The NemoVideo draft format, and the one place a :class:`~nemod.timeline.Timeline` becomes
a draft or a draft a timeline. Pure.

A draft is ``{"t": [track, ...], "d": ms, "m": {...}}``; each track has ``tt`` (0 video,
1 audio, 7 text), ``sg`` (segments), ``d`` (duration, ms) and ``m`` (metadata):

- video (``tt`` 0): segments ``{"src", "s", "e"}``, ranges of a source (ms) laid end to end
  on the output; ``m`` has ``name``, ``pauses_cut``, ``speed``, ``mute`` and ``trim``;
- BGM (``tt`` 1): one segment ``{"src", "s", "e", "v"}`` (output ms, volume 0–1); ``m`` has
  ``name``, ``path``, ``volume``, ``duck``;
- text (``tt`` 7): ``m.kind`` ``"title"`` (``position``, ``size``) or ``"captions"``
  (``burn``, ``language``); segments ``{"text", "s", "e"}`` in output ms;
- draft ``m``: ``canvas`` ``{w, h, fit}``, ``fps``, ``copy`` (remux only), ``audio``
  ``{normalize}``, ``fade`` ``{in, out}`` (seconds), ``language``, ``notes``,
  ``analysis_seconds``.

Drafts cross nemod's edges: the job's ``.log.json``, the NemoVideo API (the cloud backend
reads the service's drafts) and ``nemod serve`` (which hands drafts to clients and renders
the ones they send back). Everything inside nemod works on the typed timeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from nemod.edits import Title
from nemod.errors import NemodError
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

VIDEO, AUDIO, TEXT = 0, 1, 7
Draft = dict[str, Any]


class DraftError(NemodError, ValueError):
    """A draft that is not the NemoVideo format nemod reads (the message says where)."""


def to_draft(timeline: Timeline) -> Draft:
    """``timeline`` as a NemoVideo draft: video, music, titles, captions, then the tracks
    nemod does not model, in that order."""
    duration = timeline.duration
    tracks: list[dict[str, Any]] = []
    if timeline.video is not None:
        tracks.append(_video_track(timeline.video, duration))
    if timeline.music is not None:
        music = timeline.music
        tracks.append({
            "tt": AUDIO, "sg": [{"src": music.name, "s": music.start, "e": music.end, "v": music.volume}],
            "d": duration, "m": {"name": music.name, "path": music.path, "volume": music.volume, "duck": music.duck},
        })
    for title in timeline.titles:
        tracks.append({
            "tt": TEXT, "sg": [_span(title.span)], "d": duration,
            "m": {"kind": "title", "name": title.span.text, "position": title.position, "size": title.size},
        })
    if timeline.captions is not None:
        captions = timeline.captions
        tracks.append({
            "tt": TEXT, "sg": [_span(cue) for cue in captions.cues], "d": duration,
            "m": {"kind": "captions", "name": "Captions", "burn": captions.burn, "language": captions.language},
        })
    tracks += [dict(track) for track in timeline.other_tracks]
    return {"t": tracks, "d": duration, "m": _settings(timeline)}


def _video_track(video: VideoTrack, duration: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": video.name, "pauses_cut": video.pauses_cut, "speed": video.speed,
                            "mute": video.mute}
    if video.trim is not None:
        trim = video.trim
        meta["trim"] = {"min_pause": trim.min_pause, "padding": trim.padding, "sensitivity": trim.sensitivity,
                        "signals": list(trim.signals), "cuts": [dict(cut) for cut in trim.cuts]}
    return {"tt": VIDEO, "sg": [{"src": clip.source, "s": clip.start, "e": clip.end} for clip in video.clips],
            "d": duration, "m": meta}


def _span(span: Span) -> dict[str, Any]:
    return {"text": span.text, "s": span.start, "e": span.end}


def _settings(timeline: Timeline) -> dict[str, Any]:
    meta: dict[str, Any] = dict(timeline.extra)
    if timeline.canvas is not None:
        meta["canvas"] = {"w": timeline.canvas.width, "h": timeline.canvas.height, "fit": timeline.canvas.fit}
    if timeline.fps is not None:
        meta["fps"] = timeline.fps
    if timeline.copy:
        meta["copy"] = True
    meta["fade"] = {"in": timeline.fade_in, "out": timeline.fade_out}
    meta["audio"] = {"normalize": timeline.normalize}
    if timeline.language is not None:
        meta["language"] = dict(timeline.language)
    if timeline.notes:
        meta["notes"] = list(timeline.notes)
    if timeline.analysis_seconds:
        meta["analysis_seconds"] = dict(timeline.analysis_seconds)
    return meta


def from_draft(draft: object, *, strict: bool = True) -> Timeline:
    """The timeline a NemoVideo draft describes. The first video track with segments is the
    picture, the first audio track with a segment the music, the first text track with
    ``m.kind`` ``captions`` the captions, and each segment of any other text track a title;
    any other track is kept as it is in ``other_tracks``, settings nemod does not model in
    ``extra``. Times are read to the millisecond.

    Raises :class:`DraftError`, and nothing else, whatever JSON value ``draft`` is: when it
    is not a draft or (``strict``) a track or setting nemod reads is malformed, e.g. a video
    segment without its source or times, a number that is not a finite number, a speed or
    frame size that is not positive. Not ``strict`` (a draft the NemoVideo service made,
    which nemod summarises and logs but does not render itself), a malformed track is kept
    as it is in ``other_tracks`` (a track that is not an object is left out), and a setting
    that cannot be read goes to ``extra``.
    """
    if not isinstance(draft, dict):
        raise DraftError("the draft is not a JSON object")
    tracks = draft.get("t", [])
    if not isinstance(tracks, list) or (strict and not all(isinstance(track, dict) for track in tracks)):
        raise DraftError("the draft's tracks (t) are not a list of objects")
    read: dict[str, Any] = {"video": None, "music": None, "captions": None}
    titles: list[TitleTrack] = []
    others: list[Mapping[str, Any]] = []
    for number, track in enumerate(tracks, start=1):
        if not isinstance(track, dict):
            continue  # only when not strict
        try:
            slot, value = _read_track(number, track, read)
        except DraftError:
            if strict:
                raise
            slot, value = "other", track
        if slot == "titles":
            titles += value
        elif slot == "other":
            others.append(value)
        else:
            read[slot] = value
    try:
        duration = _ms(draft.get("d", 0), "the draft's length (d)")
    except DraftError:
        if strict:
            raise
        duration = 0
    meta = draft.get("m", {})
    if not isinstance(meta, dict):
        if strict:
            raise DraftError("the draft's settings (m) is not a JSON object")
        meta = {}
    return Timeline(duration=duration, titles=tuple(titles), other_tracks=tuple(others), **read,
                    **_read_settings(meta, strict))


def _read_track(number: int, track: dict[str, Any], read: Mapping[str, Any]) -> tuple[str, Any]:
    """Which slot of the timeline track ``number`` fills (``video``, ``music``, ``captions``,
    ``titles`` or ``other``, given what is ``read`` so far) and its typed value. Raises
    :class:`DraftError` when a track nemod reads is malformed; a track it does not read is
    ``other`` whatever it holds."""
    kind = track.get("tt")
    if kind not in (VIDEO, AUDIO, TEXT):
        return "other", track
    meta, segments = _object(track.get("m", {}), f"track {number}'s m"), track.get("sg", [])
    if not isinstance(segments, list) or not all(isinstance(seg, dict) for seg in segments):
        raise DraftError(f"track {number}'s segments (sg) are not a list of objects")
    if kind == VIDEO and read["video"] is None and segments:
        return "video", _read_video(number, segments, meta)
    if kind == AUDIO and read["music"] is None and segments:
        return "music", _read_music(number, segments[0], meta)
    if kind == TEXT and meta.get("kind") == "captions":
        if read["captions"] is not None:
            return "other", track
        return "captions", CaptionTrack(tuple(_read_span(number, seg) for seg in segments),
                                        burn=bool(meta.get("burn", True)), language=str(meta.get("language") or "en"))
    if kind == TEXT and segments:
        position = str(meta.get("position", Title.position))
        size = _number(meta.get("size", Title.size), f"track {number}'s size")
        return "titles", [TitleTrack(_read_span(number, seg), position=position, size=size) for seg in segments]
    return "other", track


def _read_video(number: int, segments: list[dict[str, Any]], meta: dict[str, Any]) -> VideoTrack:
    clips = []
    for seg in segments:
        source = seg.get("src")
        if not isinstance(source, str) or not source:
            raise DraftError(f"a segment of track {number} names no source (src)")
        if "s" not in seg or "e" not in seg:
            raise DraftError(f"a segment of track {number} ({source}) has no start (s) or end (e)")
        clips.append(Clip(source, _ms(seg["s"], f"track {number}'s s"), _ms(seg["e"], f"track {number}'s e")))
    speed = _number(meta.get("speed") or 1.0, f"track {number}'s speed")
    if speed <= 0:
        raise DraftError(f"track {number}'s speed is not more than 0: {speed:g}")
    return VideoTrack(
        tuple(clips), name=str(meta.get("name") or "video"),
        pauses_cut=int(_number(meta.get("pauses_cut", 0) or 0, f"track {number}'s pauses_cut")),
        speed=speed, mute=bool(meta.get("mute")), trim=_read_trim(meta.get("trim")),
    )


def _read_trim(raw: object) -> TrimReport | None:
    if not isinstance(raw, dict):
        return None
    cuts = []
    for item in _list(raw.get("cuts", []), "the trim's cuts"):
        cut = _object(item, "a cut of the trim")
        for key in ("start", "end", "seconds"):
            _number(cut.get(key), f"a cut's {key}")
        cuts.append(dict(cut))
    return TrimReport(
        min_pause=_number(raw.get("min_pause", 0), "the trim's min_pause"),
        padding=_number(raw.get("padding", 0), "the trim's padding"),
        sensitivity=str(raw.get("sensitivity", "")),
        signals=tuple(str(signal) for signal in _list(raw.get("signals", []), "the trim's signals")),
        cuts=tuple(cuts),
    )


def _read_music(number: int, seg: dict[str, Any], meta: dict[str, Any]) -> MusicTrack:
    name = seg.get("src")
    if not isinstance(name, str) or not name:
        raise DraftError(f"the music of track {number} names no source (src)")
    volume = _number(seg.get("v", meta.get("volume", 0.35)), f"track {number}'s volume")
    return MusicTrack(name=name, path=str(meta.get("path") or name), start=_ms(seg.get("s", 0), f"track {number}'s s"),
                      end=_ms(seg.get("e", 0), f"track {number}'s e"), volume=volume, duck=bool(meta.get("duck", True)))


def _read_span(number: int, seg: dict[str, Any]) -> Span:
    return Span(str(seg.get("text", "")), _ms(seg.get("s", 0), f"track {number}'s s"),
                _ms(seg.get("e", 0), f"track {number}'s e"))


def _read_canvas(raw: object) -> dict[str, Any]:
    canvas = _object(raw or {}, "the draft's canvas")
    if not canvas:
        return {"canvas": None}
    sizes = [_number(canvas.get(key), f"the canvas {key}") for key in ("w", "h")]
    if any(size < 2 or size != int(size) for size in sizes):
        raise DraftError(f"the canvas is not a frame size: {sizes[0]:g}x{sizes[1]:g}")
    return {"canvas": Canvas(int(sizes[0]), int(sizes[1]), str(canvas.get("fit") or "crop"))}


def _read_fps(raw: object) -> dict[str, Any]:
    if not raw:
        return {"fps": None}
    fps = _number(raw, "the draft's fps")
    if fps <= 0:
        raise DraftError(f"the draft's fps is not more than 0: {fps:g}")
    return {"fps": fps}


def _read_fade(raw: object) -> dict[str, Any]:
    fade = _object(raw or {}, "the draft's fade")
    return {"fade_in": _number(fade.get("in") or 0, "the fade in"), "fade_out": _number(fade.get("out") or 0, "the fade out")}


def _read_audio(raw: object) -> dict[str, Any]:
    normalize = _object(raw or {}, "the draft's audio").get("normalize")
    return {"normalize": None if normalize is None else _number(normalize, "the loudness target")}


def _read_language(raw: object) -> dict[str, Any]:
    return {"language": None if raw is None else dict(_object(raw, "the draft's language"))}


def _read_notes(raw: object) -> dict[str, Any]:
    return {"notes": tuple(str(note) for note in _list(raw or [], "the draft's notes"))}


def _read_seconds(raw: object) -> dict[str, Any]:
    seconds = _object(raw or {}, "the draft's analysis_seconds")
    return {"analysis_seconds": {str(key): _number(value, "an analysis time") for key, value in seconds.items()}}


#: How each draft setting (``m``) nemod models becomes the timeline's fields; others go to ``extra``.
_SETTINGS: dict[str, Callable[[object], dict[str, Any]]] = {
    "canvas": _read_canvas, "fps": _read_fps, "copy": lambda raw: {"copy": bool(raw)}, "fade": _read_fade,
    "audio": _read_audio, "language": _read_language, "notes": _read_notes, "analysis_seconds": _read_seconds,
}


def _read_settings(meta: dict[str, Any], strict: bool) -> dict[str, Any]:
    """The timeline fields the draft settings ``meta`` give; a setting that cannot be read
    raises :class:`DraftError` (``strict``) or goes to ``extra``."""
    fields: dict[str, Any] = {}
    extra = {key: value for key, value in meta.items() if key not in _SETTINGS}
    for key, read in _SETTINGS.items():
        if key not in meta:
            continue
        try:
            fields.update(read(meta[key]))
        except DraftError:
            if strict:
                raise
            extra[key] = meta[key]
    return {**fields, "extra": extra}


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DraftError(f"{what} is not a JSON object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise DraftError(f"{what} are not a list")
    return value


def _number(value: object, what: str) -> float:
    """``value`` as a finite float; raises :class:`DraftError` for anything else (strings,
    booleans, NaN, infinities, integers too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DraftError(f"{what} is not a number: {value!r:.40}")
    try:
        number = float(value)
    except OverflowError:
        raise DraftError(f"{what} is too large a number") from None
    if not math.isfinite(number):
        raise DraftError(f"{what} is not a finite number: {number}")
    return number


def _ms(value: object, what: str) -> int:
    return round(_number(value, what))


def log_timeline(log: Mapping[str, Any] | None) -> Timeline | None:
    """The timeline in a job's ``.log.json`` (its ``draft``); None when the log has none or
    it cannot be read (an older or damaged log: the caller shows less, it does not fail)."""
    draft = log.get("draft") if log is not None else None
    if not isinstance(draft, dict):
        return None
    try:
        return from_draft(draft, strict=False)  # a cloud job logs the service's draft as it came
    except DraftError:
        return None

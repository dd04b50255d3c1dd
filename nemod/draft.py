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

from collections.abc import Mapping
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
#: The draft settings (``m``) this module reads into a timeline; others go to ``extra``.
_MODELLED = frozenset({"canvas", "fps", "copy", "fade", "audio", "language", "notes", "analysis_seconds"})


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
    picture, the first audio track the music, text tracks are titles or (``m.kind``
    ``captions``) the captions; any other track is kept as it is in ``other_tracks``.

    Raises :class:`DraftError` when ``draft`` is not a draft or (``strict``) a track or
    setting nemod reads is malformed: a segment without its source or times, a time that is
    not a number. Not ``strict`` (a draft the NemoVideo service made, which nemod only
    summarises and logs), such a track is kept as it is in ``other_tracks`` and unreadable
    settings in ``extra``.
    """
    if not isinstance(draft, dict):
        raise DraftError("the draft is not a JSON object")
    tracks = draft.get("t", [])
    if not isinstance(tracks, list) or not all(isinstance(track, dict) for track in tracks):
        raise DraftError("the draft's tracks (t) are not a list of objects")
    read: dict[str, Any] = {"video": None, "music": None, "captions": None}
    titles: list[TitleTrack] = []
    others: list[Mapping[str, Any]] = []
    for number, track in enumerate(tracks, start=1):
        try:
            slot, value = _read_track(number, track, read)
        except DraftError:
            if strict:
                raise
            slot, value = "other", track
        if slot == "title":
            titles.append(value)
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
    try:
        settings = _read_settings(_object(draft.get("m", {}), "the draft's settings (m)"))
    except DraftError:
        if strict:
            raise
        meta = draft.get("m")
        settings = {"extra": dict(meta) if isinstance(meta, dict) else {}}
    return Timeline(duration=duration, titles=tuple(titles), other_tracks=tuple(others), **read, **settings)


def _read_track(number: int, track: dict[str, Any], read: Mapping[str, Any]) -> tuple[str, Any]:
    """Which slot of the timeline track ``number`` fills (``video``, ``music``, ``captions``,
    ``title`` or ``other``, given what is ``read`` so far) and its typed value. Raises
    :class:`DraftError` when it is malformed."""
    kind, meta, segments = track.get("tt"), _object(track.get("m", {}), f"track {number}'s m"), track.get("sg", [])
    if not isinstance(segments, list) or not all(isinstance(seg, dict) for seg in segments):
        raise DraftError(f"track {number}'s segments (sg) are not a list of objects")
    if kind == VIDEO and read["video"] is None and segments:
        return "video", _read_video(number, segments, meta)
    if kind == AUDIO and read["music"] is None and segments:
        return "music", _read_music(number, segments[0], meta)
    if kind == TEXT and meta.get("kind") == "captions" and read["captions"] is None:
        return "captions", CaptionTrack(tuple(_read_span(number, seg) for seg in segments),
                                        burn=bool(meta.get("burn", True)), language=str(meta.get("language") or "en"))
    if kind == TEXT and segments and meta.get("kind", "title") == "title":
        return "title", TitleTrack(_read_span(number, segments[0]), position=str(meta.get("position", Title.position)),
                                   size=_number(meta.get("size", Title.size), f"track {number}'s size"))
    return "other", track


def _read_video(number: int, segments: list[dict[str, Any]], meta: dict[str, Any]) -> VideoTrack:
    clips = []
    for seg in segments:
        source = seg.get("src")
        if not isinstance(source, str) or not source:
            raise DraftError(f"a segment of track {number} names no source (src)")
        clips.append(Clip(source, _ms(seg.get("s", 0), f"track {number}'s s"), _ms(seg.get("e", 0), f"track {number}'s e")))
    trim_raw = meta.get("trim")
    trim = None
    if isinstance(trim_raw, dict):
        trim = TrimReport(
            min_pause=_number(trim_raw.get("min_pause", 0), "the trim's min_pause"),
            padding=_number(trim_raw.get("padding", 0), "the trim's padding"),
            sensitivity=str(trim_raw.get("sensitivity", "")),
            signals=tuple(str(signal) for signal in _list(trim_raw.get("signals", []), "the trim's signals")),
            cuts=tuple(dict(cut) for cut in _list(trim_raw.get("cuts", []), "the trim's cuts") if isinstance(cut, dict)),
        )
    return VideoTrack(
        tuple(clips), name=str(meta.get("name") or "video"),
        pauses_cut=int(_number(meta.get("pauses_cut", 0) or 0, f"track {number}'s pauses_cut")),
        speed=_number(meta.get("speed") or 1.0, f"track {number}'s speed"), mute=bool(meta.get("mute")), trim=trim,
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


def _read_settings(meta: dict[str, Any]) -> dict[str, Any]:
    canvas_raw = _object(meta.get("canvas") or {}, "the draft's canvas")
    canvas = None
    if canvas_raw.get("w") and canvas_raw.get("h"):
        canvas = Canvas(int(_number(canvas_raw["w"], "the canvas width")), int(_number(canvas_raw["h"], "the canvas height")),
                        str(canvas_raw.get("fit") or "crop"))
    fade = _object(meta.get("fade") or {}, "the draft's fade")
    audio = _object(meta.get("audio") or {}, "the draft's audio")
    normalize = audio.get("normalize")
    language = meta.get("language")
    seconds = _object(meta.get("analysis_seconds") or {}, "the draft's analysis_seconds")
    return {
        "fps": _number(meta["fps"], "the draft's fps") if meta.get("fps") else None,
        "canvas": canvas, "copy": bool(meta.get("copy")),
        "fade_in": _number(fade.get("in") or 0, "the fade in"), "fade_out": _number(fade.get("out") or 0, "the fade out"),
        "normalize": None if normalize is None else _number(normalize, "the loudness target"),
        "language": dict(language) if isinstance(language, dict) else None,
        "notes": tuple(str(note) for note in meta.get("notes") or ()),
        "analysis_seconds": {str(key): _number(value, "an analysis time") for key, value in seconds.items()},
        "extra": {key: value for key, value in meta.items() if key not in _MODELLED},
    }


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DraftError(f"{what} is not a JSON object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise DraftError(f"{what} are not a list")
    return value


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DraftError(f"{what} is not a number: {value!r}")
    return float(value)


def _ms(value: object, what: str) -> int:
    return round(_number(value, what))


def log_timeline(log: Mapping[str, Any] | None) -> Timeline | None:
    """The timeline in a job's ``.log.json`` (its ``draft``); None when the log has none or
    it cannot be read (an older or damaged log: the caller shows less, it does not fail)."""
    draft = log.get("draft") if log is not None else None
    if not isinstance(draft, dict):
        return None
    try:
        return from_draft(draft)
    except DraftError:
        return None

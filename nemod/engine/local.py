"""The local engine and backend: probe, plan a timeline, render with ffmpeg — on this machine.

:class:`LocalEngine` has two halves that also serve ``nemod serve``:
``plan_timeline`` (analyse the source — probe, voice activity, transcription — and build
the :class:`~nemod.timeline.Timeline`) and ``render`` (turn any timeline into an MP4 plus
caption sidecars, in one ffmpeg pass or a smart cut). :class:`LocalBackend` chains them behind the
:class:`nemod.backends.base.Backend` interface.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nemod import timeline_export
from nemod.backends.base import JobContext, JobRequest, Rendition
from nemod.backends.base import Progress as StepProgress
from nemod.config import EngineSettings, resolve_path
from nemod.config import media_url as media_url_of
from nemod.edits import Captions, Plan, TrimPauses
from nemod.edits import Timeline as TimelineExport
from nemod.engine import captions as caption_text
from nemod.engine.fonts import find_font
from nemod.engine.listen import Listener
from nemod.engine.loudness import loudness
from nemod.engine.pauses import DEFAULT_SENSITIVITY
from nemod.engine.render import (
    RenderInputs,
    copy_args,
    output_duration,
    render_args,
)
from nemod.engine.smartrender import SmartRenderer, check_stopped
from nemod.engine.timeline import Analysis, build_timeline, source_window, timeline_cues
from nemod.errors import MediaError, PermanentJobError, RetryableJobError
from nemod.languages import has_cjk
from nemod.media import ffmpeg
from nemod.media.probe import MediaInfo, probe
from nemod.picture import edit_picture
from nemod.timeline import Timeline, summarize

#: How many probe results a LocalEngine remembers (a few jobs' sources).
_PROBES_REMEMBERED = 16


def _quiet(step: str, fraction: float) -> None:
    """Ignore progress."""


@dataclass
class RenderResult:
    """A rendered MP4 and its sidecars (suffix without dot → path) plus log details."""

    video: Path
    captions: dict[str, Path] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def _probe(path: Path) -> MediaInfo:
    try:
        media = probe(path)
    except MediaError as exc:
        raise PermanentJobError(str(exc)) from exc
    if not media.has_video:
        raise PermanentJobError(f"{path.name} has no video stream to edit.")
    if media.is_still:
        raise PermanentJobError(
            f"{path.name} is a still image; this rule edits video (match it with a rule that uses images)."
        )
    return media


def _probe_stat(path: str, inode: int, size: int, mtime_ns: int) -> MediaInfo:
    """:func:`_probe` of ``path``; the file's identity and stat are there to key a cache."""
    return _probe(Path(path))


class LocalEngine:
    """The embedded editor. ``settings`` chooses the encoder preset, Whisper model, font, etc.
    The Whisper model is loaded once per engine, on the first job that needs captions."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        #: Voice activity, language detection and transcription (its Whisper models).
        self.listener = Listener(settings)
        # Planning and rendering one job both need the source's streams: remember the last
        # few probes (keyed by path, inode, size and mtime, so a changed file is probed
        # again). Each probe also costs PyAV ~250 bytes that are never freed.
        self._probe_unchanged = functools.lru_cache(maxsize=_PROBES_REMEMBERED)(_probe_stat)
        # Smart cutting indexes a source's packets when planning and again when rendering.
        self.smart = SmartRenderer(settings)

    def _probe(self, path: Path) -> MediaInfo:
        """:func:`_probe` ``path``, or its remembered result while the file is unchanged."""
        try:
            info = path.stat()
        except OSError:
            return _probe(path)  # raises the one-line error
        return self._probe_unchanged(str(path), info.st_ino, info.st_size, info.st_mtime_ns)

    # --- analysis -------------------------------------------------------------------------

    def plan_timeline(
        self,
        source: Path,
        plan: Plan,
        *,
        progress: StepProgress = _quiet,
        cancel: threading.Event | None = None,
    ) -> Timeline:
        """Analyse ``source`` and return the timeline that carries out ``plan``.

        Raises :class:`PermanentJobError` when the source is not usable media (or the plan
        leaves nothing of it), :class:`MediaError` when cancelled.
        """
        media = self._probe(source)
        timings: dict[str, float] = {}
        analysis = Analysis()
        trim: TrimPauses | None = plan.find(TrimPauses)
        wants_speech = trim is not None
        captions: Captions | None = plan.find(Captions)
        wants_words = captions is not None
        if (wants_speech or wants_words) and not media.has_audio:
            analysis = Analysis(notes=(f"{source.name} has no sound: nothing to trim or caption",))
        elif wants_speech or wants_words:
            analysis = self.listener.analyse(source, source_window(plan, media.duration), wants_speech, wants_words,
                                             trim.sensitivity if trim else DEFAULT_SENSITIVITY, timings, progress,
                                             cancel, language=captions.language if captions else None)
        progress("analyse", 1.0)
        try:
            timeline = build_timeline(plan, media, analysis)
            if trim is not None and analysis.speech is not None:
                cut_points = self.smart.cut_points(timeline, media)
                if cut_points:
                    timeline = build_timeline(plan, media, analysis, cut_points=cut_points)
        except ValueError as exc:
            raise PermanentJobError(str(exc)) from exc
        if timings:
            timeline = replace(timeline, analysis_seconds={key: round(value, 3) for key, value in timings.items()})
        return timeline

    # --- rendering ------------------------------------------------------------------------

    def _music(self, timeline: Timeline, sources: Mapping[str, Path]) -> dict[str, Path]:
        """The music file of ``timeline`` by name: from ``sources``, else its ``path`` (relative
        to the config). Raises :class:`PermanentJobError` when it is not found."""
        music = timeline.music
        if music is None:
            return {}
        if music.name in sources:
            return {music.name: Path(sources[music.name])}
        base = getattr(self.settings, "base_dir", None)
        path = resolve_path(Path(base) if base is not None else Path.cwd(), music.path)
        if not path.is_file():
            raise PermanentJobError(f"the background music file {music.path} was not found.")
        return {music.name: path}

    def _overlay(self, timeline: Timeline, work_dir: Path, stem: str) -> tuple[Path | None, Path | None]:
        """Write the ASS file of the text to burn (captions with ``burn``, titles)."""
        canvas = timeline.canvas
        width, height = (canvas.width, canvas.height) if canvas else (0, 0)
        burned = timeline.captions is not None and timeline.captions.burn
        cues = timeline_cues(timeline) if burned else []
        titles = [
            caption_text.TitleText(title.span.text, title.span.start / 1000, title.span.end / 1000,
                                   title.position, title.size)
            for title in timeline.titles if title.span.text.strip()
        ]
        if not cues and not titles:
            return None, None
        texts = [line for cue in cues for line in cue.lines] + [title.text for title in titles]
        font = find_font(self.settings.font, cjk=any(has_cjk(text) for text in texts))
        path = work_dir / f"{stem}.overlay.ass"
        path.write_text(caption_text.ass_text(width, height, font.family, cues, titles), encoding="utf-8")
        return path, font.folder

    def sidecars(self, timeline: Timeline, work_dir: Path, stem: str) -> dict[str, Path]:
        """Write ``<stem>.srt`` and ``<stem>.vtt`` into ``work_dir`` when ``timeline`` has
        captions (even none were heard); return them by suffix (without dot)."""
        captions: dict[str, Path] = {}
        if timeline.captions is not None:
            work_dir.mkdir(parents=True, exist_ok=True)
            cues = timeline_cues(timeline)
            captions["srt"] = work_dir / f"{stem}.srt"
            captions["vtt"] = work_dir / f"{stem}.vtt"
            captions["srt"].write_text(caption_text.srt_text(cues), encoding="utf-8")
            captions["vtt"].write_text(caption_text.vtt_text(cues), encoding="utf-8")
        return captions

    def export_timeline(
        self, timeline: Timeline, source: Path, formats: Sequence[str], work_dir: Path, stem: str,
        *, media_url: str | None = None,
    ) -> tuple[dict[str, Path], list[str]]:
        """Write ``timeline`` (of ``source``) as the editor timelines ``formats`` into ``work_dir``
        (``<stem>.fcpxml``, ``.xml``, ``.kdenlive``, ``.otio``, ``.edl``); the clips reference
        the source by ``media_url`` (None: its ``file://`` URL here), music by its path here.

        Returns the files by suffix and notes on what the formats could not hold. Raises
        :class:`PermanentJobError` (one sentence) when a format cannot reference the source.
        """
        media = self._probe(source)
        reference = timeline_export.MediaFile(
            media_url or media_url_of(source, None, None), source.name, media.duration,
            media.has_audio, media.width, media.height, media.fps)
        music: timeline_export.MediaFile | None = None
        for name, path in self._music(timeline, {}).items():
            try:
                facts = probe(path)
            except MediaError as exc:
                raise PermanentJobError(str(exc)) from exc
            music = timeline_export.MediaFile(media_url_of(path, None, None), name, facts.duration, True)
        try:
            exported = timeline_export.export(timeline, reference, stem, formats, music)
        except timeline_export.ExportError as exc:
            raise PermanentJobError(str(exc)) from exc
        work_dir.mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}
        for suffix, text in exported.texts.items():
            files[suffix] = work_dir / f"{stem}{suffix}"
            files[suffix].write_text(text, encoding="utf-8")
        return files, list(exported.notes)

    def render(
        self,
        timeline: Timeline,
        sources: Mapping[str, Path],
        work_dir: Path,
        stem: str,
        *,
        progress: StepProgress = _quiet,
        cancel: threading.Event | None = None,
    ) -> RenderResult:
        """Render ``timeline`` into ``work_dir``; ``sources`` maps its source names to files
        (music files may also be found from their track's ``path``, relative to the config).

        Writes ``<stem>.render.mp4`` and, when the timeline has captions, ``<stem>.srt`` and
        ``<stem>.vtt``. Raises :class:`PermanentJobError` for a timeline that cannot be rendered
        (no video, a missing source or font), :class:`RetryableJobError` when ffmpeg fails,
        :class:`MediaError` when cancelled.
        """
        work_dir.mkdir(parents=True, exist_ok=True)
        names = set(timeline.video.sources) if timeline.video else set()
        if not names:
            raise PermanentJobError("the timeline has no video to render.")
        missing = sorted(name for name in names if name not in sources)
        if missing:
            raise PermanentJobError(f"the timeline uses {missing[0]}, which was not provided.")
        media = {name: self._probe(Path(sources[name])) for name in names}
        output = work_dir / f"{stem}.render.mp4"
        captions = self.sidecars(timeline, work_dir, stem)
        started = time.monotonic()
        path_details: dict[str, Any] = {}
        result: ffmpeg.FfmpegResult | None = None
        if timeline.copy and len(media) == 1:
            result = self._copy(next(iter(media.values())), output, progress, cancel)
        elif len(media) == 1:
            result, path_details = self.smart.render(timeline, next(iter(media.values())),
                                                     self._music(timeline, sources), output, progress, cancel)
        if result is None:
            overlay, fonts_dir = self._overlay(timeline, work_dir, stem)
            inputs = RenderInputs(media, self._music(timeline, sources), overlay, fonts_dir)
            try:
                args = render_args(timeline, inputs, output, preset=self.settings.preset,
                                   crf=self.settings.crf, threads=self.settings.threads)
            except ValueError as exc:
                raise PermanentJobError(f"the timeline cannot be rendered: {exc}.") from exc
            result = self._run(args, output_duration(timeline, media), progress, cancel)
        details: dict[str, Any] = {
            "timings": {"render": round(time.monotonic() - started, 3),
                        **timeline.analysis_seconds},
            "ffmpeg_command": list(result.argv),
            "ffmpeg_version": ffmpeg.ffmpeg_version(),
        }
        if timeline.language:
            details["language"] = dict(timeline.language)
        if path_details:
            details["render_path"] = path_details
        return RenderResult(video=output, captions=captions, details=details)

    def write_picture(self, timeline: Timeline, source: Path, target: Path) -> Path:
        """Write the SVG picture of ``timeline`` applied to ``source`` (:mod:`nemod.picture`) to
        ``target``; returns ``target``. Raises :class:`PermanentJobError` for a source that
        is not usable media."""
        media = self._probe(source)
        try:
            levels = loudness(source, has_audio=media.has_audio)
        except MediaError as exc:
            raise PermanentJobError(str(exc)) from exc
        target.write_text(edit_picture(timeline, levels, name=source.name, source_seconds=media.duration),
                          encoding="utf-8")
        return target

    def _run(
        self, args: list[str], duration: float, progress: StepProgress, cancel: threading.Event | None
    ) -> ffmpeg.FfmpegResult:
        try:
            return ffmpeg.run(args, duration=duration, on_progress=lambda f: progress("render", f), cancel=cancel)
        except MediaError as exc:
            if cancel is not None and cancel.is_set():
                raise
            raise RetryableJobError(str(exc)) from exc

    def _copy(
        self, media: MediaInfo, output: Path, progress: StepProgress, cancel: threading.Event | None
    ) -> ffmpeg.FfmpegResult:
        """Remux; when MP4 cannot hold the sound codec, re-encode the sound only; when it cannot
        hold the picture codec either, re-encode everything."""
        try:
            return ffmpeg.run(copy_args(media, output), duration=media.duration,
                              on_progress=lambda f: progress("render", f), cancel=cancel)
        except MediaError:
            check_stopped(cancel)
        try:
            return ffmpeg.run(copy_args(media, output, reencode_audio=True), duration=media.duration,
                              on_progress=lambda f: progress("render", f), cancel=cancel)
        except MediaError:
            check_stopped(cancel)
        whole = build_timeline(Plan(), media)
        args = render_args(whole, RenderInputs({media.path.name: media}), output,
                           preset=self.settings.preset, crf=self.settings.crf, threads=self.settings.threads)
        return self._run(args, media.duration, progress, cancel)


class LocalBackend:
    """Edits and exports with the embedded engine; needs no account and no network."""

    name = "local"

    def __init__(self, engine: LocalEngine) -> None:
        self.engine = engine

    def process(self, request: JobRequest, context: JobContext) -> Rendition:
        """Render ``request`` into ``request.work_dir``; see :class:`nemod.backends.base.Backend`."""
        context.checkpoint("edit")
        plan = request.rule.plan
        timeline = self.engine.plan_timeline(request.source, plan, progress=context.progress, cancel=context.cancel)
        files: dict[str, Path] = {}
        details: dict[str, Any] = {}
        wanted: TimelineExport | None = plan.find(TimelineExport)
        if wanted is not None:
            context.checkpoint("timeline")
            files, notes = self.engine.export_timeline(
                timeline, request.source, wanted.formats, request.work_dir, request.stem, media_url=request.media_url)
            details["timeline_export"] = {"formats": list(wanted.formats), "media": request.media_url
                                          or media_url_of(request.source, None, None), "notes": notes}
        if request.rule.picture == "svg":
            files[".timeline.svg"] = self.engine.write_picture(
                timeline, request.source, request.work_dir / f"{request.stem}.timeline.svg")
        if not plan.renders:
            return Rendition(video=None, timeline=timeline, summary=summarize(timeline) + " (timeline only)",
                             captions=self.engine.sidecars(timeline, request.work_dir, request.stem),
                             details=details, files=files)
        context.checkpoint("render")
        result = self.engine.render(
            timeline, {request.source.name: request.source}, request.work_dir, request.stem,
            progress=context.progress, cancel=context.cancel,
        )
        return Rendition(
            video=result.video, timeline=timeline, summary=summarize(timeline),
            captions=result.captions, details={**result.details, **details}, files=files,
        )

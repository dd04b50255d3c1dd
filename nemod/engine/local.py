"""The local backend: probe, plan a timeline, render with ffmpeg — all on this machine."""

from __future__ import annotations

import time

from nemod.backends.base import JobContext, JobRequest, Rendition
from nemod.config import EngineSettings
from nemod.engine.render import render_args
from nemod.engine.timeline import build_draft, summarize
from nemod.errors import MediaError, PermanentJobError, RetryableJobError
from nemod.media import ffmpeg
from nemod.media.probe import probe


class LocalBackend:
    """Edits and exports with the embedded engine; needs no account and no network."""

    name = "local"

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings

    def process(self, request: JobRequest, context: JobContext) -> Rendition:
        """Render ``request`` into ``request.work_dir``; see :class:`nemod.backends.base.Backend`."""
        timings: dict[str, float] = {}
        started = time.monotonic()
        try:
            media = probe(request.source)
        except MediaError as exc:
            raise PermanentJobError(str(exc)) from exc
        if not media.has_video:
            raise PermanentJobError(f"{request.source.name} has no video stream to export.")
        timings["probe"] = time.monotonic() - started
        context.checkpoint("plan")
        draft = build_draft(request.rule.plan, media)
        output = request.work_dir / f"{request.stem}.render.mp4"
        args = render_args(draft, media, output, preset=self.settings.preset, crf=self.settings.crf)
        context.checkpoint("render")
        started = time.monotonic()
        try:
            result = ffmpeg.run(
                args,
                duration=draft["d"] / 1000,
                on_progress=lambda fraction: context.progress("render", fraction),
                cancel=context.cancel,
            )
        except MediaError as exc:
            if context.cancel.is_set():
                raise
            raise RetryableJobError(str(exc)) from exc
        timings["render"] = time.monotonic() - started
        return Rendition(
            video=output,
            draft=draft,
            summary=summarize(draft),
            details={
                "timings": timings,
                "ffmpeg_command": list(result.argv),
                "ffmpeg_version": ffmpeg.ffmpeg_version(),
                "media": {"duration": media.duration, "width": media.width, "height": media.height},
            },
        )

"""The local engine and backend: probe, plan a timeline, render with ffmpeg — on this machine.

:class:`LocalEngine` has two halves that also serve ``nemod serve``:
``plan_draft`` (analyse the source and build the NemoVideo-format draft) and
``render`` (turn any draft into an MP4 plus caption sidecars). :class:`LocalBackend`
chains them behind the :class:`nemod.backends.base.Backend` interface.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemod.backends.base import JobContext, JobRequest, Rendition
from nemod.config import EngineSettings
from nemod.edits import Plan
from nemod.engine.render import render_args
from nemod.engine.timeline import Draft, build_draft, summarize
from nemod.errors import MediaError, PermanentJobError, RetryableJobError
from nemod.media import ffmpeg
from nemod.media.probe import probe

StepProgress = Callable[[str, float], None]


def _quiet(step: str, fraction: float) -> None:
    """Ignore progress."""


@dataclass
class RenderResult:
    """A rendered MP4 and its sidecars (suffix without dot → path) plus log details."""

    video: Path
    captions: dict[str, Path] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


class LocalEngine:
    """The embedded editor. ``settings`` chooses the encoder preset, Whisper model, etc."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings

    def plan_draft(
        self,
        source: Path,
        plan: Plan,
        *,
        progress: StepProgress = _quiet,
        cancel: threading.Event | None = None,
    ) -> Draft:
        """Analyse ``source`` and return the draft that carries out ``plan``.

        Raises :class:`PermanentJobError` when the source is not usable media.
        """
        try:
            media = probe(source)
        except MediaError as exc:
            raise PermanentJobError(str(exc)) from exc
        if not media.has_video:
            raise PermanentJobError(f"{source.name} has no video stream to export.")
        progress("analyse", 1.0)
        return build_draft(plan, media)

    def render(
        self,
        draft: Draft,
        sources: Mapping[str, Path],
        work_dir: Path,
        stem: str,
        *,
        progress: StepProgress = _quiet,
        cancel: threading.Event | None = None,
    ) -> RenderResult:
        """Render ``draft`` into ``work_dir``; ``sources`` maps the draft's ``src`` names to files.

        Raises :class:`RetryableJobError` when ffmpeg fails, :class:`MediaError` when cancelled.
        """
        name = draft["t"][0]["sg"][0]["src"]
        media = probe(sources[name])
        output = work_dir / f"{stem}.render.mp4"
        args = render_args(draft, media, output, preset=self.settings.preset, crf=self.settings.crf)
        started = time.monotonic()
        try:
            result = ffmpeg.run(
                args,
                duration=draft["d"] / 1000,
                on_progress=lambda fraction: progress("render", fraction),
                cancel=cancel,
            )
        except MediaError as exc:
            if cancel is not None and cancel.is_set():
                raise
            raise RetryableJobError(str(exc)) from exc
        return RenderResult(
            video=output,
            details={
                "timings": {"render": round(time.monotonic() - started, 3)},
                "ffmpeg_command": list(result.argv),
                "ffmpeg_version": ffmpeg.ffmpeg_version(),
            },
        )


class LocalBackend:
    """Edits and exports with the embedded engine; needs no account and no network."""

    name = "local"

    def __init__(self, engine: LocalEngine) -> None:
        self.engine = engine

    def process(self, request: JobRequest, context: JobContext) -> Rendition:
        """Render ``request`` into ``request.work_dir``; see :class:`nemod.backends.base.Backend`."""
        context.checkpoint("edit")
        draft = self.engine.plan_draft(
            request.source, request.rule.plan, progress=context.progress, cancel=context.cancel
        )
        context.checkpoint("render")
        result = self.engine.render(
            draft, {request.source.name: request.source}, request.work_dir, request.stem,
            progress=context.progress, cancel=context.cancel,
        )
        return Rendition(
            video=result.video, draft=draft, summary=summarize(draft),
            captions=result.captions, details=result.details,
        )

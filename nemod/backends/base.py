"""The backend interface every edit/export implementation satisfies.

A backend turns one source file and one rule into a rendered MP4 (plus caption
sidecars) in a scratch folder; the pipeline then publishes those files atomically.
Anything that costs money or cannot be undone is recorded in the job's
:class:`Ledger` *before* it happens, so a resumed job never repeats it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nemod.config import Rule
from nemod.store.base import SideEffect
from nemod.timeline import Timeline


class Ledger(Protocol):
    """The job's record of paid or irreversible side effects (backed by the job store)."""

    def get(self, key: str) -> SideEffect | None:
        """Return the recorded side effect ``key``, or None when it never started."""

    def record(self, key: str, remote_id: str | None = None) -> None:
        """Record (or update with its ``remote_id``) the side effect ``key``."""


class MemoryLedger:
    """A ledger kept in memory, for one-off runs that have no job store."""

    def __init__(self) -> None:
        self._rows: dict[str, SideEffect] = {}

    def get(self, key: str) -> SideEffect | None:
        """Return the recorded side effect ``key`` or None."""
        return self._rows.get(key)

    def record(self, key: str, remote_id: str | None = None) -> None:
        """Record ``key`` with its remote id."""
        self._rows[key] = SideEffect(key, remote_id)


Progress = Callable[[str, float], None]


def no_progress(step: str, fraction: float) -> None:
    """A progress callback that ignores progress."""


@dataclass
class JobContext:
    """What a backend may use while it works on a job.

    ``progress(step, fraction)`` reports progress; ``cancel`` is set when the work must
    stop (shutdown, lost lease); ``checkpoint(step)`` records the step reached (and
    raises :class:`nemod.errors.LeaseLostError` when the job was taken over).
    """

    ledger: Ledger = field(default_factory=MemoryLedger)
    progress: Progress = no_progress
    cancel: threading.Event = field(default_factory=threading.Event)
    checkpoint: Callable[[str], None] = lambda step: None


@dataclass(frozen=True)
class JobRequest:
    """One file to process with one rule; ``work_dir`` is a private scratch folder on the
    output folder's file system (so publishing is a rename)."""

    job_id: str
    source: Path
    rule: Rule
    work_dir: Path
    #: How editors reach ``source`` in an exported timeline (a URL; None: its path here).
    media_url: str | None = None

    @property
    def stem(self) -> str:
        """The source file name without its extension."""
        return self.source.stem


@dataclass
class Rendition:
    """A backend's result: the MP4 (None when the rule asks for the timeline only), optional
    caption sidecars (by format: ``srt``, ``vtt``) and other files beside it (``files``:
    suffix → path, e.g. editor timelines and ``.timeline.svg``), all inside ``work_dir``,
    plus the ``timeline``, its one-line ``summary`` and details for the job log. ``draft`` is
    the NemoVideo draft exactly as the service made it (cloud), logged as it is; None logs
    the timeline's own draft."""

    video: Path | None
    timeline: Timeline
    summary: str
    captions: dict[str, Path] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    draft: Mapping[str, Any] | None = None


class Backend(Protocol):
    """Edits and exports one file. Implementations: local engine, NemoVideo cloud."""

    name: str

    def process(self, request: JobRequest, context: JobContext) -> Rendition:
        """Produce the rendition of ``request``.

        Raises :class:`nemod.errors.PermanentJobError` when retrying cannot help,
        :class:`nemod.errors.RetryableJobError` (or :class:`~nemod.errors.WaitingError`)
        when a later attempt may succeed, and :class:`nemod.errors.LeaseLostError` when
        ``context.checkpoint`` reports the job was taken over.
        """

"""Everything the dashboard reads from or does to the job store, behind one adapter.

This is the dashboard's only contact with the store: the page modules never import
:mod:`nemod.store` or :mod:`nemod.service.storeview`. Reads go through today's public
functions — :class:`~nemod.service.storeview.StoreStatusSource` (the overview snapshot),
the :class:`~nemod.store.base.JobStore` protocol (one job, retry, forget) — and actions
through the same code as the CLI (:func:`nemod.actions.retry_job`,
:func:`nemod.actions.forget_source`).

**A page of jobs** filtered by state, folder, rule and a name search (stores of 100,000
jobs) is :meth:`~nemod.store.base.JobStore.page`, keyset-paged on the id; cancelling a
queued or waiting job is the daemon's, which fails it in the store
(:meth:`~nemod.store.base.JobStore.cancel`). No SQL lives here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from nemod.actions import forget_source, retry_job, set_paused
from nemod.config import Config
from nemod.daemon.pauses import PausedFolders
from nemod.draft import log_timeline
from nemod.errors import NemodError
from nemod.matching import match_rule, unsupported_reason
from nemod.names import restored, shown
from nemod.picture import Loudness, edit_picture
from nemod.schedule import combine, local_zone
from nemod.service.status import STATES, JobLine, StatusSnapshot, StatusSource
from nemod.service.storeview import StoreStatusSource, job_line
from nemod.store.base import Job, JobState, JobStore

#: Jobs per page of the jobs list.
PAGE_SIZE = 50


class DaemonControls(Protocol):
    """What the running daemon lets the dashboard do that the store alone cannot."""

    def request_cancel(self, job_id: int) -> str:
        """Cancel a running, queued or waiting job; returns a sentence saying what happened."""

    def live_progress(self) -> dict[int, tuple[str | None, float | None]]:
        """Job id → (step, fraction) of the jobs running in this process now."""


@dataclass(frozen=True)
class JobFilter:
    """The jobs list's query: all fields optional; ``since`` is a time (seconds since the
    epoch) jobs were found at or after; ``before`` is the keyset cursor (an id)."""

    state: str | None = None
    folder: str | None = None
    rule: str | None = None
    search: str | None = None
    since: float | None = None
    before: int | None = None


@dataclass(frozen=True)
class JobPage:
    """One page of jobs (newest first) and the cursor of the next page (None: last page)."""

    jobs: tuple[JobLine, ...]
    next_before: int | None


@dataclass(frozen=True)
class OutputFile:
    """One published output of a job: its store key (``.mp4``), path, size, duration."""

    suffix: str
    path: Path
    size: int | None
    duration: float | None


@dataclass(frozen=True)
class JobDetail:
    """A job with what its outputs say: the published log, the files, the picture."""

    job: Job
    source: str
    outputs: tuple[OutputFile, ...]
    log: Mapping[str, Any] | None
    instruction: str | None
    backend: str | None


@dataclass(frozen=True)
class Window:
    """A processing window in force: what has it (folder or rule), its text, open now,
    when it next opens (seconds since the epoch; None: open now or never)."""

    owner: str
    text: str
    open_now: bool
    next_open: float | None


@dataclass(frozen=True)
class Overview:
    """The dashboard's first page: the status snapshot plus windows and paused folders."""

    snapshot: StatusSnapshot
    windows: tuple[Window, ...] = ()
    paused: frozenset[str] = field(default_factory=frozenset)
    rules: tuple[str, ...] = ()


def status_source(config: Config, open_store: Callable[[], JobStore] | None = None) -> StatusSource:
    """The status snapshot source for ``config``'s store, opened read-only by ``open_store``
    (default: the SQLite store in ``state_dir``), listing every configured folder even
    before it has jobs."""
    return StoreStatusSource.for_state_dir(
        config.state_dir, folders=[w.key for w in config.watches], open_store=open_store,
        host_id=config.host_id, store_name=config.store_name)


def _duration(path: Path) -> float | None:
    """Seconds of media in ``path`` (None when it is not media PyAV reads)."""
    from nemod.media.probe import probe  # PyAV: imported only when a job page is drawn

    try:
        return probe(path).duration
    except Exception:  # noqa: BLE001 - a sidecar or damaged file simply has no duration
        return None


class DashboardData:
    """The dashboard's adapter over one job store.

    ``config`` returns the config in force (it follows reloads); ``store`` is the daemon's
    :class:`JobStore`; ``status`` the status source; ``controls`` the running daemon (None:
    cancelling is unavailable); ``clock`` wall-clock seconds; ``durations`` reads a media
    file's length (tests may pass a cheaper one).
    """

    def __init__(
        self,
        config: Callable[[], Config],
        store: JobStore,
        status: StatusSource,
        *,
        controls: DaemonControls | None = None,
        clock: Callable[[], float] = time.time,
        durations: Callable[[Path], float | None] = _duration,
        zone: dt.tzinfo | None = None,
        snapshot_seconds: float = 1.0,
    ) -> None:
        self._config = config
        self.store = store
        self.status = status
        self.controls = controls
        self.clock = clock
        self.durations = durations
        self.zone = zone or local_zone()
        # The snapshot's aggregates cost ~0.3 s on 100,000 jobs (bench/dashboard_paging.py):
        # every open browser polls, so one snapshot serves them all for a second.
        self.snapshot_seconds = snapshot_seconds
        self._snapshot: tuple[float, StatusSnapshot] | None = None
        self._snapshot_lock = threading.Lock()

    @property
    def config(self) -> Config:
        """The config in force."""
        return self._config()

    @property
    def pauses(self) -> PausedFolders:
        """The paused-folder record in ``state_dir`` (shared with the daemon)."""
        return PausedFolders.for_state_dir(self.config.state_dir)

    # --- reads ------------------------------------------------------------------------

    def overview(self) -> Overview:
        """The snapshot (counts, folders, running with progress, queue in claim order),
        the processing windows of the config with their next opening, paused folders."""
        now = self.clock()
        config = self.config
        snapshot = self._status(now)
        live = self.controls.live_progress() if self.controls is not None else {}
        if live:
            running = tuple(
                replace(line, step=live[int(line.id)][0] or line.step, progress=live[int(line.id)][1])
                if int(line.id) in live else line for line in snapshot.running)
            snapshot = replace(snapshot, running=running)
        return Overview(
            snapshot=snapshot,
            windows=self._windows(config, now),
            paused=frozenset(self.pauses.paused()),
            rules=tuple(rule.name for rule in config.rules),
        )

    def _status(self, now: float) -> StatusSnapshot:
        with self._snapshot_lock:
            if self._snapshot is None or not 0 <= now - self._snapshot[0] < self.snapshot_seconds:
                self._snapshot = (now, self.status.snapshot(now))
            return self._snapshot[1]

    def _windows(self, config: Config, now: float) -> tuple[Window, ...]:
        moment = dt.datetime.fromtimestamp(now, self.zone)
        owners = [(f"folder {w.key}", w.schedule) for w in config.watches]
        owners += [(f"rule {r.name}", r.schedule) for r in config.rules]
        windows = []
        for owner, text in owners:
            if not text:
                continue
            schedule = combine((text,), self.zone)
            is_open = schedule.is_open(moment)
            opens = None if is_open else schedule.next_open(moment)
            windows.append(Window(owner, text, is_open, opens.timestamp() if opens else None))
        return tuple(windows)

    def page_jobs(self, query: JobFilter, size: int = PAGE_SIZE) -> JobPage:
        """One page of jobs matching ``query``, newest first (keyset on the id, so page
        1,000 costs what page 1 does: :meth:`JobStore.page`); an unknown state is no filter.
        Raises StoreError (e.g. the store cannot be reached) or OSError."""
        jobs = self.store.page(
            state=JobState(query.state) if query.state in STATES else None, root=query.folder or None,
            rule=query.rule or None, search=query.search or None, since=query.since,
            before_id=query.before, limit=size + 1,
        )
        lines = tuple(job_line(job) for job in jobs[:size])
        more = len(jobs) > size
        return JobPage(lines, int(lines[-1].id) if more and lines else None)

    def job(self, job_id: int) -> JobDetail | None:
        """The job with its published outputs (size, media duration) and its ``.log.json``."""
        job = self.store.get(job_id)
        if job is None:
            return None
        live = self.controls.live_progress() if self.controls is not None else {}
        if job.state is JobState.RUNNING and job_id in live:
            step, fraction = live[job_id]
            job = replace(job, step=step or job.step, progress=fraction)
        outputs = []
        log: Mapping[str, Any] | None = None
        for suffix, name in sorted(job.outputs.items()):
            path = Path(name)
            try:
                size: int | None = path.stat().st_size
            except OSError:
                size = None
            duration = self.durations(path) if size is not None and suffix == ".mp4" else None
            outputs.append(OutputFile(suffix, path, size, duration))
            if suffix == ".log.json" and size is not None:
                with contextlib.suppress(OSError, ValueError):
                    log = json.loads(path.read_text(encoding="utf-8"))
        instruction = backend = None
        if log is not None:
            instruction, backend = log.get("instruction"), log.get("backend")
        else:
            with contextlib.suppress(KeyError):
                instruction = self.config.rule(job.rule).instruction
            backend = self.config.backend
        return JobDetail(job, shown(job.source.relative), tuple(outputs), log,
                         instruction, backend)

    def output(self, job_id: int, suffix: str) -> Path | None:
        """The output file ``suffix`` (``.mp4``, ``.srt``, …) recorded in the store for
        this job, when it still exists; None otherwise. No other path is ever served."""
        job = self.store.get(job_id)
        if job is None or suffix not in job.outputs:
            return None
        path = Path(job.outputs[suffix]).resolve()
        # With a shared store another host wrote this path: serve it only from inside one
        # of this host's own output folders.
        folders = [watch.output.resolve() for watch in self.config.watches]
        if not any(path.is_relative_to(folder) for folder in folders):
            return None
        return path if path.is_file() else None

    def picture(self, job_id: int) -> str | None:
        """The picture of the job's edit drawn from the draft in its ``.log.json`` (without
        the loudness lane, which needs the source), for jobs whose rule published none;
        None when the job has no log with a draft."""
        detail = self.job(job_id)
        timeline = log_timeline(detail.log) if detail is not None else None
        if detail is None or timeline is None:
            return None
        source = max((end for _, end in timeline.kept()), default=None)
        return edit_picture(timeline, Loudness(step=1.0, db=()), name=detail.source, source_seconds=source)

    # --- actions (each returns a sentence for the person; raises NemodError) -----------

    def retry(self, job_id: int) -> str:
        """``nemod retry JOB``: queue a failed job again, its source moved back."""
        retry_job(self.config, self.store, job_id)
        return f"job {job_id} is queued again"

    def forget(self, job_id: int) -> str:
        """``nemod forget FILE`` for this job's file: its jobs are deleted so it runs again."""
        job = self.store.get(job_id)
        if job is None:
            raise NemodError(f"job {job_id} does not exist")
        path = self.config.locate(job.source.root, job.source.relative)
        count = forget_source(self.store, job.source, path)
        if count == 0:
            raise NemodError(f"job {job_id} is running; only finished or queued jobs can be forgotten")
        return f"forgot {shown(restored(job.source.relative))}; it will be processed again"

    def cancel(self, job_id: int) -> str:
        """Cancel a running, queued or waiting job through the daemon (see
        ``Daemon.request_cancel``: a queued or waiting one fails in the store at once)."""
        job = self.store.get(job_id)
        if job is None:
            raise NemodError(f"job {job_id} does not exist")
        if job.state not in (JobState.QUEUED, JobState.WAITING, JobState.RUNNING):
            raise NemodError(f"job {job_id} is {job.label}; only queued or running jobs can be cancelled")
        if self.controls is None:
            raise NemodError("cancelling needs the running daemon (this page is not served by it)")
        if job.state is JobState.RUNNING and job_id not in self.controls.live_progress():
            raise NemodError(f"job {job_id} is running in another nemod process; cancel it from that one's page")
        return self.controls.request_cancel(job_id)

    def set_paused(self, folder: str, paused: bool) -> str:
        """``nemod pause``/``nemod resume``: stop or restart starting jobs from a folder."""
        return set_paused(self.config, folder, paused=paused)

    def explain(self, name: str, size: int = 1) -> tuple[str, ...]:
        """``nemod explain`` for a file name (no file needed): the rule tried and why."""
        if not name.strip() or "/" in name:
            raise NemodError("give a file name (no folders), e.g. talk.mp4")
        config = self.config
        result = match_rule(config.rules, name, size)
        lines = list(result.reasons)
        if result.rule is None:
            lines.append(f"{name}: no rule matches")
        else:
            lines.append(f"{name}: rule {result.rule.name}: {result.rule.instruction}")
            reason = unsupported_reason(name, size, config.backend)
            if reason:
                lines.append(f"but it cannot be processed: {reason}")
        return tuple(lines)


"""The real :class:`~nemod.service.status.StatusSource`: the job store, read through the
:class:`~nemod.store.base.JobStore` protocol (:meth:`~nemod.store.base.JobStore.summary`),
plus the daemon's beacon.

Each snapshot opens the store through an ``open_store`` callable and closes it again, so
``nemod status`` and the status endpoint work whichever store the config names and
while the daemon is stopped. The SQLite store is opened read-only (never written, no lock
the daemon waits on); the PostgreSQL store without migrating.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemod.errors import StoreError
from nemod.names import shown
from nemod.service.beacon import beacon_path, daemon_state, read_beacon
from nemod.service.status import (
    STATES,
    FolderCounts,
    JobLine,
    StatusSnapshot,
    Totals,
    one_line,
)
from nemod.store import DATABASE_NAME
from nemod.store.base import Job, JobState, JobStore
from nemod.store.sqlite import SQLiteStore


def store_path(state_dir: Path) -> Path:
    """Where the daemon keeps its SQLite job store (see :func:`nemod.store.open_store`)."""
    return state_dir / DATABASE_NAME


@dataclass(frozen=True)
class StoreView:
    """What the job store says, before the daemon's beacon is added."""

    counts: Mapping[str, int]
    folders: tuple[FolderCounts, ...]
    running: tuple[JobLine, ...]
    queue: tuple[JobLine, ...]
    failures: tuple[JobLine, ...]
    totals: Totals


def job_line(job: Job) -> JobLine:
    """``job`` as status and the dashboard show it: its waiting reason or the first line of
    its error, the host of a running job, the stored error code."""
    reason = job.wait_reason if job.state is JobState.WAITING and job.wait_reason else one_line(job.error)
    return JobLine(
        id=str(job.id),
        source=shown(job.source.relative),
        folder=job.source.root,
        rule=job.rule,
        state=job.state.value,
        step=job.step,
        progress=job.progress,
        attempts=job.attempts,
        updated_at=job.updated_at,
        not_before=job.not_before,
        finished_at=job.finished_at,
        reason=reason,
        host=job.host if job.state is JobState.RUNNING else None,
        code=job.error_code,
    )


class StoreReader:
    """Reads a job store for status: each :meth:`read` opens it with ``open_store``, asks
    for its summary and closes it, so one reader serves any thread."""

    def __init__(
        self, open_store: Callable[[], JobStore], *, queue_limit: int = 50, failure_limit: int = 10
    ) -> None:
        self.open_store = open_store
        self.queue_limit = queue_limit
        self.failure_limit = failure_limit

    def read(self) -> StoreView:
        """Counts, per-folder counts, running jobs, the queue (in claim order), recent
        failures and totals. Raises FileNotFoundError (no store yet), StoreError
        (unreachable or unusable), sqlite3.Error or OSError."""
        store = self.open_store()
        try:
            summary = store.summary(queue_limit=self.queue_limit, failure_limit=self.failure_limit)
        finally:
            store.close()
        counts = {state.value: n for state, n in summary.counts().items()}
        folders = tuple(
            FolderCounts(root, {state.value: n for state, n in per_state.items()})
            for root, per_state in sorted(summary.folders.items())
        )
        return StoreView(
            counts=counts,
            folders=folders,
            running=tuple(job_line(job) for job in summary.running),
            queue=tuple(job_line(job) for job in summary.queue),
            failures=tuple(job_line(job) for job in summary.failures),
            totals=Totals(
                finished={state.value: value for state, value in summary.finished.items()},
                bytes_done=summary.bytes_done, errors_by_code=dict(summary.errors_by_code),
            ),
        )


class SQLiteJobReader(StoreReader):
    """A :class:`StoreReader` of the SQLite store at ``path``, opened read-only."""

    def __init__(self, path: Path, *, queue_limit: int = 50, failure_limit: int = 10) -> None:
        self.path = path
        super().__init__(lambda: SQLiteStore(path, read_only=True),
                         queue_limit=queue_limit, failure_limit=failure_limit)


class StoreStatusSource:
    """A :class:`~nemod.service.status.StatusSource` over a job store and a beacon.

    ``reader`` reads the store (see :class:`StoreReader`); ``beacon`` returns the
    beacon's content (default: read ``<state_dir>/daemon.json``); ``folders`` are the
    configured watch folders, listed even before they have jobs; ``judge`` turns a beacon
    into a :class:`~nemod.service.beacon.DaemonState` (tests replace the pid check).
    """

    def __init__(
        self,
        reader: StoreReader,
        beacon: Callable[[], Mapping[str, Any] | None],
        *,
        folders: Sequence[str] = (),
        judge: Callable[..., Any] = daemon_state,
        host_id: str | None = None,
        store_name: str | None = None,
    ) -> None:
        self.reader = reader
        self.beacon = beacon
        self.folders = tuple(folders)
        self.judge = judge
        self.host_id = host_id
        self.store_name = store_name

    @classmethod
    def for_state_dir(
        cls, state_dir: Path, folders: Sequence[str] = (), *,
        open_store: Callable[[], JobStore] | None = None, host_id: str | None = None,
        store_name: str | None = None,
    ) -> StoreStatusSource:
        """The source for the daemon that uses ``state_dir`` (its beacon) and the store
        ``open_store`` opens (default: the SQLite store in ``state_dir``, read-only)."""
        reader = SQLiteJobReader(store_path(state_dir)) if open_store is None else StoreReader(open_store)
        return cls(
            reader, lambda: read_beacon(beacon_path(state_dir)), folders=folders,
            host_id=host_id, store_name=store_name,
        )

    def snapshot(self, now: float) -> StatusSnapshot:
        """The store and beacon at wall-clock ``now``; an unreadable store is reported in
        ``store_ok``/``store_error``, never raised."""
        daemon = self.judge(self.beacon(), now)
        try:
            view = self.reader.read()
        except FileNotFoundError as exc:
            return self._without_store(now, daemon, str(exc))
        except StoreError as exc:
            return self._without_store(now, daemon, str(exc))
        except (sqlite3.Error, OSError) as exc:
            return self._without_store(now, daemon, f"unreadable: {exc}")
        known = {folder.folder for folder in view.folders}
        extra = tuple(
            FolderCounts(f, dict.fromkeys(STATES, 0)) for f in self.folders if f not in known
        )
        return StatusSnapshot(
            taken_at=now,
            daemon=daemon,
            counts=view.counts,
            folders=view.folders + extra,
            running=view.running,
            queue=view.queue,
            failures=view.failures,
            totals=view.totals,
            host_id=self.host_id,
            store_name=self.store_name,
        )

    def _without_store(self, now: float, daemon: Any, error: str) -> StatusSnapshot:
        folders = tuple(FolderCounts(f, dict.fromkeys(STATES, 0)) for f in self.folders)
        return StatusSnapshot(
            taken_at=now, daemon=daemon, counts=dict.fromkeys(STATES, 0), folders=folders,
            store_ok=False, store_error=error, host_id=self.host_id, store_name=self.store_name,
        )

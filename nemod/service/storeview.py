"""The real :class:`~nemod.service.status.StatusSource`: the SQLite job store, read-only,
plus the daemon's beacon.

The store file is opened with ``mode=ro`` for every snapshot, so ``nemod status`` and
the status endpoint never write to it, never hold a lock the daemon waits on, and work
while the daemon is stopped. The queries read the ``jobs`` table of
:mod:`nemod.store.sqlite` (its columns are this module's contract with the store).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemod.names import restored, shown
from nemod.service.beacon import beacon_path, daemon_state, read_beacon
from nemod.service.status import (
    STATES,
    FolderCounts,
    JobLine,
    StatusSnapshot,
    Totals,
    error_code,
    one_line,
)
from nemod.store import DATABASE_NAME


def store_path(state_dir: Path) -> Path:
    """Where the daemon keeps its job store (see :func:`nemod.store.open_store`)."""
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


def _job_line(row: sqlite3.Row) -> JobLine:
    return JobLine(
        id=str(row["id"]),
        source=shown(restored(str(row["relative"]))),
        folder=str(row["root"]),
        rule=str(row["rule"]),
        state=str(row["state"]),
        step=row["step"],
        progress=row["progress"],
        attempts=int(row["attempts"]),
        updated_at=row["updated_at"],
        not_before=row["not_before"],
        finished_at=row["finished_at"],
        reason=one_line(row["error"]),
    )


class SQLiteJobReader:
    """Reads the job store at ``path`` read-only; each :meth:`read` opens and closes a
    connection, so one reader serves any thread."""

    def __init__(self, path: Path, *, queue_limit: int = 50, failure_limit: int = 10) -> None:
        self.path = path
        self.queue_limit = queue_limit
        self.failure_limit = failure_limit

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self.path.is_file():
            raise FileNotFoundError(f"no job store yet at {self.path}")
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            conn.row_factory = sqlite3.Row
            yield conn
        finally:
            conn.close()

    def read(self) -> StoreView:
        """Counts, per-folder counts, running jobs, the queue (in claim order), recent
        failures and totals. Raises sqlite3.Error or OSError when the store is unreadable."""
        with self._connect() as conn:
            counts = dict.fromkeys(STATES, 0)
            folders: dict[str, dict[str, int]] = {}
            for row in conn.execute(
                "SELECT root, state, count(*) AS n FROM jobs GROUP BY root, state"
            ):
                counts[row["state"]] = counts.get(row["state"], 0) + row["n"]
                folders.setdefault(row["root"], dict.fromkeys(STATES, 0))[row["state"]] = row["n"]
            running = conn.execute(
                "SELECT * FROM jobs WHERE state = 'running' ORDER BY updated_at DESC, id"
            ).fetchall()
            queue = conn.execute(
                """SELECT * FROM jobs WHERE state IN ('queued', 'waiting')
                   ORDER BY not_before, id LIMIT ?""",
                (self.queue_limit,),
            ).fetchall()
            failures = conn.execute(
                """SELECT * FROM jobs WHERE state = 'failed'
                   ORDER BY coalesce(finished_at, updated_at) DESC, id DESC LIMIT ?""",
                (self.failure_limit,),
            ).fetchall()
            finished = {
                row["state"]: (int(row["n"]), float(row["seconds"] or 0.0))
                for row in conn.execute(
                    """SELECT state, count(*) AS n, sum(finished_at - created_at) AS seconds
                       FROM jobs WHERE state IN ('done', 'failed') AND finished_at IS NOT NULL
                       GROUP BY state"""
                )
            }
            bytes_done = conn.execute(
                "SELECT coalesce(sum(size), 0) FROM jobs WHERE state = 'done'"
            ).fetchone()[0]
            errors: dict[str, int] = {}
            for row in conn.execute(
                "SELECT error, count(*) AS n FROM jobs WHERE state = 'failed' GROUP BY error"
            ):
                code = error_code(row["error"])
                errors[code] = errors.get(code, 0) + row["n"]
        return StoreView(
            counts=counts,
            folders=tuple(FolderCounts(root, n) for root, n in sorted(folders.items())),
            running=tuple(_job_line(row) for row in running),
            queue=tuple(_job_line(row) for row in queue),
            failures=tuple(_job_line(row) for row in failures),
            totals=Totals(finished=finished, bytes_done=int(bytes_done), errors_by_code=errors),
        )


class StoreStatusSource:
    """A :class:`~nemod.service.status.StatusSource` over a job store and a beacon.

    ``reader`` reads the store (see :class:`SQLiteJobReader`); ``beacon`` returns the
    beacon's content (default: read ``<state_dir>/daemon.json``); ``folders`` are the
    configured watch folders, listed even before they have jobs; ``judge`` turns a beacon
    into a :class:`~nemod.service.beacon.DaemonState` (tests replace the pid check).
    """

    def __init__(
        self,
        reader: SQLiteJobReader,
        beacon: Callable[[], Mapping[str, Any] | None],
        *,
        folders: Sequence[str] = (),
        judge: Callable[..., Any] = daemon_state,
    ) -> None:
        self.reader = reader
        self.beacon = beacon
        self.folders = tuple(folders)
        self.judge = judge

    @classmethod
    def for_state_dir(cls, state_dir: Path, folders: Sequence[str] = ()) -> StoreStatusSource:
        """The source for the daemon that uses ``state_dir``."""
        return cls(
            SQLiteJobReader(store_path(state_dir)),
            lambda: read_beacon(beacon_path(state_dir)),
            folders=folders,
        )

    def snapshot(self, now: float) -> StatusSnapshot:
        """The store and beacon at wall-clock ``now``; an unreadable store is reported in
        ``store_ok``/``store_error``, never raised."""
        daemon = self.judge(self.beacon(), now)
        try:
            view = self.reader.read()
        except FileNotFoundError as exc:
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
        )

    def _without_store(self, now: float, daemon: Any, error: str) -> StatusSnapshot:
        folders = tuple(FolderCounts(f, dict.fromkeys(STATES, 0)) for f in self.folders)
        return StatusSnapshot(
            taken_at=now, daemon=daemon, counts=dict.fromkeys(STATES, 0), folders=folders,
            store_ok=False, store_error=error,
        )

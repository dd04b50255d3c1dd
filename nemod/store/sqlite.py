"""The SQLite job store: one file in ``state_dir``, WAL mode, one host.

Claims run inside ``BEGIN IMMEDIATE`` as one ``UPDATE … WHERE id = (SELECT … LIMIT 1)
RETURNING *``, so two workers (threads or processes) never get the same job. Times
come from SQLite's own clock unless a ``clock`` is passed in (tests).

Never put this file on a network share: WAL needs a local file system.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from nemod.names import restored, shown, stored
from nemod.store.base import Job, JobState, SideEffect, SourceRef

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint      TEXT    NOT NULL,
    rule             TEXT    NOT NULL,
    root             TEXT    NOT NULL,
    relative         TEXT    NOT NULL,
    size             INTEGER NOT NULL DEFAULT 0,
    mtime            REAL    NOT NULL DEFAULT 0,
    state            TEXT    NOT NULL,
    step             TEXT,
    progress         REAL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_token      INTEGER NOT NULL DEFAULT 0,
    lease_expires_at REAL,
    not_before       REAL    NOT NULL,
    created_at       REAL    NOT NULL,
    updated_at       REAL    NOT NULL,
    finished_at      REAL,
    outputs          TEXT    NOT NULL DEFAULT '{}',
    error            TEXT,
    UNIQUE (fingerprint, rule)
);
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (state, not_before, id);
CREATE INDEX IF NOT EXISTS jobs_path ON jobs (root, relative);
CREATE INDEX IF NOT EXISTS jobs_updated ON jobs (updated_at);
CREATE TABLE IF NOT EXISTS side_effects (
    fingerprint TEXT NOT NULL,
    rule        TEXT NOT NULL,
    key         TEXT NOT NULL,
    remote_id   TEXT,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (fingerprint, rule, key)
);
"""

# SQLite 3.40 has no unixepoch('subsec'); julianday has millisecond precision.
_NOW_SQL = "SELECT (julianday('now') - 2440587.5) * 86400.0"

_CLAIM_SQL = """
UPDATE jobs SET
    state = 'running', lease_owner = :worker, lease_token = lease_token + 1,
    lease_expires_at = :now + :lease, attempts = attempts + 1, updated_at = :now,
    progress = NULL
WHERE id = (
    SELECT id FROM jobs
    WHERE (state IN ('queued', 'waiting') AND not_before <= :now)
       OR (state = 'running' AND lease_expires_at <= :now)
    ORDER BY not_before, id
    LIMIT 1
)
RETURNING *
"""


def _row_to_job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        fingerprint=row["fingerprint"],
        rule=row["rule"],
        source=SourceRef(row["root"], restored(row["relative"])),
        state=JobState(row["state"]),
        size=row["size"],
        mtime=row["mtime"],
        step=row["step"],
        progress=row["progress"],
        attempts=row["attempts"],
        lease_owner=row["lease_owner"],
        lease_token=row["lease_token"],
        lease_expires_at=row["lease_expires_at"],
        not_before=row["not_before"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        outputs=json.loads(row["outputs"] or "{}"),
        error=row["error"],
    )


class SQLiteStore:
    """A :class:`nemod.store.base.JobStore` in one SQLite file (thread-safe; several
    processes may open the same file)."""

    def __init__(self, path: Path, *, clock: Callable[[], float] | None = None) -> None:
        """Open (creating) the database at ``path``; ``clock`` replaces SQLite's clock."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._clock = clock
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        with self._tx() as (conn, _):
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # --- plumbing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self) -> Iterator[tuple[sqlite3.Connection, float]]:
        """A write transaction (``BEGIN IMMEDIATE``) and the store's time inside it."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn, self._now_locked()
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _now_locked(self) -> float:
        if self._clock is not None:
            return self._clock()
        value: float = self._conn.execute(_NOW_SQL).fetchone()[0]
        return value

    def _query(
        self, sql: str, params: Mapping[str, Any] | tuple[Any, ...] = ()
    ) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    def now(self) -> float:
        """The store's clock (seconds since the epoch)."""
        with self._lock:
            return self._now_locked()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    # --- the queue ----------------------------------------------------------------------

    def enqueue(
        self, fingerprint: str, rule: str, source: SourceRef, *, size: int = 0, mtime: float = 0.0
    ) -> Job | None:
        """Insert a queued job unless (fingerprint, rule) exists (then return None)."""
        with self._tx() as (conn, now):
            row = conn.execute(
                """INSERT INTO jobs (fingerprint, rule, root, relative, size, mtime, state,
                                     not_before, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)
                   ON CONFLICT (fingerprint, rule) DO NOTHING
                   RETURNING *""",
                (fingerprint, rule, source.root, stored(source.relative), size, mtime, now, now, now),
            ).fetchone()
        return _row_to_job(row) if row is not None else None

    def claim(self, worker: str, *, lease_seconds: float) -> Job | None:
        """Take the oldest claimable job (see :meth:`JobStore.claim`)."""
        with self._tx() as (conn, now):
            row = conn.execute(
                _CLAIM_SQL, {"worker": worker, "now": now, "lease": lease_seconds}
            ).fetchone()
        return _row_to_job(row) if row is not None else None

    def _fenced(self, sql: str, params: dict[str, Any]) -> bool:
        with self._tx() as (conn, now):
            cursor = conn.execute(sql, {**params, "now": now})
        return cursor.rowcount == 1

    def heartbeat(
        self, job_id: int, lease: int, *, lease_seconds: float,
        step: str | None = None, progress: float | None = None,
    ) -> bool:
        """Extend the lease; False when the job was taken over."""
        return self._fenced(
            """UPDATE jobs SET lease_expires_at = :now + :lease_seconds, updated_at = :now,
                   step = coalesce(:step, step), progress = coalesce(:progress, progress)
               WHERE id = :id AND lease_token = :lease AND state = 'running'""",
            {"id": job_id, "lease": lease, "lease_seconds": lease_seconds,
             "step": step, "progress": progress},
        )

    def complete(self, job_id: int, lease: int, outputs: Mapping[str, str]) -> bool:
        """Mark done with ``outputs``; False when the job was taken over."""
        return self._fenced(
            """UPDATE jobs SET state = 'done', outputs = :outputs, error = NULL, step = NULL,
                   progress = NULL, lease_owner = NULL, lease_expires_at = NULL,
                   updated_at = :now, finished_at = :now
               WHERE id = :id AND lease_token = :lease AND state = 'running'""",
            {"id": job_id, "lease": lease, "outputs": json.dumps(dict(outputs))},
        )

    def fail(
        self, job_id: int, lease: int, error: str, retry_after: float | None = None
    ) -> bool:
        """Permanent failure, or queued again after ``retry_after`` seconds."""
        if retry_after is None:
            return self._fenced(
                """UPDATE jobs SET state = 'failed', error = :error, lease_owner = NULL,
                       lease_expires_at = NULL, progress = NULL, updated_at = :now,
                       finished_at = :now
                   WHERE id = :id AND lease_token = :lease AND state = 'running'""",
                {"id": job_id, "lease": lease, "error": shown(error)},
            )
        return self._fenced(
            """UPDATE jobs SET state = 'queued', error = :error, lease_owner = NULL,
                   lease_expires_at = NULL, progress = NULL, updated_at = :now,
                   not_before = :now + :delay
               WHERE id = :id AND lease_token = :lease AND state = 'running'""",
            {"id": job_id, "lease": lease, "error": shown(error), "delay": retry_after},
        )

    def wait(self, job_id: int, lease: int, reason: str, delay: float) -> bool:
        """``waiting`` for ``delay`` seconds; the attempt is given back."""
        return self._fenced(
            """UPDATE jobs SET state = 'waiting', error = :reason, lease_owner = NULL,
                   lease_expires_at = NULL, progress = NULL, updated_at = :now,
                   not_before = :now + :delay, attempts = max(attempts - 1, 0)
               WHERE id = :id AND lease_token = :lease AND state = 'running'""",
            {"id": job_id, "lease": lease, "reason": shown(reason), "delay": delay},
        )

    def release(self, job_id: int, lease: int) -> bool:
        """Back to ``queued`` at its old place in line; the attempt is given back."""
        return self._fenced(
            """UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,
                   progress = NULL, updated_at = :now, attempts = max(attempts - 1, 0)
               WHERE id = :id AND lease_token = :lease AND state = 'running'""",
            {"id": job_id, "lease": lease},
        )

    def expire_lease(self, job_id: int, lease: int) -> bool:
        """Make a running job claimable now (its owner is dead)."""
        return self._fenced(
            """UPDATE jobs SET lease_expires_at = :now, updated_at = :now
               WHERE id = :id AND lease_token = :lease AND state = 'running'""",
            {"id": job_id, "lease": lease},
        )

    # --- the side-effect ledger ---------------------------------------------------------

    def record_side_effect(self, job: Job, key: str, remote_id: str | None = None) -> None:
        """Record ``key`` for (fingerprint, rule); a known remote id is never erased."""
        with self._tx() as (conn, now):
            conn.execute(
                """INSERT INTO side_effects (fingerprint, rule, key, remote_id, recorded_at)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (fingerprint, rule, key) DO UPDATE SET
                       remote_id = coalesce(excluded.remote_id, remote_id),
                       recorded_at = excluded.recorded_at""",
                (job.fingerprint, job.rule, key, None if remote_id is None else stored(remote_id), now),
            )

    def side_effect(self, job: Job, key: str) -> SideEffect | None:
        """The recorded side effect ``key`` of the job's (fingerprint, rule), or None."""
        rows = self._query(
            """SELECT key, remote_id FROM side_effects
               WHERE fingerprint = ? AND rule = ? AND key = ?""",
            (job.fingerprint, job.rule, key),
        )
        if not rows:
            return None
        remote = rows[0]["remote_id"]
        return SideEffect(rows[0]["key"], None if remote is None else restored(remote))

    # --- queries ------------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _row_to_job(rows[0]) if rows else None

    def find(self, fingerprint: str, rule: str) -> Job | None:
        """The job for (fingerprint, rule), or None."""
        rows = self._query(
            "SELECT * FROM jobs WHERE fingerprint = ? AND rule = ?", (fingerprint, rule)
        )
        return _row_to_job(rows[0]) if rows else None

    def known(self, source: SourceRef, size: int, mtime: float) -> bool:
        """True when some job has this path, size and mtime."""
        return bool(
            self._query(
                """SELECT 1 FROM jobs WHERE root = ? AND relative = ? AND size = ? AND mtime = ?
                   LIMIT 1""",
                (source.root, stored(source.relative), size, mtime),
            )
        )

    def jobs(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """Jobs, most recently updated first."""
        if state is None:
            rows = self._query(
                "SELECT * FROM jobs ORDER BY updated_at DESC, id DESC LIMIT ?", (limit,)
            )
        else:
            rows = self._query(
                "SELECT * FROM jobs WHERE state = ? ORDER BY updated_at DESC, id DESC LIMIT ?",
                (state.value, limit),
            )
        return [_row_to_job(row) for row in rows]

    def counts(self) -> dict[JobState, int]:
        """Jobs per state."""
        counts = dict.fromkeys(JobState, 0)
        for row in self._query("SELECT state, count(*) AS n FROM jobs GROUP BY state"):
            counts[JobState(row["state"])] = row["n"]
        return counts

    def retry(self, job_id: int | None = None) -> int:
        """Queue failed jobs again with attempts reset; returns how many."""
        where = "state = 'failed'" + (" AND id = :id" if job_id is not None else "")
        with self._tx() as (conn, now):
            cursor = conn.execute(
                f"""UPDATE jobs SET state = 'queued', attempts = 0, error = NULL,
                        not_before = :now, updated_at = :now, finished_at = NULL, step = NULL
                    WHERE {where}""",  # noqa: S608 - where is one of two literals
                {"now": now, "id": job_id},
            )
        return cursor.rowcount

    def forget(self, *, fingerprint: str | None = None, source: SourceRef | None = None) -> int:
        """Delete a file's jobs and ledger rows (not running ones); returns how many jobs."""
        clauses, params = [], []
        if fingerprint is not None:
            clauses.append("fingerprint = ?")
            params.append(fingerprint)
        if source is not None:
            clauses.append("(root = ? AND relative = ?)")
            params.extend([source.root, stored(source.relative)])
        if not clauses:
            return 0
        where = f"({' OR '.join(clauses)}) AND state != 'running'"
        with self._tx() as (conn, _):
            doomed = conn.execute(
                f"SELECT fingerprint, rule FROM jobs WHERE {where}", params  # noqa: S608
            ).fetchall()
            for row in doomed:
                conn.execute(
                    "DELETE FROM side_effects WHERE fingerprint = ? AND rule = ?",
                    (row["fingerprint"], row["rule"]),
                )
            conn.execute(f"DELETE FROM jobs WHERE {where}", params)  # noqa: S608
        return len(doomed)

    def rename_folder(self, old: str, new: str) -> int:
        """See :meth:`nemod.store.base.JobStore.rename_folder`."""
        with self._tx() as (conn, _):
            return conn.execute("UPDATE jobs SET root = ? WHERE root = ?", (new, old)).rowcount

    def prune(self, older_than: float) -> int:
        """See :meth:`nemod.store.base.JobStore.prune`."""
        with self._tx() as (conn, now):
            cutoff = {"cutoff": now - older_than}
            ledger = conn.execute(
                "DELETE FROM side_effects WHERE EXISTS (SELECT 1 FROM jobs"
                " WHERE jobs.fingerprint = side_effects.fingerprint AND jobs.rule = side_effects.rule"
                " AND jobs.state IN ('done', 'failed') AND jobs.finished_at IS NOT NULL"
                " AND jobs.finished_at < :cutoff)",
                cutoff,
            ).rowcount
            jobs = conn.execute(
                "DELETE FROM jobs WHERE state = 'failed' AND finished_at IS NOT NULL"
                " AND finished_at < :cutoff",
                cutoff,
            ).rowcount
            conn.execute(
                "UPDATE jobs SET error = NULL WHERE state = 'done' AND finished_at IS NOT NULL"
                " AND finished_at < :cutoff AND error IS NOT NULL",
                cutoff,
            )
        return ledger + jobs

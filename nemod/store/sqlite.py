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
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from nemod.errors import StoreError, code_from_text
from nemod.names import restored, shown, stored
from nemod.store.base import (
    CANCELLED_CODE,
    Job,
    JobState,
    SideEffect,
    SourceRef,
    StoreSummary,
    job_from_row,
    page_filters,
)

#: 1: the first schema; 2: ``error_code`` and ``wait_reason`` columns (filled from the
#: error text of older rows once, when the file is first opened by this version); 3: the
#: jobs page's indexes (``jobs_page_*``: state, folder or rule, then id), made by
#: :data:`_SCHEMA`'s ``IF NOT EXISTS`` when an older file is opened.
SCHEMA_VERSION = 3

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
    error_code       TEXT,
    wait_reason      TEXT,
    UNIQUE (fingerprint, rule)
);
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (state, not_before, id);
CREATE INDEX IF NOT EXISTS jobs_path ON jobs (root, relative);
CREATE INDEX IF NOT EXISTS jobs_updated ON jobs (updated_at);
CREATE INDEX IF NOT EXISTS jobs_page_state ON jobs (state, id);
CREATE INDEX IF NOT EXISTS jobs_page_root ON jobs (root, id);
CREATE INDEX IF NOT EXISTS jobs_page_rule ON jobs (rule, id);
CREATE TABLE IF NOT EXISTS side_effects (
    fingerprint TEXT NOT NULL,
    rule        TEXT NOT NULL,
    key         TEXT NOT NULL,
    remote_id   TEXT,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (fingerprint, rule, key)
);
"""

# Version 1 → 2 (a file made by version 1 has every table but not these columns).
_MIGRATE_2 = (
    "ALTER TABLE jobs ADD COLUMN error_code TEXT",
    "ALTER TABLE jobs ADD COLUMN wait_reason TEXT",
    "UPDATE jobs SET error_code = nemod_code_from_text(error) WHERE state = 'failed'",
    "UPDATE jobs SET wait_reason = error WHERE state = 'waiting'",
)

# SQLite 3.40 has no unixepoch('subsec'); julianday has millisecond precision.
_NOW_SQL = "SELECT (julianday('now') - 2440587.5) * 86400.0"

_CLAIM_SQL = """
UPDATE jobs SET
    state = 'running', lease_owner = :worker, lease_token = lease_token + 1,
    lease_expires_at = :now + :lease, attempts = attempts + 1, updated_at = :now,
    progress = NULL
WHERE id = (
    SELECT id FROM jobs
    WHERE ((state IN ('queued', 'waiting') AND not_before <= :now)
           OR (state = 'running' AND lease_expires_at <= :now))
      AND (:roots IS NULL OR root IN (SELECT value FROM json_each(:roots)))
    ORDER BY not_before, id
    LIMIT 1
)
RETURNING *
"""




#: The jobs page's filters: (parameter, the clause it adds when given).
_PAGE_CLAUSES = (
    ("state", "state = :state"),
    ("root", "root = :root"),
    ("rule", "rule = :rule"),
    ("search", "relative LIKE :search ESCAPE '\\'"),
    ("since", "created_at >= :since"),
    ("before", "id < :before"),
)


class SQLiteStore:
    """A :class:`nemod.store.base.JobStore` in one SQLite file (thread-safe; several
    processes may open the same file)."""

    def __init__(
        self, path: Path, *, clock: Callable[[], float] | None = None, read_only: bool = False
    ) -> None:
        """Open (creating and upgrading) the database at ``path``; ``clock`` replaces
        SQLite's clock. ``read_only`` opens an existing file without ever writing to it
        (status readers): raises FileNotFoundError when it does not exist, and a file of
        an older schema is read as it is."""
        self.path = path
        self._clock = clock
        self._lock = threading.RLock()
        self.read_only = read_only
        if read_only:
            if not path.is_file():
                raise FileNotFoundError(f"no job store yet at {path}")
            self._conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                check_same_thread=False, timeout=5.0,
            )
            self._conn.row_factory = sqlite3.Row
            self._version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.create_function("nemod_code_from_text", 1, code_from_text, deterministic=True)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        with self._tx() as (conn, _):
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            fresh = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"
            ).fetchone() is None
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{path} has schema version {version}; this nemod knows up to {SCHEMA_VERSION}"
                )
            if not fresh and version < 2:
                for statement in _MIGRATE_2:
                    conn.execute(statement)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._version = SCHEMA_VERSION

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
        return job_from_row(row) if row is not None else None

    def claim(
        self, worker: str, *, lease_seconds: float, roots: Collection[str] | None = None
    ) -> Job | None:
        """Take the oldest claimable job (see :meth:`JobStore.claim`)."""
        only = None if roots is None else json.dumps(sorted(roots))
        with self._tx() as (conn, now):
            row = conn.execute(
                _CLAIM_SQL, {"worker": worker, "now": now, "lease": lease_seconds, "roots": only}
            ).fetchone()
        return job_from_row(row) if row is not None else None

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
        self, job_id: int, lease: int, error: str, retry_after: float | None = None,
        *, code: str | None = None,
    ) -> bool:
        """Permanent failure, or queued again after ``retry_after`` seconds."""
        code = code or code_from_text(error)
        if retry_after is None:
            return self._fenced(
                """UPDATE jobs SET state = 'failed', error = :error, error_code = :code,
                       wait_reason = NULL, lease_owner = NULL,
                       lease_expires_at = NULL, progress = NULL, updated_at = :now,
                       finished_at = :now
                   WHERE id = :id AND lease_token = :lease AND state = 'running'""",
                {"id": job_id, "lease": lease, "error": shown(error), "code": code},
            )
        return self._fenced(
            """UPDATE jobs SET state = 'queued', error = :error, error_code = :code,
                   wait_reason = NULL, lease_owner = NULL,
                   lease_expires_at = NULL, progress = NULL, updated_at = :now,
                   not_before = :now + :delay
               WHERE id = :id AND lease_token = :lease AND state = 'running'""",
            {"id": job_id, "lease": lease, "error": shown(error), "delay": retry_after,
             "code": code},
        )

    def wait(
        self, job_id: int, lease: int, reason: str, delay: float, *, message: str | None = None
    ) -> bool:
        """``waiting`` for ``delay`` seconds; the attempt is given back."""
        return self._fenced(
            """UPDATE jobs SET state = 'waiting', error = :message, wait_reason = :reason,
                   error_code = NULL, lease_owner = NULL,
                   lease_expires_at = NULL, progress = NULL, updated_at = :now,
                   not_before = :now + :delay, attempts = max(attempts - 1, 0)
               WHERE id = :id AND lease_token = :lease AND state = 'running'""",
            {"id": job_id, "lease": lease, "reason": reason, "delay": delay,
             "message": shown(message or reason)},
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

    def cancel(self, job_id: int, reason: str) -> bool:
        """Fail a queued or waiting job now (see :meth:`JobStore.cancel`)."""
        return self._fenced(
            """UPDATE jobs SET state = 'failed', error = :reason, error_code = :code,
                   wait_reason = NULL, step = NULL, progress = NULL, lease_owner = NULL,
                   lease_expires_at = NULL, updated_at = :now, finished_at = :now
               WHERE id = :id AND state IN ('queued', 'waiting')""",
            {"id": job_id, "reason": shown(reason), "code": CANCELLED_CODE},
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
        return job_from_row(rows[0]) if rows else None

    def find(self, fingerprint: str, rule: str) -> Job | None:
        """The job for (fingerprint, rule), or None."""
        rows = self._query(
            "SELECT * FROM jobs WHERE fingerprint = ? AND rule = ?", (fingerprint, rule)
        )
        return job_from_row(rows[0]) if rows else None

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
        return [job_from_row(row) for row in rows]

    def page(
        self, *, state: JobState | None = None, root: str | None = None, rule: str | None = None,
        search: str | None = None, since: float | None = None, before_id: int | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """Newest first, keyset on the id (see :meth:`JobStore.page`; SQLite's ``LIKE``
        folds ASCII letters only). Works on a read-only store of any schema version."""
        params = page_filters(state, root, rule, search, since, before_id)
        clauses = " AND ".join(clause for name, clause in _PAGE_CLAUSES if name in params) or "1 = 1"
        rows = self._query(
            f"SELECT * FROM jobs WHERE {clauses} ORDER BY id DESC LIMIT :limit",  # noqa: S608 - fixed fragments
            {**params, "limit": limit},
        )
        return [job_from_row(row) for row in rows]

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
                f"""UPDATE jobs SET state = 'queued', attempts = 0, error = NULL, error_code = NULL,
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
                "UPDATE jobs SET error = NULL, error_code = NULL WHERE state = 'done' AND finished_at IS NOT NULL"
                " AND finished_at < :cutoff AND error IS NOT NULL",
                cutoff,
            )
        return ledger + jobs

    # --- status -------------------------------------------------------------------------

    def summary(self, *, queue_limit: int = 50, failure_limit: int = 10) -> StoreSummary:
        """See :meth:`nemod.store.base.JobStore.summary` (read-only: works on a store opened
        with ``read_only``, of any schema version)."""
        folders: dict[str, dict[JobState, int]] = {}
        for row in self._query("SELECT root, state, count(*) AS n FROM jobs GROUP BY root, state"):
            folders.setdefault(row["root"], dict.fromkeys(JobState, 0))[JobState(row["state"])] = row["n"]
        running = self._query("SELECT * FROM jobs WHERE state = 'running' ORDER BY updated_at DESC, id")
        queue = self._query(
            "SELECT * FROM jobs WHERE state IN ('queued', 'waiting') ORDER BY not_before, id LIMIT ?",
            (queue_limit,),
        )
        failures = self._query(
            """SELECT * FROM jobs WHERE state = 'failed'
               ORDER BY coalesce(finished_at, updated_at) DESC, id DESC LIMIT ?""",
            (failure_limit,),
        )
        finished = {
            JobState(row["state"]): (int(row["n"]), float(row["seconds"] or 0.0))
            for row in self._query(
                """SELECT state, count(*) AS n, sum(finished_at - created_at) AS seconds
                   FROM jobs WHERE state IN ('done', 'failed') AND finished_at IS NOT NULL
                   GROUP BY state"""
            )
        }
        bytes_done = self._query("SELECT coalesce(sum(size), 0) AS n FROM jobs WHERE state = 'done'")[0]["n"]
        errors: dict[str, int] = {}
        if self._version >= 2:
            for row in self._query(
                "SELECT coalesce(error_code, 'other') AS code, count(*) AS n FROM jobs"
                " WHERE state = 'failed' GROUP BY 1"
            ):
                errors[row["code"]] = row["n"]
        else:  # an old file read before its daemon upgraded it
            for row in self._query("SELECT error, count(*) AS n FROM jobs WHERE state = 'failed' GROUP BY error"):
                code = code_from_text(row["error"])
                errors[code] = errors.get(code, 0) + row["n"]
        return StoreSummary(
            folders=folders,
            running=tuple(job_from_row(row) for row in running),
            queue=tuple(job_from_row(row) for row in queue),
            failures=tuple(job_from_row(row) for row in failures),
            finished=finished, bytes_done=int(bytes_done), errors_by_code=errors,
        )

    def on_new_work(self, callback: Callable[[], None]) -> None:
        """One host: the daemon that queues work is the one that claims it; never called."""

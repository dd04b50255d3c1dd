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
from nemod.store.sql import Result, SQLStore

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


class SQLiteStore(SQLStore[sqlite3.Connection]):
    """A :class:`nemod.store.base.JobStore` in one SQLite file (thread-safe; several
    processes may open the same file)."""

    CLAIM_SQL = _CLAIM_SQL

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
            self.has_error_codes = int(self._conn.execute("PRAGMA user_version").fetchone()[0]) >= 2
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

    @contextlib.contextmanager
    def _read(self, *, snapshot: bool = False) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; with ``snapshot``, inside one read transaction."""
        with self._lock:
            if not snapshot:
                yield self._conn
                return
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _run(self, handle: sqlite3.Connection, sql: str, params: Mapping[str, Any]) -> Result:
        """See :meth:`SQLStore._run`."""
        cursor = handle.execute(sql, params)
        rows = cursor.fetchall()
        return Result(rows, cursor.rowcount)

    def now(self) -> float:
        """The store's clock (seconds since the epoch)."""
        with self._lock:
            return self._now_locked()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def _roots(self, roots: Collection[str] | None) -> str | None:
        """The keys as a JSON array (the claim reads it with ``json_each``)."""
        return None if roots is None else json.dumps(sorted(roots))

    def on_new_work(self, callback: Callable[[], None]) -> None:
        """One host: the daemon that queues work is the one that claims it; never called."""

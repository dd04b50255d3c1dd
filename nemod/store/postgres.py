"""The PostgreSQL job store: one database shared by every nemod host.

The same :class:`~nemod.store.base.JobStore` contract as the SQLite store, made safe for
many hosts:

- **Migrations** (:data:`MIGRATIONS`) are applied at start inside one transaction that
  holds an advisory lock, so hosts starting at once apply each version exactly once.
- **Claims** are ``UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED LIMIT 1)``: two hosts
  never take the same job and never wait for each other's claim.
- **The clock is the database's**: every lease expiry and ``not_before`` is computed from
  ``clock_timestamp()`` on the server, so hosts with skewed clocks agree on who holds a
  lease (a ``clock`` can be passed in for tests, as for SQLite).
- **Fencing**: every write for a running job names its lease token.
- **Wake-ups**: writes that make a job claimable send ``NOTIFY`` on :data:`CHANNEL`;
  :meth:`PostgresStore.on_new_work` listens on its own connection.
- **Outages**: a connection error or pool timeout becomes
  :class:`~nemod.errors.StoreUnavailableError`; the daemon keeps its running steps and
  retries.

Times are stored as seconds since the epoch (``double precision``) like the SQLite store.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import psycopg
import psycopg_pool
import structlog
from psycopg.rows import dict_row

from nemod.errors import StoreError, StoreUnavailableError, code_from_text
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
from nemod.store.base import redact_url as redact

#: The NOTIFY channel on which hosts tell each other that a job may be claimable.
CHANNEL = "nemod_work"
#: The advisory-lock key under which migrations run (any fixed 64-bit number).
MIGRATION_LOCK = 0x6E656D6F64  # "nemod"

#: (version, statements): applied in order, each once, under :data:`MIGRATION_LOCK`.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        """CREATE TABLE jobs (
            id               BIGSERIAL PRIMARY KEY,
            fingerprint      TEXT             NOT NULL,
            rule             TEXT             NOT NULL,
            root             TEXT             NOT NULL,
            relative         TEXT             NOT NULL,
            size             BIGINT           NOT NULL DEFAULT 0,
            mtime            DOUBLE PRECISION NOT NULL DEFAULT 0,
            state            TEXT             NOT NULL,
            step             TEXT,
            progress         DOUBLE PRECISION,
            attempts         INTEGER          NOT NULL DEFAULT 0,
            lease_owner      TEXT,
            lease_token      BIGINT           NOT NULL DEFAULT 0,
            lease_expires_at DOUBLE PRECISION,
            not_before       DOUBLE PRECISION NOT NULL,
            created_at       DOUBLE PRECISION NOT NULL,
            updated_at       DOUBLE PRECISION NOT NULL,
            finished_at      DOUBLE PRECISION,
            outputs          JSONB            NOT NULL DEFAULT '{}',
            error            TEXT,
            error_code       TEXT,
            wait_reason      TEXT,
            UNIQUE (fingerprint, rule)
        )""",
        "CREATE INDEX jobs_claim ON jobs (state, not_before, id)",
        "CREATE INDEX jobs_path ON jobs (root, relative)",
        "CREATE INDEX jobs_updated ON jobs (updated_at)",
        """CREATE TABLE side_effects (
            fingerprint TEXT             NOT NULL,
            rule        TEXT             NOT NULL,
            key         TEXT             NOT NULL,
            remote_id   TEXT,
            recorded_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (fingerprint, rule, key)
        )""",
    )),
    # The jobs page (:meth:`PostgresStore.page`): newest first within a state, folder or rule.
    (2, (
        "CREATE INDEX jobs_page_state ON jobs (state, id)",
        "CREATE INDEX jobs_page_root ON jobs (root, id)",
        "CREATE INDEX jobs_page_rule ON jobs (rule, id)",
    )),
)

#: The jobs page's filters: (parameter, the clause it adds when given).
_PAGE_CLAUSES = (
    ("state", "state = %(state)s"),
    ("root", "root = %(root)s"),
    ("rule", "rule = %(rule)s"),
    ("search", "relative ILIKE %(search)s ESCAPE '\\'"),
    ("since", "created_at >= %(since)s"),
    ("before", "id < %(before)s"),
)

_NOW_SQL = "SELECT extract(epoch FROM clock_timestamp())::float8 AS now"

_CLAIM_SQL = """
UPDATE jobs SET
    state = 'running', lease_owner = %(worker)s, lease_token = jobs.lease_token + 1,
    lease_expires_at = %(now)s + %(lease)s, attempts = jobs.attempts + 1, updated_at = %(now)s,
    progress = NULL
FROM (
    SELECT id FROM jobs
    WHERE ((state IN ('queued', 'waiting') AND not_before <= %(now)s)
           OR (state = 'running' AND lease_expires_at <= %(now)s))
      AND (%(roots)s::text[] IS NULL OR root = ANY(%(roots)s::text[]))
    ORDER BY not_before, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
) AS next
WHERE jobs.id = next.id
RETURNING jobs.*
"""

_NOTIFY_SQL = f"SELECT pg_notify('{CHANNEL}', '')"



Cursor = psycopg.Cursor[dict[str, Any]]


class PostgresStore:
    """A :class:`nemod.store.base.JobStore` in a PostgreSQL database (thread-safe; any
    number of processes and hosts may open the same database).

    ``url`` is a libpq connection string or ``postgresql://`` URL; ``clock`` replaces the
    database's clock (tests); ``pool_size`` bounds this process's connections;
    ``connect_timeout`` is how long an operation waits for a connection before raising
    :class:`StoreUnavailableError`. Opening applies pending migrations (unless
    ``migrate`` is False: readers such as ``nemod status``); raises
    StoreUnavailableError when the database cannot be reached and StoreError when its
    schema is newer than this nemod.
    """

    def __init__(
        self, url: str, *, clock: Callable[[], float] | None = None, pool_size: int = 4,
        connect_timeout: float = 5.0, migrate: bool = True,
    ) -> None:
        self.url = url
        self.display = redact(url)
        self._clock = clock
        self._connect_timeout = max(1, int(connect_timeout))  # libpq takes whole seconds
        self._stop = threading.Event()
        self._listeners: list[threading.Thread] = []
        self._log = structlog.get_logger("nemod.store")
        # reconnect_timeout: the pool's own reconnection backs off exponentially, which
        # after a 40 s outage left it 18 s behind the database; giving up after one
        # connect_timeout lets the next caller try again at once (0.01 s after the restart).
        # No check= on checkout: it costs a round trip per call (per-job store time
        # 20 ms → 4 ms); a connection broken by a restart fails once, is discarded, and
        # the caller retries (StoreUnavailableError).
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[dict[str, Any]]] = psycopg_pool.ConnectionPool(
            url, min_size=1, max_size=max(1, pool_size), open=False, timeout=connect_timeout,
            kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": self._connect_timeout},
            name="nemod-store", reconnect_timeout=connect_timeout,
            connection_class=psycopg.Connection[dict[str, Any]],
        )
        self._pool.open(wait=False)
        try:
            if migrate:
                self._migrate()
        except BaseException:
            self._pool.close()
            raise

    # --- plumbing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise StoreUnavailableError(f"the job store {self.display} cannot be reached: {_first_line(exc)}") from exc

    @contextlib.contextmanager
    def _tx(self) -> Iterator[tuple[Cursor, float]]:
        """A transaction, a cursor in it and the store's time (read inside it)."""
        with self._connection() as conn, conn.transaction(), conn.cursor() as cursor:
            yield cursor, self._now(cursor)

    def _now(self, cursor: Cursor) -> float:
        if self._clock is not None:
            return self._clock()
        row = cursor.execute(_NOW_SQL).fetchone()
        assert row is not None
        return float(row["now"])

    def _query(self, sql: str, params: Mapping[str, Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._connection() as conn:
            return conn.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        with self._tx() as (cursor, now):
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS nemod_schema"
                " (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
            row = cursor.execute("SELECT coalesce(max(version), 0) AS v FROM nemod_schema").fetchone()
            current = int(row["v"]) if row else 0
            latest = MIGRATIONS[-1][0]
            if current > latest:
                raise StoreError(
                    f"the job store {self.display} has schema version {current}; this nemod knows up to {latest}"
                )
            for version, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    cursor.execute(statement)
                cursor.execute("INSERT INTO nemod_schema (version, applied_at) VALUES (%s, %s)", (version, now))
                self._log.info("store_migrated", store=self.display, version=version)

    def schema_version(self) -> int:
        """The newest migration applied to the database."""
        row = self._query("SELECT max(version) AS v FROM nemod_schema")[0]
        return int(row["v"])

    def now(self) -> float:
        """The store's clock (the database server's, in seconds since the epoch)."""
        with self._connection() as conn, conn.cursor() as cursor:
            return self._now(cursor)

    def close(self) -> None:
        """Stop listening and close every connection."""
        self._stop.set()
        for thread in self._listeners:
            thread.join(5)
        self._pool.close()

    # --- the queue ----------------------------------------------------------------------

    def enqueue(
        self, fingerprint: str, rule: str, source: SourceRef, *, size: int = 0, mtime: float = 0.0
    ) -> Job | None:
        """Insert a queued job unless (fingerprint, rule) exists (then return None): hosts
        that see one file through different mounts agree on its fingerprint, so it is one job."""
        with self._tx() as (cursor, now):
            row = cursor.execute(
                """INSERT INTO jobs (fingerprint, rule, root, relative, size, mtime, state,
                                     not_before, created_at, updated_at)
                   VALUES (%s, %s, %s, %s, %s, %s, 'queued', %s, %s, %s)
                   ON CONFLICT (fingerprint, rule) DO NOTHING
                   RETURNING *""",
                (fingerprint, rule, source.root, stored(source.relative), size, mtime, now, now, now),
            ).fetchone()
            if row is not None:
                cursor.execute(_NOTIFY_SQL)
        return job_from_row(row) if row is not None else None

    def claim(
        self, worker: str, *, lease_seconds: float, roots: Collection[str] | None = None
    ) -> Job | None:
        """Take the oldest claimable job (see :meth:`JobStore.claim`), skipping rows other
        hosts are claiming at this moment."""
        only = None if roots is None else sorted(roots)
        with self._tx() as (cursor, now):
            row = cursor.execute(
                _CLAIM_SQL, {"worker": worker, "now": now, "lease": lease_seconds, "roots": only}
            ).fetchone()
        return job_from_row(row) if row is not None else None

    def _fenced(self, sql: str, params: dict[str, Any], *, notify: bool = False) -> bool:
        with self._tx() as (cursor, now):
            cursor.execute(sql, {**params, "now": now})
            changed = cursor.rowcount == 1
            if changed and notify:
                cursor.execute(_NOTIFY_SQL)
        return changed

    def heartbeat(
        self, job_id: int, lease: int, *, lease_seconds: float,
        step: str | None = None, progress: float | None = None,
    ) -> bool:
        """Extend the lease; False when the job was taken over."""
        return self._fenced(
            """UPDATE jobs SET lease_expires_at = %(now)s + %(lease_seconds)s, updated_at = %(now)s,
                   step = coalesce(%(step)s, step), progress = coalesce(%(progress)s, progress)
               WHERE id = %(id)s AND lease_token = %(lease)s AND state = 'running'""",
            {"id": job_id, "lease": lease, "lease_seconds": lease_seconds, "step": step, "progress": progress},
        )

    def complete(self, job_id: int, lease: int, outputs: Mapping[str, str]) -> bool:
        """Mark done with ``outputs``; False when the job was taken over."""
        return self._fenced(
            """UPDATE jobs SET state = 'done', outputs = %(outputs)s, error = NULL, error_code = NULL,
                   wait_reason = NULL, step = NULL, progress = NULL, lease_owner = NULL,
                   lease_expires_at = NULL, updated_at = %(now)s, finished_at = %(now)s
               WHERE id = %(id)s AND lease_token = %(lease)s AND state = 'running'""",
            {"id": job_id, "lease": lease, "outputs": json.dumps(dict(outputs))},
        )

    def fail(
        self, job_id: int, lease: int, error: str, retry_after: float | None = None,
        *, code: str | None = None,
    ) -> bool:
        """Permanent failure, or queued again after ``retry_after`` seconds."""
        params = {"id": job_id, "lease": lease, "error": shown(error), "code": code or code_from_text(error)}
        if retry_after is None:
            return self._fenced(
                """UPDATE jobs SET state = 'failed', error = %(error)s, error_code = %(code)s,
                       wait_reason = NULL, lease_owner = NULL, lease_expires_at = NULL, progress = NULL,
                       updated_at = %(now)s, finished_at = %(now)s
                   WHERE id = %(id)s AND lease_token = %(lease)s AND state = 'running'""",
                params,
            )
        return self._fenced(
            """UPDATE jobs SET state = 'queued', error = %(error)s, error_code = %(code)s,
                   wait_reason = NULL, lease_owner = NULL, lease_expires_at = NULL, progress = NULL,
                   updated_at = %(now)s, not_before = %(now)s + %(delay)s
               WHERE id = %(id)s AND lease_token = %(lease)s AND state = 'running'""",
            {**params, "delay": retry_after},
        )

    def wait(
        self, job_id: int, lease: int, reason: str, delay: float, *, message: str | None = None
    ) -> bool:
        """``waiting`` for ``delay`` seconds; the attempt is given back."""
        return self._fenced(
            """UPDATE jobs SET state = 'waiting', error = %(message)s, wait_reason = %(reason)s,
                   error_code = NULL, lease_owner = NULL, lease_expires_at = NULL, progress = NULL,
                   updated_at = %(now)s, not_before = %(now)s + %(delay)s,
                   attempts = greatest(attempts - 1, 0)
               WHERE id = %(id)s AND lease_token = %(lease)s AND state = 'running'""",
            {"id": job_id, "lease": lease, "reason": reason, "delay": delay, "message": shown(message or reason)},
        )

    def release(self, job_id: int, lease: int) -> bool:
        """Back to ``queued`` at its old place in line; the attempt is given back."""
        return self._fenced(
            """UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL,
                   progress = NULL, updated_at = %(now)s, attempts = greatest(attempts - 1, 0)
               WHERE id = %(id)s AND lease_token = %(lease)s AND state = 'running'""",
            {"id": job_id, "lease": lease}, notify=True,
        )

    def expire_lease(self, job_id: int, lease: int) -> bool:
        """Make a running job claimable now (its owner is dead)."""
        return self._fenced(
            """UPDATE jobs SET lease_expires_at = %(now)s, updated_at = %(now)s
               WHERE id = %(id)s AND lease_token = %(lease)s AND state = 'running'""",
            {"id": job_id, "lease": lease}, notify=True,
        )

    def cancel(self, job_id: int, reason: str) -> bool:
        """Fail a queued or waiting job now (see :meth:`JobStore.cancel`): one UPDATE, so a
        host claiming the row at this moment either takes it first (False here) or skips it."""
        with self._tx() as (cursor, now):
            cursor.execute(
                """UPDATE jobs SET state = 'failed', error = %(reason)s, error_code = %(code)s,
                       wait_reason = NULL, step = NULL, progress = NULL, lease_owner = NULL,
                       lease_expires_at = NULL, updated_at = %(now)s, finished_at = %(now)s
                   WHERE id = %(id)s AND state IN ('queued', 'waiting')""",
                {"id": job_id, "reason": shown(reason), "code": CANCELLED_CODE, "now": now},
            )
            return cursor.rowcount == 1

    # --- the side-effect ledger ---------------------------------------------------------

    def record_side_effect(self, job: Job, key: str, remote_id: str | None = None) -> None:
        """Record ``key`` for (fingerprint, rule); a known remote id is never erased."""
        with self._tx() as (cursor, now):
            cursor.execute(
                """INSERT INTO side_effects (fingerprint, rule, key, remote_id, recorded_at)
                   VALUES (%s, %s, %s, %s, %s)
                   ON CONFLICT (fingerprint, rule, key) DO UPDATE SET
                       remote_id = coalesce(excluded.remote_id, side_effects.remote_id),
                       recorded_at = excluded.recorded_at""",
                (job.fingerprint, job.rule, key, None if remote_id is None else stored(remote_id), now),
            )

    def side_effect(self, job: Job, key: str) -> SideEffect | None:
        """The recorded side effect ``key`` of the job's (fingerprint, rule), or None."""
        rows = self._query(
            "SELECT key, remote_id FROM side_effects WHERE fingerprint = %s AND rule = %s AND key = %s",
            (job.fingerprint, job.rule, key),
        )
        if not rows:
            return None
        remote = rows[0]["remote_id"]
        return SideEffect(rows[0]["key"], None if remote is None else restored(remote))

    # --- queries ------------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        rows = self._query("SELECT * FROM jobs WHERE id = %s", (job_id,))
        return job_from_row(rows[0]) if rows else None

    def find(self, fingerprint: str, rule: str) -> Job | None:
        """The job for (fingerprint, rule), or None."""
        rows = self._query("SELECT * FROM jobs WHERE fingerprint = %s AND rule = %s", (fingerprint, rule))
        return job_from_row(rows[0]) if rows else None

    def known(self, source: SourceRef, size: int, mtime: float) -> bool:
        """True when some job has this path, size and mtime."""
        return bool(self._query(
            "SELECT 1 FROM jobs WHERE root = %s AND relative = %s AND size = %s AND mtime = %s LIMIT 1",
            (source.root, stored(source.relative), size, mtime),
        ))

    def jobs(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """Jobs, most recently updated first."""
        if state is None:
            rows = self._query("SELECT * FROM jobs ORDER BY updated_at DESC, id DESC LIMIT %s", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM jobs WHERE state = %s ORDER BY updated_at DESC, id DESC LIMIT %s",
                (state.value, limit),
            )
        return [job_from_row(row) for row in rows]

    def page(
        self, *, state: JobState | None = None, root: str | None = None, rule: str | None = None,
        search: str | None = None, since: float | None = None, before_id: int | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """Newest first, keyset on the id (see :meth:`JobStore.page`; ``ILIKE`` folds letters
        as the database's ``LC_CTYPE`` does)."""
        params = page_filters(state, root, rule, search, since, before_id)
        clauses = " AND ".join(clause for name, clause in _PAGE_CLAUSES if name in params) or "TRUE"
        rows = self._query(
            f"SELECT * FROM jobs WHERE {clauses} ORDER BY id DESC LIMIT %(limit)s",  # noqa: S608 - fixed fragments
            {**params, "limit": limit},
        )
        return [job_from_row(row) for row in rows]

    def counts(self) -> dict[JobState, int]:
        """Jobs per state."""
        counts = dict.fromkeys(JobState, 0)
        for row in self._query("SELECT state, count(*) AS n FROM jobs GROUP BY state"):
            counts[JobState(row["state"])] = int(row["n"])
        return counts

    def retry(self, job_id: int | None = None) -> int:
        """Queue failed jobs again with attempts reset; returns how many."""
        where = "state = 'failed'" + (" AND id = %(id)s" if job_id is not None else "")
        with self._tx() as (cursor, now):
            cursor.execute(
                f"""UPDATE jobs SET state = 'queued', attempts = 0, error = NULL, error_code = NULL,
                        not_before = %(now)s, updated_at = %(now)s, finished_at = NULL, step = NULL
                    WHERE {where}""",  # noqa: S608 - one of two literals
                {"now": now, "id": job_id},
            )
            count = cursor.rowcount
            if count:
                cursor.execute(_NOTIFY_SQL)
        return count

    def forget(self, *, fingerprint: str | None = None, source: SourceRef | None = None) -> int:
        """Delete a file's jobs and ledger rows (not running ones); returns how many jobs."""
        clauses, params = [], {}
        if fingerprint is not None:
            clauses.append("fingerprint = %(fingerprint)s")
            params["fingerprint"] = fingerprint
        if source is not None:
            clauses.append("(root = %(root)s AND relative = %(relative)s)")
            params.update(root=source.root, relative=stored(source.relative))
        if not clauses:
            return 0
        where = f"({' OR '.join(clauses)}) AND state <> 'running'"
        with self._tx() as (cursor, _):
            doomed = cursor.execute(
                f"DELETE FROM jobs WHERE {where} RETURNING fingerprint, rule", params  # noqa: S608
            ).fetchall()
            for row in doomed:
                cursor.execute(
                    "DELETE FROM side_effects WHERE fingerprint = %s AND rule = %s", (row["fingerprint"], row["rule"])
                )
        return len(doomed)

    def rename_folder(self, old: str, new: str) -> int:
        """See :meth:`nemod.store.base.JobStore.rename_folder`."""
        with self._tx() as (cursor, _):
            cursor.execute("UPDATE jobs SET root = %s WHERE root = %s", (new, old))
            return cursor.rowcount

    def prune(self, older_than: float) -> int:
        """See :meth:`nemod.store.base.JobStore.prune`."""
        with self._tx() as (cursor, now):
            cutoff = {"cutoff": now - older_than}
            cursor.execute(
                """DELETE FROM side_effects USING jobs
                   WHERE jobs.fingerprint = side_effects.fingerprint AND jobs.rule = side_effects.rule
                     AND jobs.state IN ('done', 'failed') AND jobs.finished_at IS NOT NULL
                     AND jobs.finished_at < %(cutoff)s""",
                cutoff,
            )
            ledger = cursor.rowcount
            cursor.execute(
                "DELETE FROM jobs WHERE state = 'failed' AND finished_at IS NOT NULL AND finished_at < %(cutoff)s",
                cutoff,
            )
            jobs = cursor.rowcount
            cursor.execute(
                """UPDATE jobs SET error = NULL, error_code = NULL WHERE state = 'done'
                   AND finished_at IS NOT NULL AND finished_at < %(cutoff)s AND error IS NOT NULL""",
                cutoff,
            )
        return ledger + jobs

    # --- status -------------------------------------------------------------------------

    def summary(self, *, queue_limit: int = 50, failure_limit: int = 10) -> StoreSummary:
        """See :meth:`nemod.store.base.JobStore.summary` (one snapshot: a repeatable-read
        transaction)."""
        with self._connection() as conn, conn.transaction(), conn.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            folders: dict[str, dict[JobState, int]] = {}
            for row in cursor.execute("SELECT root, state, count(*) AS n FROM jobs GROUP BY root, state"):
                folders.setdefault(row["root"], dict.fromkeys(JobState, 0))[JobState(row["state"])] = int(row["n"])
            running = cursor.execute(
                "SELECT * FROM jobs WHERE state = 'running' ORDER BY updated_at DESC, id"
            ).fetchall()
            queue = cursor.execute(
                "SELECT * FROM jobs WHERE state IN ('queued', 'waiting') ORDER BY not_before, id LIMIT %s",
                (queue_limit,),
            ).fetchall()
            failures = cursor.execute(
                """SELECT * FROM jobs WHERE state = 'failed'
                   ORDER BY coalesce(finished_at, updated_at) DESC, id DESC LIMIT %s""",
                (failure_limit,),
            ).fetchall()
            finished = {
                JobState(row["state"]): (int(row["n"]), float(row["seconds"] or 0.0))
                for row in cursor.execute(
                    """SELECT state, count(*) AS n, sum(finished_at - created_at) AS seconds
                       FROM jobs WHERE state IN ('done', 'failed') AND finished_at IS NOT NULL
                       GROUP BY state"""
                )
            }
            done_row = cursor.execute("SELECT coalesce(sum(size), 0) AS n FROM jobs WHERE state = 'done'").fetchone()
            errors = {
                str(row["code"]): int(row["n"])
                for row in cursor.execute(
                    "SELECT coalesce(error_code, 'other') AS code, count(*) AS n FROM jobs"
                    " WHERE state = 'failed' GROUP BY 1"
                )
            }
        return StoreSummary(
            folders=folders,
            running=tuple(job_from_row(row) for row in running),
            queue=tuple(job_from_row(row) for row in queue),
            failures=tuple(job_from_row(row) for row in failures),
            finished=finished, bytes_done=int(done_row["n"]) if done_row else 0, errors_by_code=errors,
        )

    # --- wake-ups -----------------------------------------------------------------------

    def on_new_work(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on every NOTIFY on :data:`CHANNEL` (and once after a lost
        connection comes back, since notifications sent meanwhile are lost), from a thread
        with its own connection; it ends with :meth:`close`."""
        thread = threading.Thread(target=self._listen, args=(callback,), name="nemod-store-listen", daemon=True)
        self._listeners.append(thread)
        thread.start()

    def _listen(self, callback: Callable[[], None]) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=self._connect_timeout) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    delay = 0.5
                    callback()  # whatever was queued while we were not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            callback()
            except psycopg.Error as exc:
                self._log.warning("store_listen_lost", store=self.display, error=_first_line(exc), retry_in=delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return redact(text.splitlines()[0]) if text else type(error).__name__

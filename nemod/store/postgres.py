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
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import psycopg
import psycopg_pool
import structlog
from psycopg.rows import dict_row

from nemod.errors import StoreError, StoreUnavailableError
from nemod.store.base import redact_url as redact
from nemod.store.sql import Result, SQLStore, pyformat

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

_NOW_SQL = "SELECT extract(epoch FROM clock_timestamp())::float8 AS now"

_CLAIM_SQL = """
UPDATE jobs SET
    state = 'running', lease_owner = :worker, lease_token = jobs.lease_token + 1,
    lease_expires_at = :now + :lease, attempts = jobs.attempts + 1, updated_at = :now,
    progress = NULL
FROM (
    SELECT id FROM jobs
    WHERE ((state IN ('queued', 'waiting') AND not_before <= :now)
           OR (state = 'running' AND lease_expires_at <= :now))
      AND (:roots::text[] IS NULL OR root = ANY(:roots::text[]))
    ORDER BY not_before, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
) AS next
WHERE jobs.id = next.id
RETURNING jobs.*
"""

_NOTIFY_SQL = f"SELECT pg_notify('{CHANNEL}', '')"

Cursor = psycopg.Cursor[dict[str, Any]]


class PostgresStore(SQLStore[Cursor]):
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

    CLAIM_SQL = _CLAIM_SQL
    LIKE = "ILIKE"

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

    @contextlib.contextmanager
    def _read(self, *, snapshot: bool = False) -> Iterator[Cursor]:
        """A cursor; with ``snapshot``, in a repeatable-read, read-only transaction."""
        with self._connection() as conn:
            if not snapshot:
                with conn.cursor() as cursor:
                    yield cursor
                return
            with conn.transaction(), conn.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield cursor

    def _run(self, handle: Cursor, sql: str, params: Mapping[str, Any]) -> Result:
        """See :meth:`SQLStore._run`."""
        handle.execute(pyformat(sql), params)
        rows = handle.fetchall() if handle.description is not None else []
        return Result(rows, handle.rowcount)

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
        row = self._query("SELECT max(version) AS v FROM nemod_schema", {})[0]
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

    def _roots(self, roots: Collection[str] | None) -> list[str] | None:
        """The keys as a list (a ``text[]`` for ``ANY``)."""
        return None if roots is None else sorted(roots)

    def _work_ready(self, handle: Cursor) -> None:
        """``NOTIFY`` on :data:`CHANNEL` (delivered when the transaction commits)."""
        handle.execute(_NOTIFY_SQL)

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

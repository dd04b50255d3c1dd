"""What the SQLite and PostgreSQL job stores share: every statement of the
:class:`~nemod.store.base.JobStore` contract that both databases run alike, written once
(``:name`` parameters), and the methods that run them.

A store supplies its connections and transactions (:meth:`SQLStore._tx`,
:meth:`SQLStore._read`), how one statement runs (:meth:`SQLStore._run`, where
PostgreSQL turns ``:name`` into ``%(name)s``), its claim statement (the one statement
the two databases write differently) and the form of its ``roots`` parameter
(:meth:`SQLStore._roots`), its clock, and what tells other hosts that work is ready
(:meth:`SQLStore._work_ready`; nothing for SQLite, ``NOTIFY`` for PostgreSQL).
"""

from __future__ import annotations

import abc
import contextlib
import functools
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from nemod.errors import code_from_text
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

#: What a store's statements run on: a connection (SQLite) or a cursor (PostgreSQL).
Handle = TypeVar("Handle")

#: Only a job still held under the caller's lease may change (fencing).
_FENCE = "WHERE id = :id AND lease_token = :lease AND state = 'running'"
#: The columns a job that leaves ``running`` clears.
_LET_GO = "lease_owner = NULL, lease_expires_at = NULL, progress = NULL, updated_at = :now"
#: Give the attempt back (a wait or a release is not a try); SQLite has no greatest().
_GIVE_BACK = "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END"

_ENQUEUE = """INSERT INTO jobs (fingerprint, rule, root, relative, size, mtime, state,
                                not_before, created_at, updated_at)
              VALUES (:fingerprint, :rule, :root, :relative, :size, :mtime, 'queued', :now, :now, :now)
              ON CONFLICT (fingerprint, rule) DO NOTHING
              RETURNING *"""
_HEARTBEAT = f"""UPDATE jobs SET lease_expires_at = :now + :lease_seconds, updated_at = :now,
                     step = coalesce(:step, step), progress = coalesce(:progress, progress)
                 {_FENCE}"""
_COMPLETE = f"""UPDATE jobs SET state = 'done', outputs = :outputs, error = NULL, error_code = NULL,
                    wait_reason = NULL, step = NULL, finished_at = :now, {_LET_GO}
                {_FENCE}"""
_FAIL = f"""UPDATE jobs SET state = 'failed', error = :error, error_code = :code, wait_reason = NULL,
                finished_at = :now, {_LET_GO}
            {_FENCE}"""
_FAIL_RETRY = f"""UPDATE jobs SET state = 'queued', error = :error, error_code = :code, wait_reason = NULL,
                      not_before = :now + :delay, {_LET_GO}
                  {_FENCE}"""
_WAIT = f"""UPDATE jobs SET state = 'waiting', error = :message, wait_reason = :reason, error_code = NULL,
                not_before = :now + :delay, {_GIVE_BACK}, {_LET_GO}
            {_FENCE}"""
_RELEASE = f"UPDATE jobs SET state = 'queued', {_GIVE_BACK}, {_LET_GO} {_FENCE}"
_EXPIRE = f"UPDATE jobs SET lease_expires_at = :now, updated_at = :now {_FENCE}"
_CANCEL = f"""UPDATE jobs SET state = 'failed', error = :reason, error_code = :code, wait_reason = NULL,
                  step = NULL, finished_at = :now, {_LET_GO}
              WHERE id = :id AND state IN ('queued', 'waiting')"""
_RECORD_EFFECT = """INSERT INTO side_effects (fingerprint, rule, key, remote_id, recorded_at)
                    VALUES (:fingerprint, :rule, :key, :remote_id, :now)
                    ON CONFLICT (fingerprint, rule, key) DO UPDATE SET
                        remote_id = coalesce(excluded.remote_id, side_effects.remote_id),
                        recorded_at = excluded.recorded_at"""
_SIDE_EFFECT = """SELECT key, remote_id FROM side_effects
                  WHERE fingerprint = :fingerprint AND rule = :rule AND key = :key"""
_SIDE_EFFECTS = "SELECT key, remote_id FROM side_effects WHERE fingerprint = :fingerprint AND rule = :rule"
_GET = "SELECT * FROM jobs WHERE id = :id"
_FIND = "SELECT * FROM jobs WHERE fingerprint = :fingerprint AND rule = :rule"
_KNOWN = """SELECT 1 FROM jobs WHERE root = :root AND relative = :relative AND size = :size
            AND mtime = :mtime LIMIT 1"""
_JOBS = "SELECT * FROM jobs ORDER BY updated_at DESC, id DESC LIMIT :limit"
_JOBS_IN_STATE = "SELECT * FROM jobs WHERE state = :state ORDER BY updated_at DESC, id DESC LIMIT :limit"
_COUNTS = "SELECT state, count(*) AS n FROM jobs GROUP BY state"
_RETRY_ALL = """UPDATE jobs SET state = 'queued', attempts = 0, error = NULL, error_code = NULL,
                    not_before = :now, updated_at = :now, finished_at = NULL, step = NULL
                WHERE state = 'failed'"""
#: One job (by its primary key, so the lookup stays an index lookup).
_RETRY_ONE = f"{_RETRY_ALL} AND id = :id"
_FORGET_JOBS = "DELETE FROM jobs WHERE ({which}) AND state <> 'running' RETURNING fingerprint, rule"
_FORGET_EFFECTS = "DELETE FROM side_effects WHERE fingerprint = :fingerprint AND rule = :rule"
_RENAME_FOLDER = "UPDATE jobs SET root = :new WHERE root = :old"
_PRUNE = (
    """DELETE FROM side_effects WHERE EXISTS (SELECT 1 FROM jobs
           WHERE jobs.fingerprint = side_effects.fingerprint AND jobs.rule = side_effects.rule
             AND jobs.state IN ('done', 'failed') AND jobs.finished_at IS NOT NULL
             AND jobs.finished_at < :cutoff)""",
    "DELETE FROM jobs WHERE state = 'failed' AND finished_at IS NOT NULL AND finished_at < :cutoff",
    # Kept, not counted: a done job's old warnings.
    """UPDATE jobs SET error = NULL, error_code = NULL WHERE state = 'done'
       AND finished_at IS NOT NULL AND finished_at < :cutoff AND error IS NOT NULL""",
)
_SUMMARY_FOLDERS = "SELECT root, state, count(*) AS n FROM jobs GROUP BY root, state"
_SUMMARY_RUNNING = "SELECT * FROM jobs WHERE state = 'running' ORDER BY updated_at DESC, id"
_SUMMARY_QUEUE = "SELECT * FROM jobs WHERE state IN ('queued', 'waiting') ORDER BY not_before, id LIMIT :limit"
_SUMMARY_FAILURES = """SELECT * FROM jobs WHERE state = 'failed'
                       ORDER BY coalesce(finished_at, updated_at) DESC, id DESC LIMIT :limit"""
_SUMMARY_FINISHED = """SELECT state, count(*) AS n, sum(finished_at - created_at) AS seconds
                       FROM jobs WHERE state IN ('done', 'failed') AND finished_at IS NOT NULL
                       GROUP BY state"""
_SUMMARY_BYTES = "SELECT coalesce(sum(size), 0) AS n FROM jobs WHERE state = 'done'"
_SUMMARY_CODES = """SELECT coalesce(error_code, 'other') AS code, count(*) AS n FROM jobs
                    WHERE state = 'failed' GROUP BY 1"""
#: A store of SQLite schema 1 has no ``error_code``: its codes are read from the text.
_SUMMARY_ERRORS = "SELECT error, count(*) AS n FROM jobs WHERE state = 'failed' GROUP BY error"


@dataclass(frozen=True)
class Result:
    """What one statement returned: its rows (empty for a statement without any) and how
    many rows it changed."""

    rows: list[Any]
    rowcount: int


@functools.lru_cache(maxsize=256)
def pyformat(sql: str) -> str:
    """``sql`` with ``:name`` parameters as ``%(name)s`` (psycopg's style); a literal ``%``
    doubled. ``::type`` casts are left alone."""
    return re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", r"%(\1)s", sql.replace("%", "%%"))


class SQLStore(abc.ABC, Generic[Handle]):
    """The :class:`~nemod.store.base.JobStore` methods both SQL stores share."""

    #: The claim (parameters ``worker``, ``now``, ``lease``, ``roots``; returns the row).
    CLAIM_SQL: ClassVar[str]
    #: The operator of the jobs page's search: ``LIKE`` or ``ILIKE``.
    LIKE: ClassVar[str] = "LIKE"
    #: Whether the store has ``error_code`` (False: an old SQLite file read as it is).
    has_error_codes: bool = True

    # --- what a store supplies ----------------------------------------------------------

    @abc.abstractmethod
    def _tx(self) -> contextlib.AbstractContextManager[tuple[Handle, float]]:
        """A write transaction and the store's time inside it."""

    @abc.abstractmethod
    def _read(self, *, snapshot: bool = False) -> contextlib.AbstractContextManager[Handle]:
        """Something to read through; with ``snapshot``, one consistent view of the store."""

    @abc.abstractmethod
    def _run(self, handle: Handle, sql: str, params: Mapping[str, Any]) -> Result:
        """Run one statement of this module (``:name`` parameters) on ``handle``: its
        :class:`Result`. Raises the database's error (or StoreUnavailableError)."""

    @abc.abstractmethod
    def _roots(self, roots: Collection[str] | None) -> object:
        """The claim's ``roots`` parameter for these watch-folder keys (None: any)."""

    def _work_ready(self, handle: Handle) -> None:
        """Tell other hosts that a job may be claimable (inside the transaction)."""

    # --- plumbing -----------------------------------------------------------------------

    def _query(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        """The rows of one read-only statement."""
        with self._read() as handle:
            return self._run(handle, sql, params).rows

    def _fenced(self, sql: str, params: Mapping[str, Any], *, notify: bool = False) -> bool:
        """Run one write (``now`` added to ``params``) in its own transaction: True when it
        changed exactly one row (a fenced write that still held its lease); ``notify``
        then tells other hosts."""
        with self._tx() as (handle, now):
            changed = self._run(handle, sql, {**params, "now": now}).rowcount == 1
            if changed and notify:
                self._work_ready(handle)
        return changed

    # --- the queue ----------------------------------------------------------------------

    def enqueue(
        self, fingerprint: str, rule: str, source: SourceRef, *, size: int = 0, mtime: float = 0.0
    ) -> Job | None:
        """Insert a queued job unless (fingerprint, rule) exists (then return None): hosts
        that see one file through different mounts agree on its fingerprint, so it is one job."""
        with self._tx() as (handle, now):
            rows = self._run(handle, _ENQUEUE, {
                "fingerprint": fingerprint, "rule": rule, "root": source.root,
                "relative": stored(source.relative), "size": size, "mtime": mtime, "now": now,
            }).rows
            if rows:
                self._work_ready(handle)
        return job_from_row(rows[0]) if rows else None

    def claim(
        self, worker: str, *, lease_seconds: float, roots: Collection[str] | None = None
    ) -> Job | None:
        """Take the oldest claimable job (see :meth:`JobStore.claim`)."""
        with self._tx() as (handle, now):
            rows = self._run(handle, self.CLAIM_SQL, {
                "worker": worker, "now": now, "lease": lease_seconds, "roots": self._roots(roots),
            }).rows
        return job_from_row(rows[0]) if rows else None

    def heartbeat(
        self, job_id: int, lease: int, *, lease_seconds: float,
        step: str | None = None, progress: float | None = None,
    ) -> bool:
        """Extend the lease; False when the job was taken over."""
        return self._fenced(_HEARTBEAT, {"id": job_id, "lease": lease, "lease_seconds": lease_seconds,
                                         "step": step, "progress": progress})

    def complete(self, job_id: int, lease: int, outputs: Mapping[str, str]) -> bool:
        """Mark done with ``outputs``; False when the job was taken over."""
        return self._fenced(_COMPLETE, {"id": job_id, "lease": lease, "outputs": json.dumps(dict(outputs))})

    def fail(
        self, job_id: int, lease: int, error: str, retry_after: float | None = None,
        *, code: str | None = None,
    ) -> bool:
        """Permanent failure, or queued again after ``retry_after`` seconds."""
        params = {"id": job_id, "lease": lease, "error": shown(error), "code": code or code_from_text(error)}
        if retry_after is None:
            return self._fenced(_FAIL, params)
        return self._fenced(_FAIL_RETRY, {**params, "delay": retry_after})

    def wait(
        self, job_id: int, lease: int, reason: str, delay: float, *, message: str | None = None
    ) -> bool:
        """``waiting`` for ``delay`` seconds; the attempt is given back."""
        return self._fenced(_WAIT, {"id": job_id, "lease": lease, "reason": reason, "delay": delay,
                                    "message": shown(message or reason)})

    def release(self, job_id: int, lease: int) -> bool:
        """Back to ``queued`` at its old place in line; the attempt is given back."""
        return self._fenced(_RELEASE, {"id": job_id, "lease": lease}, notify=True)

    def expire_lease(self, job_id: int, lease: int) -> bool:
        """Make a running job claimable now (its owner is dead)."""
        return self._fenced(_EXPIRE, {"id": job_id, "lease": lease}, notify=True)

    def cancel(self, job_id: int, reason: str) -> bool:
        """Fail a queued or waiting job now (see :meth:`JobStore.cancel`): one UPDATE, so a
        worker claiming the row at this moment either takes it first (False here) or skips it."""
        return self._fenced(_CANCEL, {"id": job_id, "reason": shown(reason), "code": CANCELLED_CODE})

    # --- the side-effect ledger ---------------------------------------------------------

    def record_side_effect(self, job: Job, key: str, remote_id: str | None = None) -> None:
        """Record ``key`` for (fingerprint, rule); a known remote id is never erased."""
        with self._tx() as (handle, now):
            self._run(handle, _RECORD_EFFECT, {
                "fingerprint": job.fingerprint, "rule": job.rule, "key": key, "now": now,
                "remote_id": None if remote_id is None else stored(remote_id),
            })

    def side_effect(self, job: Job, key: str) -> SideEffect | None:
        """The recorded side effect ``key`` of the job's (fingerprint, rule), or None."""
        rows = self._query(_SIDE_EFFECT, {"fingerprint": job.fingerprint, "rule": job.rule, "key": key})
        if not rows:
            return None
        remote = rows[0]["remote_id"]
        return SideEffect(rows[0]["key"], None if remote is None else restored(remote))

    def side_effects(self, job: Job) -> list[SideEffect]:
        """Every side effect recorded for the job's (fingerprint, rule), by key."""
        rows = self._query(_SIDE_EFFECTS, {"fingerprint": job.fingerprint, "rule": job.rule})
        effects = [SideEffect(row["key"], None if row["remote_id"] is None else restored(row["remote_id"]))
                   for row in rows]
        return sorted(effects, key=lambda effect: effect.key)  # by code point, as both databases may not

    # --- queries ------------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        """The job with this id, or None."""
        rows = self._query(_GET, {"id": job_id})
        return job_from_row(rows[0]) if rows else None

    def find(self, fingerprint: str, rule: str) -> Job | None:
        """The job for (fingerprint, rule), or None."""
        rows = self._query(_FIND, {"fingerprint": fingerprint, "rule": rule})
        return job_from_row(rows[0]) if rows else None

    def known(self, source: SourceRef, size: int, mtime: float) -> bool:
        """True when some job has this path, size and mtime."""
        return bool(self._query(_KNOWN, {"root": source.root, "relative": stored(source.relative),
                                         "size": size, "mtime": mtime}))

    def jobs(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """Jobs, most recently updated first."""
        if state is None:
            rows = self._query(_JOBS, {"limit": limit})
        else:
            rows = self._query(_JOBS_IN_STATE, {"state": state.value, "limit": limit})
        return [job_from_row(row) for row in rows]

    def page(
        self, *, state: JobState | None = None, root: str | None = None, rule: str | None = None,
        search: str | None = None, since: float | None = None, before_id: int | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """Newest first, keyset on the id (see :meth:`JobStore.page`; the search folds
        letters as the store's :attr:`LIKE` does). Works on a read-only store."""
        params = page_filters(state, root, rule, search, since, before_id)
        clauses = {
            "state": "state = :state", "root": "root = :root", "rule": "rule = :rule",
            "search": f"relative {self.LIKE} :search ESCAPE '\\'", "since": "created_at >= :since",
            "before": "id < :before",
        }
        where = " AND ".join(clause for name, clause in clauses.items() if name in params) or "1 = 1"
        rows = self._query(
            f"SELECT * FROM jobs WHERE {where} ORDER BY id DESC LIMIT :limit",
            {**params, "limit": limit},
        )
        return [job_from_row(row) for row in rows]

    def counts(self) -> dict[JobState, int]:
        """Jobs per state."""
        counts = dict.fromkeys(JobState, 0)
        for row in self._query(_COUNTS, {}):
            counts[JobState(row["state"])] = int(row["n"])
        return counts

    def retry(self, job_id: int | None = None) -> int:
        """Queue failed jobs (all, or the one with ``job_id``) again with attempts reset;
        returns how many."""
        with self._tx() as (handle, now):
            if job_id is None:
                count = self._run(handle, _RETRY_ALL, {"now": now}).rowcount
            else:
                count = self._run(handle, _RETRY_ONE, {"now": now, "id": job_id}).rowcount
            if count:
                self._work_ready(handle)
        return count

    def forget(self, *, fingerprint: str | None = None, source: SourceRef | None = None) -> int:
        """Delete a file's jobs and ledger rows (not running ones); returns how many jobs."""
        clauses, params = [], {}
        if fingerprint is not None:
            clauses.append("fingerprint = :fingerprint")
            params["fingerprint"] = fingerprint
        if source is not None:
            clauses.append("(root = :root AND relative = :relative)")
            params.update(root=source.root, relative=stored(source.relative))
        if not clauses:
            return 0
        with self._tx() as (handle, _):
            doomed = self._run(handle, _FORGET_JOBS.format(which=" OR ".join(clauses)), params).rows
            for row in doomed:
                self._run(handle, _FORGET_EFFECTS, {"fingerprint": row["fingerprint"], "rule": row["rule"]})
        return len(doomed)

    def rename_folder(self, old: str, new: str) -> int:
        """See :meth:`nemod.store.base.JobStore.rename_folder`."""
        with self._tx() as (handle, _):
            return self._run(handle, _RENAME_FOLDER, {"old": old, "new": new}).rowcount

    def prune(self, older_than: float) -> int:
        """See :meth:`nemod.store.base.JobStore.prune`."""
        with self._tx() as (handle, now):
            ledger, jobs, _ = (self._run(handle, sql, {"cutoff": now - older_than}).rowcount for sql in _PRUNE)
        return ledger + jobs

    # --- status -------------------------------------------------------------------------

    def summary(self, *, queue_limit: int = 50, failure_limit: int = 10) -> StoreSummary:
        """See :meth:`nemod.store.base.JobStore.summary`: one snapshot of the store (works
        on a read-only store)."""
        with self._read(snapshot=True) as handle:
            def rows(sql: str, **params: Any) -> list[Any]:
                return self._run(handle, sql, params).rows

            folders: dict[str, dict[JobState, int]] = {}
            for row in rows(_SUMMARY_FOLDERS):
                folders.setdefault(row["root"], dict.fromkeys(JobState, 0))[JobState(row["state"])] = int(row["n"])
            running = rows(_SUMMARY_RUNNING)
            queue = rows(_SUMMARY_QUEUE, limit=queue_limit)
            failures = rows(_SUMMARY_FAILURES, limit=failure_limit)
            finished = {JobState(row["state"]): (int(row["n"]), float(row["seconds"] or 0.0))
                        for row in rows(_SUMMARY_FINISHED)}
            bytes_done = int(rows(_SUMMARY_BYTES)[0]["n"])
            errors: dict[str, int] = {}
            if self.has_error_codes:
                errors = {str(row["code"]): int(row["n"]) for row in rows(_SUMMARY_CODES)}
            else:
                for row in rows(_SUMMARY_ERRORS):
                    code = code_from_text(row["error"])
                    errors[code] = errors.get(code, 0) + int(row["n"])
        return StoreSummary(
            folders=folders,
            running=tuple(job_from_row(row) for row in running),
            queue=tuple(job_from_row(row) for row in queue),
            failures=tuple(job_from_row(row) for row in failures),
            finished=finished, bytes_done=bytes_done, errors_by_code=errors,
        )

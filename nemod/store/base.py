"""The job store interface, shared by every implementation (SQLite now, PostgreSQL later).

Rules every implementation keeps (see the design note "The job store"):

- **Once per file, forever**: (fingerprint, rule) is unique; :meth:`JobStore.enqueue`
  does nothing for a pair it already knows.
- **Claims are leases**: :meth:`JobStore.claim` sets an owner, a new increasing
  ``lease_token`` and an expiry from the store's own clock. A job whose lease expired
  is claimable again; there is no reaper.
- **Fencing**: every write made on behalf of a running job names its lease token; a
  write that matches no row means the job was taken over, and the caller stops.
- **Side effects are recorded before they happen** (:meth:`JobStore.record_side_effect`),
  keyed by (fingerprint, rule, key), so a resumed job never repeats a paid call.
- **Paths travel as (watch folder key, relative path)** (:class:`SourceRef`): the key is
  the folder's ``id:`` or its absolute path, and each host resolves it through its config.

Times are seconds since the epoch on the store's clock (floats).
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from nemod.errors import LeaseLostError
from nemod.names import restored

#: The SQLite job database's file name inside ``state_dir`` (the store when ``store:`` is absent).
SQLITE_NAME = "jobs.sqlite3"

#: How much of each end of a file the fingerprint hashes.
FINGERPRINT_SPAN = 1024 * 1024

#: The ``error_code`` of a job a person cancelled before it started (:meth:`JobStore.cancel`).
CANCELLED_CODE = "cancelled"


class JobState(enum.StrEnum):
    """Where a job is. ``running`` jobs also carry the ``step`` they reached."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class SideEffect:
    """A ledger row: ``key`` names the step (e.g. ``session``, ``instruction``, ``render``);
    ``remote_id`` is what the remote side answered (None: sent, answer unknown)."""

    key: str
    remote_id: str | None = None


@dataclass(frozen=True, order=True)
class SourceRef:
    """A source file as (its watch folder's key, path relative to it, with ``/``).

    The key is the folder's ``id:`` (or its absolute path when it has none): each host
    resolves it through its own config (:meth:`nemod.config.Config.locate`), so hosts
    may mount a share at different places.
    """

    root: str
    relative: str


@dataclass(frozen=True)
class Job:
    """One (file, rule) pair and what happened to it.

    ``lease_token`` is the fencing token of the claim that returned this object; pass
    it back on every write made while working on the job.
    """

    id: int
    fingerprint: str
    rule: str
    source: SourceRef
    state: JobState
    size: int = 0
    mtime: float = 0.0
    step: str | None = None
    progress: float | None = None
    attempts: int = 0
    lease_owner: str | None = None
    lease_token: int = 0
    lease_expires_at: float | None = None
    not_before: float = 0.0
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    outputs: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    #: A coarse code of the last failure (an API code such as ``2001``, ``http_503``,
    #: ``other``), kept beside the error text so nothing parses it back out.
    error_code: str | None = None
    #: Why a ``waiting`` job waits (``credits``, ``schedule``, ``unreachable``).
    wait_reason: str | None = None

    @property
    def label(self) -> str:
        """``running:<step>`` for a running job, else the state's name."""
        if self.state is JobState.RUNNING and self.step:
            return f"running:{self.step}"
        return self.state.value

    @property
    def host(self) -> str | None:
        """The host holding (or that last held) the lease: the ``host_id`` part of
        ``lease_owner`` (``host:pid:start``), or None."""
        if not self.lease_owner:
            return None
        return self.lease_owner.rsplit(":", 2)[0]

    @property
    def key(self) -> str:
        """A stable name for the job (log files, scratch folders): ``job-<id>``."""
        return f"job-{self.id}"


@dataclass(frozen=True)
class StoreSummary:
    """What status, metrics and the status page read from a store in one go.

    ``folders``: jobs per state for each watch folder key; ``running``: running jobs, most
    recently updated first; ``queue``: queued and waiting jobs in claim order (at most the
    limit asked); ``failures``: the most recent failed jobs; ``finished``: per final state
    the number of jobs and the sum of their turnaround (created → finished) in seconds;
    ``bytes_done``: source bytes of done jobs; ``errors_by_code``: failed jobs per code.
    """

    folders: Mapping[str, Mapping[JobState, int]]
    running: tuple[Job, ...] = ()
    queue: tuple[Job, ...] = ()
    failures: tuple[Job, ...] = ()
    finished: Mapping[JobState, tuple[int, float]] = field(default_factory=dict)
    bytes_done: int = 0
    errors_by_code: Mapping[str, int] = field(default_factory=dict)

    def counts(self) -> dict[JobState, int]:
        """Jobs per state over every folder (every state present)."""
        totals = dict.fromkeys(JobState, 0)
        for per_state in self.folders.values():
            for state, count in per_state.items():
                totals[state] += count
        return totals


class JobStore(Protocol):
    """What the daemon, the CLI and status reporting need from a job store."""

    def enqueue(
        self, fingerprint: str, rule: str, source: SourceRef, *, size: int = 0, mtime: float = 0.0
    ) -> Job | None:
        """Add a queued job; return None (and change nothing) when (fingerprint, rule) exists."""

    def claim(
        self, worker: str, *, lease_seconds: float, roots: Collection[str] | None = None
    ) -> Job | None:
        """Atomically take the oldest claimable job for ``worker``, or return None.

        ``roots`` limits the claim to jobs of those watch folder keys (a host sharing a
        store takes only jobs of folders it has and can reach); None: any job.

        Claimable: queued or waiting with ``not_before`` reached, or running with an
        expired lease. The claim counts one attempt; the caller decides what to do with a
        job whose attempts exceed its limit (it was interrupted that many times).
        """

    def heartbeat(
        self, job_id: int, lease: int, *, lease_seconds: float,
        step: str | None = None, progress: float | None = None,
    ) -> bool:
        """Extend the lease (and record ``step``/``progress``); False: the job was taken over."""

    def complete(self, job_id: int, lease: int, outputs: Mapping[str, str]) -> bool:
        """Mark the job done with its output paths; False: taken over, report nothing."""

    def fail(
        self, job_id: int, lease: int, error: str, retry_after: float | None = None,
        *, code: str | None = None,
    ) -> bool:
        """Record a failure (``error`` text and its ``code``; None: the code is read from the
        text once, see :func:`nemod.errors.code_from_text`): permanent
        when ``retry_after`` is None, else queued again after ``retry_after`` seconds (on the
        store's clock). False: taken over."""

    def wait(
        self, job_id: int, lease: int, reason: str, delay: float, *, message: str | None = None
    ) -> bool:
        """Put the job in ``waiting`` (``reason`` kept as its wait reason, ``message`` or
        ``reason`` as its text) for ``delay`` seconds without counting the attempt."""

    def release(self, job_id: int, lease: int) -> bool:
        """Give a running job back (graceful stop): queued, attempt not counted."""

    def expire_lease(self, job_id: int, lease: int) -> bool:
        """End a lease now (its owner is known to be dead) so the job is claimable at once."""

    def record_side_effect(self, job: Job, key: str, remote_id: str | None = None) -> None:
        """Record (before it happens) the side effect ``key`` of ``job``, or its remote id
        (once known). A recorded remote id is never replaced by None."""

    def side_effect(self, job: Job, key: str) -> SideEffect | None:
        """The recorded side effect ``key`` of ``job``'s (fingerprint, rule), or None."""

    def side_effects(self, job: Job) -> list[SideEffect]:
        """Every side effect recorded for ``job``'s (fingerprint, rule), by key."""

    def get(self, job_id: int) -> Job | None:
        """The job with this id, or None."""

    def find(self, fingerprint: str, rule: str) -> Job | None:
        """The job for (fingerprint, rule), or None."""

    def known(self, source: SourceRef, size: int, mtime: float) -> bool:
        """True when a job exists for this path with this size and mtime (no need to hash)."""

    def jobs(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """Jobs, most recently updated first, optionally of one state."""

    def page(
        self, *, state: JobState | None = None, root: str | None = None, rule: str | None = None,
        search: str | None = None, since: float | None = None, before_id: int | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """Up to ``limit`` jobs, newest first (id descending), keyset-paged: ``before_id`` is
        the last id of the previous page (None: the first page), so a deep page costs what
        the first does. Every filter is optional: ``state``; ``root`` (a watch folder key);
        ``rule``; ``search``, a case-insensitive substring of the relative path in which
        ``%``, ``_`` and ``\\`` match only themselves (see :func:`like_pattern`; ASCII letters
        fold in every store, other letters as the database's locale folds them); ``since``:
        jobs created (found) at or after this store time."""

    def cancel(self, job_id: int, reason: str) -> bool:
        """Fail a queued or waiting job at once, atomically: ``failed`` with ``reason`` as its
        error and :data:`CANCELLED_CODE` as its code, finished now, so no worker on any
        host claims it and ``retry`` queues it again. False (nothing changed) when the job
        is not queued or waiting: running (stop it through its daemon), finished, unknown."""

    def counts(self) -> dict[JobState, int]:
        """How many jobs are in each state (every state present, zero included)."""

    def summary(self, *, queue_limit: int = 50, failure_limit: int = 10) -> StoreSummary:
        """Everything status reports (see :class:`StoreSummary`), read in one go."""

    def on_new_work(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from any thread) whenever another process or host may have
        made a job claimable, so an idle daemon wakes at once instead of at its next tick.
        A store that cannot tell (one host) never calls it."""

    def retry(self, job_id: int | None = None) -> int:
        """Queue a failed job again (all failed jobs when ``job_id`` is None), attempts reset;
        returns how many were queued."""

    def forget(self, *, fingerprint: str | None = None, source: SourceRef | None = None) -> int:
        """Delete the jobs (and ledger rows) of a file so it is processed again; returns how
        many jobs were deleted. Running jobs are not forgotten."""

    def rename_folder(self, old: str, new: str) -> int:
        """Name the watch folder ``old`` ``new`` in every job (a folder that was given an
        ``id:``); returns how many jobs were renamed. Running jobs are renamed too: only
        the name changes, the lease does not."""

    def prune(self, older_than: float) -> int:
        """Retention: forget the details of jobs finished more than ``older_than`` seconds
        ago (store clock). A done job keeps its (fingerprint, rule) row, so its file is never
        processed twice, but loses its ledger rows and error text; a failed job is deleted
        with its ledger (its source sits in the failed folder beside its ``.error.txt``).
        Returns how many rows (jobs and ledger rows) were removed."""

    def now(self) -> float:
        """The store's clock."""

    def close(self) -> None:
        """Release connections."""


def like_pattern(search: str) -> str:
    """A ``LIKE … ESCAPE '\\'`` pattern matching any text that contains ``search``
    (``%``, ``_`` and the backslash escaped, so they match only themselves)."""
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def page_filters(
    state: JobState | None, root: str | None, rule: str | None, search: str | None,
    since: float | None, before_id: int | None,
) -> dict[str, str | float | int]:
    """The filters given to :meth:`JobStore.page` as query parameters, absent ones left out
    (each store adds a clause per parameter, so its planner can use an index for each):
    ``state``, ``root``, ``rule``, ``search`` (a :func:`like_pattern`), ``since``, ``before``."""
    given: dict[str, str | float | int | None] = {
        "state": None if state is None else state.value, "root": root, "rule": rule,
        "search": None if search is None else like_pattern(search), "since": since, "before": before_id,
    }
    return {name: value for name, value in given.items() if value is not None}


#: Connection-string query parameters that carry secrets (libpq's names).
_SECRET_PARAMETERS = frozenset({"password", "sslpassword", "passfile"})


class Row(Protocol):
    """A ``jobs`` row as either store's driver returns it (``sqlite3.Row``, psycopg's dict)."""

    def __getitem__(self, key: str) -> Any: ...

    def keys(self) -> Any: ...


def job_from_row(row: Row) -> Job:
    """The :class:`Job` of a ``jobs`` row of either store. ``outputs`` may be JSON text or
    already decoded; an un-upgraded SQLite file (read-only by ``nemod status``) has no
    ``error_code`` or ``wait_reason`` column."""
    names = set(row.keys())
    outputs = row["outputs"]
    return Job(
        id=row["id"], fingerprint=row["fingerprint"], rule=row["rule"],
        source=SourceRef(row["root"], restored(row["relative"])), state=JobState(row["state"]),
        size=row["size"], mtime=row["mtime"], step=row["step"], progress=row["progress"],
        attempts=row["attempts"], lease_owner=row["lease_owner"], lease_token=row["lease_token"],
        lease_expires_at=row["lease_expires_at"], not_before=row["not_before"],
        created_at=row["created_at"], updated_at=row["updated_at"], finished_at=row["finished_at"],
        outputs=dict(outputs) if isinstance(outputs, Mapping) else json.loads(outputs or "{}"),
        error=row["error"],
        error_code=row["error_code"] if "error_code" in names else None,
        wait_reason=row["wait_reason"] if "wait_reason" in names else None,
    )


def redact_url(url: str) -> str:
    """``url`` with every secret replaced by ``***`` (for logs, status and errors): the
    password of ``user:password@host`` (up to the last ``@``, as libpq reads it) and
    ``password=``-style query parameters. Text that is not a URL comes back unchanged."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, host = netloc.rsplit("@", 1)
        if ":" in credentials:
            credentials = credentials.split(":", 1)[0] + ":***"
        netloc = f"{credentials}@{host}"
    query = "&".join(
        f"{name}=***" if name.lower() in _SECRET_PARAMETERS else f"{name}={value}" if value or "=" in pair else name
        for pair in parts.query.split("&") if pair
        for name, _, value in [pair.partition("=")]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def fingerprint(path: Path, size: int | None = None, mtime: float | None = None) -> str:
    """``<size>-<mtime seconds>-<blake2b of the first and last MiB>`` of ``path``.

    Whole seconds make the fingerprint agree across mounts with different timestamp
    precision. Raises OSError when the file cannot be read.
    """
    if size is None or mtime is None:
        stat = path.stat()
        size, mtime = stat.st_size, stat.st_mtime
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as handle:
        digest.update(handle.read(FINGERPRINT_SPAN))
        if size > FINGERPRINT_SPAN:
            handle.seek(max(FINGERPRINT_SPAN, size - FINGERPRINT_SPAN), os.SEEK_SET)
            digest.update(handle.read(FINGERPRINT_SPAN))
    return f"{size}-{int(mtime)}-{digest.hexdigest()}"


class StoreLedger:
    """The :class:`nemod.backends.base.Ledger` of one claimed job, kept in the store.

    Recording a side effect *before* it happens is fenced: when the job was taken over,
    :class:`LeaseLostError` is raised and nothing is sent. A remote id is always recorded
    (the call already happened; the next owner must know about it).
    """

    def __init__(self, store: JobStore, job: Job, lease_seconds: float) -> None:
        self._store = store
        self._job = job
        self._lease_seconds = lease_seconds

    def get(self, key: str) -> SideEffect | None:
        """The recorded side effect ``key`` or None."""
        return self._store.side_effect(self._job, key)

    def record(self, key: str, remote_id: str | None = None) -> None:
        """Record ``key`` (raises LeaseLostError before a call when the job was taken over)."""
        if remote_id is None and not self._store.heartbeat(
            self._job.id, self._job.lease_token, lease_seconds=self._lease_seconds
        ):
            raise LeaseLostError(f"{self._job.key} was taken over before {key}")
        self._store.record_side_effect(self._job, key, remote_id)

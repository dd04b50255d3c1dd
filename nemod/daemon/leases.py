"""Leases of the jobs this daemon runs: the running job's handle, its checkpoint (fenced by
the lease token), heartbeats, and taking back jobs of this host's dead processes.

No claim, renewal or loss depends on process memory alone: every check goes to the store
with the job's lease token (the fencing token), so a job taken over by another host or
process is noticed at its next checkpoint or heartbeat and publishes nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

import structlog

from nemod.backends.base import JobContext
from nemod.daemon.identity import owner_is_dead
from nemod.daemon.options import DaemonOptions
from nemod.errors import LeaseLostError, StoppingError, StoreUnavailableError
from nemod.names import shown
from nemod.store.base import Job, JobState, JobStore, StoreLedger


@dataclass
class Active:
    """A job being worked on by a thread of this daemon."""

    job: Job
    context: JobContext
    last_heartbeat: float = 0.0
    step: str | None = None
    progress: float | None = None
    lost: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class Leases:
    """Holds ``owner``'s leases in ``store`` (lengths from ``options``); ``stopping`` is the
    daemon's graceful-stop flag, checked at each job's checkpoints."""

    def __init__(self, store: JobStore, owner: str, options: DaemonOptions, stopping: threading.Event) -> None:
        self.store = store
        self.owner = owner
        self.options = options
        self._stopping = stopping
        self._log = structlog.get_logger("nemod.daemon")

    def persist(self, write: Callable[[], bool], what: str) -> bool:
        """``write()`` (a fenced store write), tried again with backoff (0.5 s doubling to
        10 s) while the store cannot be reached: a running job keeps its finished step and
        waits for the store instead of failing. Gives up (raises StoreUnavailableError) only
        once the daemon is stopping and ``stop_timeout`` has passed."""
        delay, started = 0.5, time.monotonic()
        while True:
            try:
                return write()
            except StoreUnavailableError as exc:
                if self._stopping.is_set() and time.monotonic() - started > self.options.stop_timeout:
                    raise
                self._log.warning("store_unavailable", during=what, error=str(exc), retry_in=delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def reclaim_dead_owners(self) -> None:
        """Expire the leases of this host's processes that no longer run (their jobs are
        claimed again at once instead of when the lease runs out)."""
        for job in self.store.jobs(JobState.RUNNING, limit=10_000):
            if owner_is_dead(job.lease_owner, self.owner) and self.store.expire_lease(job.id, job.lease_token):
                self._log.info("lease_reclaimed", job=job.key, file=shown(job.source.relative), owner=job.lease_owner)

    def claim(self, now: float, roots: Collection[str] | None = None) -> Active | None:
        """Claim the next due job (of the folders ``roots`` only, unless None), or None; its
        context checkpoints against the lease."""
        job = self.store.claim(self.owner, lease_seconds=self.options.lease_seconds, roots=roots)
        if job is None:
            return None
        active = Active(job=job, context=JobContext(), last_heartbeat=now)

        def checkpoint(step: str) -> None:
            active.step = step
            if active.lost or not self.persist(lambda: self.store.heartbeat(
                job.id, job.lease_token, lease_seconds=self.options.lease_seconds, step=step, progress=0.0,
            ), f"checkpoint {step}"):
                self.lose(active)
                raise LeaseLostError(f"{job.key} was taken over")
            if self._stopping.is_set() and step != "publish":
                # Stop before the next expensive step; a finished render is still
                # published (quick) rather than thrown away.
                raise StoppingError(f"stopping before {step}")

        def progress(step: str, fraction: float) -> None:
            active.step, active.progress = step, fraction

        active.context = JobContext(
            ledger=StoreLedger(self.store, job, self.options.lease_seconds), progress=progress, checkpoint=checkpoint,
        )
        return active

    def heartbeat(self, actives: Iterable[Active], now: float) -> None:
        """Renew the leases of ``actives`` that are due; a renewal refused means lost."""
        for active in actives:
            if active.done.is_set() or active.lost or now - active.last_heartbeat < self.options.heartbeat_seconds:
                continue
            active.last_heartbeat = now
            try:
                renewed = self.store.heartbeat(active.job.id, active.job.lease_token,
                                               lease_seconds=self.options.lease_seconds,
                                               step=active.step, progress=active.progress)
            except StoreUnavailableError:
                continue  # not lost: the step runs on; the lease is renewed when the store answers
            if not renewed:
                self.lose(active)

    def lose(self, active: Active) -> None:
        """Fencing: the job was taken over; stop the work, publish nothing."""
        if not active.lost:
            active.lost = True
            self._log.warning("lease_lost", job=active.job.key, file=shown(active.job.source.relative))
        active.context.cancel.set()

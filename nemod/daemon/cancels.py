"""Cancelling a job for a person (the dashboard's button): a job running here is stopped,
a queued or waiting one fails in the store at once; either way it ends ``failed`` with
the reason :data:`CANCELLED` (code ``cancelled``), so ``nemod retry`` runs it again."""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from nemod.config import Config
from nemod.daemon.attempt import locate
from nemod.daemon.disposition import record_failure
from nemod.daemon.leases import Active
from nemod.errors import NemodError
from nemod.store.base import Job, JobState, JobStore

#: The failure reason of a job a person cancelled.
CANCELLED = "cancelled by a person from the dashboard; retry it to run it again."


class Cancels:
    """The jobs of this process a person cancelled, until their attempt ends.

    ``store`` and ``owner`` are the daemon's; ``active`` gives this process's attempt at a
    job (None: not running here); ``config`` the config in force; ``failed`` tells the
    daemon's listeners a job failed; ``wakeup`` is set when an attempt is to be stopped.
    """

    def __init__(self, store: JobStore, owner: str, *, active: Callable[[int], Active | None],
                 config: Callable[[], Config], failed: Callable[[Job], None], wakeup: threading.Event) -> None:
        self.store = store
        self.owner = owner
        self._active = active
        self._config = config
        self._failed = failed
        self._wakeup = wakeup
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._log = structlog.get_logger("nemod.daemon")

    def request(self, job_id: int) -> str:
        """Cancel ``job_id``. A job running in this process is stopped (its ffmpeg killed)
        and fails when its worker ends. A queued or waiting job fails in the store at once
        (:meth:`JobStore.cancel`: no worker on any host takes it, and a restart keeps it
        cancelled) and its source is parked like any failure's (``on_failure``). Returns a
        sentence saying which happened; raises NemodError when the job does not exist, is
        finished, or runs in another process. Safe from any thread."""
        active = self._active(job_id)
        if active is not None and not active.done.is_set():
            return self._stop(job_id, active)
        if self.store.cancel(job_id, CANCELLED):
            job = self.store.get(job_id)
            self._log.info("job_cancelled", job=f"job-{job_id}", running=False)
            if job is not None:
                self._park(job)
                self._failed(job)
            return f"job {job_id} is cancelled and will not start; it shows as failed (cancelled)"
        job = self.store.get(job_id)
        if job is None:
            raise NemodError(f"job {job_id} does not exist")
        if job.state is JobState.RUNNING and job.lease_owner == self.owner:
            # claimed here a moment ago: its worker fails it before it starts, or is stopped
            return self._stop(job_id, self._active(job_id))
        if job.state is JobState.RUNNING:
            raise NemodError(f"job {job_id} is running in another nemod process; cancel it from that one's page")
        raise NemodError(f"job {job_id} is {job.label}; only queued or running jobs can be cancelled")

    def wanted(self, job_id: int) -> bool:
        """True when a person cancelled ``job_id`` (its attempt must not start)."""
        with self._lock:
            return job_id in self._ids

    def take(self, job_id: int) -> bool:
        """True (once) when ``job_id`` was cancelled: its attempt ended and this is its outcome."""
        with self._lock:
            if job_id in self._ids:
                self._ids.discard(job_id)
                return True
            return False

    def _stop(self, job_id: int, active: Active | None) -> str:
        """Mark ``job_id`` cancelled in this process and stop its attempt (when it started)."""
        with self._lock:
            self._ids.add(job_id)
        self._wakeup.set()
        if active is not None:
            active.context.cancel.set()
        self._log.info("job_cancel_requested", job=f"job-{job_id}", running=True)
        return f"job {job_id} is being stopped; it will show as failed (cancelled)"

    def _park(self, job: Job) -> None:
        """Apply the ``on_failure`` policy to a cancelled job's source, as for any failure."""
        config = self._config()
        attempt = locate(job, config)
        if attempt.watch is None:
            return
        try:
            rule = config.rule(job.rule)
        except KeyError:
            rule = None
        record_failure(attempt.source, attempt.watch, rule, job.source.relative, CANCELLED)

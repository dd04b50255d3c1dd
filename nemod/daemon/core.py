"""The daemon itself: its lifecycle, intake (watchers find finished files, the store queues
them), leases and heartbeats, and workers running each claimed job as one
:class:`~nemod.daemon.attempt.Attempt`.

::

    FolderWatcher (per folder) ──settled files──▶ JobStore.enqueue
    JobStore.claim (lease) ──▶ worker thread ──▶ pipeline.run_job ──▶ complete / fail / wait

Worker threads live as long as the daemon (``concurrency`` of them, started as needed)
and take one job after another; see :class:`WorkerPool` for why they are not one per job.

:meth:`Daemon.run_once` is one iteration (tests drive it with an explicit ``now``);
:meth:`Daemon.run_forever` (:mod:`nemod.daemon.loop`) adds signals, the periodic rescan
(APScheduler) and sleeping.

Plugging in services (status, metrics, webhooks): pass ``events=on_event`` — it is
called as ``on_event(name, job)`` with ``name`` one of ``queued``, ``started``,
``done``, ``failed``, ``retrying``, ``waiting``; exceptions it raises are logged and
ignored. :meth:`Daemon.health` returns a small dict for health checks, and
:attr:`Daemon.store` answers queries (counts by state, running jobs, failures).
``service=`` takes the service runtime (:class:`nemod.service.runtime.ServiceHooks`:
sd_notify, beacon, status endpoint, processing windows), called when the loop starts,
after every iteration, before a claimed job starts (``hold``) and when it stops.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from nemod.backends.base import Backend
from nemod.config import Config
from nemod.daemon import loop
from nemod.daemon.attempt import Attempt, Transition, check_window, locate, ready, transition_for
from nemod.daemon.cancels import CANCELLED, Cancels
from nemod.daemon.disposition import record_failure, tidy_source
from nemod.daemon.health import health_report
from nemod.daemon.identity import make_owner
from nemod.daemon.intake import Intake
from nemod.daemon.leases import Active, Leases
from nemod.daemon.options import DaemonOptions
from nemod.daemon.outage import StoreOutage
from nemod.daemon.reload import load_new
from nemod.daemon.workers import WorkerPool
from nemod.errors import PermanentJobError, StoreUnavailableError
from nemod.names import shown
from nemod.pipeline import run_job
from nemod.store.base import CANCELLED_CODE, Job, JobStore
from nemod.watch.watcher import FolderWatcher

if TYPE_CHECKING:
    from nemod.service.runtime import ServiceHooks

EventCallback = Callable[[str, Job], None]


# --- the daemon ----------------------------------------------------------------------------


class Daemon:
    """Watches the configured folders and runs each new finished file as one job.

    Dependencies are passed in: ``store`` (a :class:`JobStore`), ``backend``,
    ``clock`` (monotonic seconds for settling and heartbeats), ``config_loader`` (for
    SIGHUP reloads; raises ConfigError), ``backend_factory`` (rebuilds the backend after a
    reload), ``events`` (see the module docstring), ``watcher_factory`` (tests).
    """

    def __init__(
        self,
        config: Config,
        store: JobStore,
        backend: Backend,
        *,
        clock: Callable[[], float] = time.monotonic,
        options: DaemonOptions | None = None,
        events: EventCallback | None = None,
        config_loader: Callable[[], Config] | None = None,
        backend_factory: Callable[[Config], Backend] | None = None,
        owner: str | None = None,
        watcher_factory: Callable[..., FolderWatcher] = FolderWatcher,
        service: ServiceHooks | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.backend = backend
        self.clock = clock
        self.options = options or DaemonOptions()
        self.owner = owner or make_owner()
        self._events = events
        self._config_loader = config_loader
        self._backend_factory = backend_factory
        # Service plumbing (sd_notify, beacon, status endpoint, processing windows):
        # see nemod.service.runtime; None when run without it (tests, one-off use).
        self._service = service
        self.wakeup = threading.Event()
        self.intake = Intake(store, wakeup=self.wakeup, queued=functools.partial(self._emit, "queued"),
                             watcher_factory=watcher_factory, check_open_files=self.options.check_open_files)
        self._active: dict[int, Active] = {}
        self._workers = WorkerPool()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.leases = Leases(store, self.owner, self.options, self._stopping)
        self.cancels = Cancels(store, self.owner, active=self._active_attempt, config=lambda: self.config,
                               failed=functools.partial(self._emit, "failed"), wakeup=self.wakeup)
        self._rescan = threading.Event()
        self._reload = threading.Event()
        self._started = False
        self._log = structlog.get_logger("nemod.daemon")
        self.outage = StoreOutage()

    @property
    def watchers(self) -> list[FolderWatcher]:
        """The folder watchers of the config in force."""
        return self.intake.watchers

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Take back this host's dead processes' jobs, start the watchers, scan the folders,
        and ask the store to wake the loop when other hosts queue work."""
        try:
            self.leases.reclaim_dead_owners()
        except StoreUnavailableError as exc:
            self.outage.failed(exc, self.clock())
        self.intake.start(self.config, self.clock())
        self.store.on_new_work(self.wakeup.set)
        self._started = True
        self._log.info("daemon_started", owner=self.owner, folders=len(self.watchers), store=self.config.store_name)

    def request_stop(self) -> None:
        """Stop taking jobs; :meth:`run_forever` then stops gracefully (safe from signals)."""
        self._stopping.set()
        self.wakeup.set()

    def request_rescan(self) -> None:
        """Scan every folder on the next iteration (lost events are caught this way)."""
        self._rescan.set()
        self.wakeup.set()

    def prune(self) -> int:
        """Apply ``retention_days`` to the job store (see :meth:`JobStore.prune`); returns
        how many rows were removed. Runs at start and daily from the scheduler."""
        removed = self.store.prune(self.config.retention_days * 86_400.0)
        if removed:
            self._log.info("store_pruned", rows=removed, retention_days=self.config.retention_days)
        return removed

    def request_reload(self) -> None:
        """Reload the config on the next iteration (SIGHUP)."""
        self._reload.set()
        self.wakeup.set()

    def request_cancel(self, job_id: int) -> str:
        """Cancel a job for a person (the dashboard): see :meth:`Cancels.request`."""
        return self.cancels.request(job_id)

    def _active_attempt(self, job_id: int) -> Active | None:
        with self._lock:
            return self._active.get(job_id)

    def live_progress(self) -> dict[int, tuple[str | None, float | None]]:
        """Job id → (step, fraction) of the jobs running here now, fresher than the store's
        copy (written with each heartbeat, every ``heartbeat_seconds``)."""
        return {a.job.id: (a.step, a.progress) for a in self._snapshot() if not a.done.is_set()}

    @property
    def store_error(self) -> str | None:
        """Why the job store cannot be reached (None: it answers)."""
        return self.outage.error

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stopping.is_set()

    def stop(self, timeout: float | None = None) -> bool:
        """Graceful stop: no new jobs; running jobs get ``timeout`` seconds (default
        ``stop_timeout``) to finish or reach a checkpoint, then are cancelled (ffmpeg
        killed) and given back to the queue. Returns True when every worker ended."""
        self._stopping.set()
        self.intake.stop()
        deadline = self.clock() + (self.options.stop_timeout if timeout is None else timeout)
        for active in self._snapshot():
            self._join(active, deadline)
        leftovers = [a for a in self._snapshot() if not a.done.is_set()]
        for active in leftovers:
            self._log.warning("job_cancelled_for_stop", job=active.job.key)
            active.context.cancel.set()
        deadline = self.clock() + self.options.cancel_timeout
        for active in leftovers:
            self._join(active, deadline)
        self._reap()
        stuck = [a for a in self._snapshot() if not a.done.is_set()]
        # A worker whose job ignored cancellation is left behind (daemonic): no second wait.
        ended = self._workers.shutdown(0.0 if stuck else self.options.cancel_timeout)
        clean = not stuck and ended
        self._log.info("daemon_stopped", clean=clean)
        return clean

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds (wall time) for the running jobs to end; True when
        none is left. For tests and tools that drive :meth:`run_once` themselves."""
        deadline = time.monotonic() + timeout
        return all(
            active.done.wait(max(0.0, deadline - time.monotonic())) for active in self._snapshot()
        )

    def _join(self, active: Active, deadline: float) -> None:
        active.done.wait(max(0.0, deadline - self.clock()))

    def _snapshot(self) -> list[Active]:
        with self._lock:
            return list(self._active.values())

    # --- one iteration -------------------------------------------------------------------

    def run_once(self, now: float | None = None) -> None:
        """One iteration: reload/rescan if asked, find settled files and queue them, renew
        leases, start jobs up to the concurrency limit."""
        if not self._started:
            self.start()
        now = self.clock() if now is None else now
        if self._reload.is_set():
            self._reload.clear()
            self._do_reload(now)
        self._reap()
        if self.outage.waiting(now):
            self.leases.heartbeat(self._snapshot(), now)  # running steps go on; no claims
            return
        try:
            if self.outage.error is not None:
                self.store.now()  # is it back? (the steps below may not touch the store)
            if self._rescan.is_set():
                self._rescan.clear()
                self.intake.rescan(now)
            self.intake.poll(self.config, now)
            self.leases.heartbeat(self._snapshot(), now)
            if not self._stopping.is_set():
                self._start_jobs(now)
        except StoreUnavailableError as exc:
            self.outage.failed(exc, now)
            return
        if self.outage.answered():
            self.request_rescan()  # files that settled during the outage

    def _reap(self) -> None:
        with self._lock:
            for job_id in [i for i, a in self._active.items() if a.done.is_set()]:
                del self._active[job_id]

    def _lose(self, active: Active) -> None:
        self.leases.lose(active)

    def _claimable_roots(self) -> list[str] | None:
        """With a shared store (``store:``), only jobs of the folders this host watches and
        can reach: another host may have folders this one has not, or the share may not be
        mounted here. One host (SQLite) takes every job, and fails those of folders no
        longer configured."""
        if self.config.store is None:
            return None
        return [watcher.watch.key for watcher in self.intake.watchers if watcher.reachable]

    def _start_jobs(self, now: float) -> None:
        roots = self._claimable_roots()
        if roots == []:
            return
        while len(self._snapshot()) < self.config.concurrency and not self._stopping.is_set():
            active = self.leases.claim(now, roots)
            if active is None:
                return
            with self._lock:
                self._active[active.job.id] = active
            self._workers.submit(functools.partial(self._work, active), self.config.concurrency)

    # --- running one job (worker thread) -------------------------------------------------

    def _work(self, active: Active) -> None:
        job = active.job
        # Every line logged during the attempt, here, in the engine or in the cloud client,
        # names the job, its file and its rule: bound once into the worker thread's context.
        try:
            with structlog.contextvars.bound_contextvars(
                job=job.key, file=shown(job.source.relative), rule=job.rule
            ):
                try:
                    self._execute(active)
                except Exception:  # noqa: BLE001 -- a worker thread must never die silently
                    self._log.exception("worker_crashed")
        finally:
            active.done.set()
            self.wakeup.set()

    def _execute(self, active: Active) -> None:
        """Run one attempt at ``active``'s job under the config of the moment it started,
        then apply what its outcome means for the job (:func:`transition_for`)."""
        job = active.job
        attempt = locate(job, self.config)
        try:
            if self.cancels.wanted(job.id):
                raise PermanentJobError(CANCELLED)  # noqa: TRY301 - one path for every outcome
            attempt = ready(attempt, self.options)
            check_window(attempt, self.options, self._service)
            assert attempt.watch is not None and attempt.rule is not None
            self._log.info("job_started", attempt=job.attempts, step=job.step)
            self._emit("started", job)
            outcome = run_job(attempt.config, self.backend, attempt.source, attempt.watch.output,
                              job_id=job.key, rule=attempt.rule, context=active.context, watch=attempt.watch,
                              attempt=job.lease_token)
            outputs = {suffix: str(path) for suffix, path in outcome.outputs.items()}
            if active.lost or not self.leases.persist(
                lambda: self.store.complete(job.id, job.lease_token, outputs), "complete"
            ):
                self._lose(active)
                self._log.warning("job_taken_over_at_completion")
                return
            self.cancels.take(job.id)  # asked too late: it finished first
            self._log.info("job_done", outputs=sorted(outputs.values()), summary=outcome.summary)
            tidy_source(attempt.source, attempt.watch, attempt.rule, job.source.relative)
            self._emit("done", self.store.get(job.id) or job)
        except Exception as exc:  # noqa: BLE001 -- every outcome maps to a transition
            transition = transition_for(exc, attempt, self.options, lost=active.lost,
                                        stopping=self._stopping.is_set(), cancelled=active.context.cancel.is_set())
            if self.cancels.take(job.id) and transition.kind != "abandon":
                transition = Transition("fail", CANCELLED, code=CANCELLED_CODE)
            if transition.unexpected:
                self._log.exception("job_error_unexpected")
            self._apply(active, attempt, transition)

    def _apply(self, active: Active, attempt: Attempt, transition: Transition) -> None:
        """Write ``transition`` to the store (fenced by the job's lease token, waiting out a
        store outage) and tell."""
        try:
            self._apply_now(active, attempt, transition)
        except StoreUnavailableError:
            self._log.warning("job_outcome_unrecorded", kind=transition.kind)  # its lease expires; re-claimed

    def _apply_now(self, active: Active, attempt: Attempt, transition: Transition) -> None:
        job = active.job
        persist = self.leases.persist
        if transition.kind == "abandon":
            self._log.warning("job_abandoned", reason=transition.message)
        elif transition.kind == "release":
            if persist(lambda: self.store.release(job.id, job.lease_token), "release"):
                self._log.info("job_released", step=active.step)
        elif transition.kind == "wait":
            if persist(lambda: self.store.wait(job.id, job.lease_token, transition.reason, transition.delay,
                                               message=transition.message), "wait"):
                self._log.info("job_waiting", reason=transition.reason, seconds=transition.delay)
                self._emit("waiting", self.store.get(job.id) or job)
        elif transition.kind == "retry":
            if persist(lambda: self.store.fail(job.id, job.lease_token, transition.message,
                                               retry_after=transition.delay, code=transition.code), "retry"):
                self._log.warning("job_retrying", error=transition.message, attempt=job.attempts,
                                  seconds=transition.delay)
                self._emit("retrying", self.store.get(job.id) or job)
        elif not persist(lambda: self.store.fail(job.id, job.lease_token, transition.message,
                                                 code=transition.code), "fail"):
            self._lose(active)
        else:
            self._log.error("job_failed", error=transition.message)
            if attempt.watch is not None:
                record_failure(attempt.source, attempt.watch, attempt.rule, job.source.relative,
                               transition.message)
            self._emit("failed", self.store.get(job.id) or job)

    # --- reload, health, events ----------------------------------------------------------

    def _do_reload(self, now: float) -> None:
        if self._config_loader is None:
            return
        if self._service is not None:
            self._service.reloading(self)  # RELOADING=1
        try:
            self._reload_config(self._config_loader, now)
        finally:
            if self._service is not None:
                self._service.reloaded(self)  # READY=1, whether or not the new config took

    def _reload_config(self, loader: Callable[[], Config], now: float) -> None:
        """Swap in a freshly loaded config (and backend); a bad one is logged and the old kept."""
        loaded = load_new(loader, self._backend_factory)
        if loaded is None:
            return
        self.config, backend = loaded
        if backend is not None:
            self.backend = backend
        self.intake.start(self.config, now)
        self._log.info("config_reloaded", folders=len(self.intake.watchers))

    def health(self) -> dict[str, Any]:
        """A snapshot for health checks (:func:`nemod.daemon.health.health_report`); asks
        the store for job counts unless it is known to be down."""
        counts: dict[str, int] = {}
        if self.outage.error is None:
            try:
                counts = {state.value: n for state, n in self.store.counts().items()}
            except StoreUnavailableError as exc:
                self.outage.failed(exc, self.clock())
        return health_report(self.intake.folders(), self._snapshot(), counts, self.outage.error, self.stopping)

    def _emit(self, name: str, job: Job) -> None:
        if self._events is None:
            return
        try:
            self._events(name, job)
        except Exception:  # noqa: BLE001 - a listener must not break the daemon
            self._log.exception("event_listener_failed", event=name, job=job.key)

    # --- the service loop ----------------------------------------------------------------

    def run_forever(self, *, install_signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT (or :meth:`request_stop`), then stop gracefully; see
        :func:`nemod.daemon.loop.run_forever`. Returns 0."""
        return loop.run_forever(self, self._service, install_signals=install_signals)

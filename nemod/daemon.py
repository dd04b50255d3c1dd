"""The watch-folder daemon: watchers find finished files, the store queues them, worker
threads run them through the pipeline.

::

    FolderWatcher (per folder) ──settled files──▶ JobStore.enqueue
    JobStore.claim (lease) ──▶ worker thread ──▶ pipeline.run_job ──▶ complete / fail / wait

Worker threads live as long as the daemon (``concurrency`` of them, started as needed)
and take one job after another; see :class:`WorkerPool` for why they are not one per job.

:meth:`Daemon.run_once` is one iteration (tests drive it with an explicit ``now``);
:meth:`Daemon.run_forever` adds signals, the periodic rescan (APScheduler) and sleeping.

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
import os
import queue
import secrets
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from nemod.backends.base import Backend, JobContext
from nemod.config import Config, Rule, WatchFolder
from nemod.errors import (
    ConfigError,
    LeaseLostError,
    NemodError,
    PermanentJobError,
    WaitingError,
)
from nemod.pipeline import choose_rule, run_job
from nemod.store.base import Job, JobState, JobStore, SourceRef, StoreLedger, fingerprint
from nemod.watch.openfiles import open_for_writing
from nemod.watch.watcher import FolderWatcher, FoundFile

if TYPE_CHECKING:
    from nemod.service.runtime import ServiceHooks

#: The rule name of a job for a file no rule matches (it fails with the reason why).
NO_RULE = "-"

EventCallback = Callable[[str, Job], None]


@dataclass(frozen=True)
class DaemonOptions:
    """Timing knobs (seconds). Defaults suit a service; tests shorten them."""

    lease_seconds: float = 120.0
    heartbeat_seconds: float = 15.0
    stop_timeout: float = 30.0
    cancel_timeout: float = 15.0
    tick_seconds: float = 0.25
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    waiting_default_seconds: float = 300.0
    unreachable_retry_seconds: float = 60.0
    check_open_files: bool = True


def backoff(attempt: int, base: float, maximum: float) -> float:
    """Seconds before retry number ``attempt`` (1, 2, …): ``base · 2^(attempt-1)``, capped."""
    return float(min(maximum, base * 2 ** max(attempt - 1, 0)))


# --- who owns a lease ----------------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux), or None; zombies: None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def make_owner() -> str:
    """This process's lease-owner name: ``host:pid:start`` (start time, or a random tag)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start(pid) or secrets.token_hex(4)}"


def owner_is_dead(owner: str | None, me: str) -> bool:
    """True when ``owner`` is a process of this host that no longer runs (so its leases can
    be taken at once). Other hosts' owners are never judged: their leases expire."""
    if not owner or owner == me:
        return False
    try:
        host, pid_text, tag = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    my_host, my_pid, _ = me.rsplit(":", 2)
    if host != my_host:
        return False
    if pid == int(my_pid):
        return True  # same pid, different tag: an earlier process that had our pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    start = _process_start(pid)
    if start is None:
        # Where /proc exists, an unreadable stat means gone or a zombie; elsewhere: unknown.
        return Path("/proc/self/stat").exists()
    return tag.isdigit() and start != tag  # a different process now has that pid


# --- the daemon ----------------------------------------------------------------------------


class _Stopping(NemodError):
    """Raised at a checkpoint once a graceful stop began: the job goes back to the queue."""


@dataclass
class _Active:
    """A job being worked on by a thread of this daemon."""

    job: Job
    context: JobContext
    last_heartbeat: float = 0.0
    step: str | None = None
    progress: float | None = None
    lost: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class WorkerPool:
    """Long-lived worker threads that run the callables handed to :meth:`submit`, in order.

    Threads are started as needed up to ``size`` (the ``size`` of the latest submit, so a
    reloaded ``concurrency`` takes effect) and then reused. With one new thread per job,
    glibc spread the jobs' allocations over more and more malloc arenas whose fragments
    piled up: RSS grew 11 % and 17 % in two 12-minute soaks of about 1,360 jobs, 4.7 % on
    long-lived workers (``bench/reliability_soak.py --mappings``; docs/reliability.md).
    Threads are daemonic, so a job that ignores cancellation cannot hold the process open
    at exit.
    """

    def __init__(self, name: str = "nemod-worker") -> None:
        self._name = name
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, work: Callable[[], None], size: int) -> None:
        """Run ``work()`` on a worker (starting one if fewer than ``size`` exist).

        The caller keeps at most ``size`` callables unfinished at a time, so one never
        waits long for a worker.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool was shut down")
            if len(self._threads) < size:
                thread = threading.Thread(
                    target=self._loop, name=f"{self._name}-{len(self._threads) + 1}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._queue.put(work)

    def _loop(self) -> None:
        while (work := self._queue.get()) is not None:
            try:
                work()
            except BaseException:  # noqa: BLE001 - e.g. SystemExit from a library: the worker stays
                structlog.get_logger("nemod.daemon").exception("worker_error")

    def shutdown(self, timeout: float) -> bool:
        """Let each worker finish what it runs and end; True when all ended in ``timeout``.
        Nothing can be submitted afterwards (RuntimeError)."""
        with self._lock:
            self._closed = True
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)


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
        self._watcher_factory = watcher_factory
        # Service plumbing (sd_notify, beacon, status endpoint, processing windows):
        # see nemod.service.runtime; None when run without it (tests, one-off use).
        self._service = service
        self.wakeup = threading.Event()
        self.watchers: list[FolderWatcher] = []
        self._active: dict[int, _Active] = {}
        self._workers = WorkerPool()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._rescan = threading.Event()
        self._reload = threading.Event()
        self._started = False
        self._log = structlog.get_logger("nemod.daemon")

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Take back this host's dead processes' jobs, start the watchers, scan the folders."""
        self._adopt_folder_ids()
        self._reclaim_dead_owners()
        now = self.clock()
        self.watchers = [self._make_watcher(watch) for watch in self.config.watches]
        for watcher in self.watchers:
            watcher.start(now)
        self._started = True
        self._log.info("daemon_started", owner=self.owner, folders=len(self.watchers))

    def _make_watcher(self, watch: WatchFolder) -> FolderWatcher:
        key = watch.key

        def known(relative: str, size: int, mtime: float) -> bool:
            return self.store.known(SourceRef(key, relative), size, mtime)

        return self._watcher_factory(watch, known, wakeup=self.wakeup)

    def _adopt_folder_ids(self) -> None:
        """A folder that was just given an ``id:`` keeps its history: its jobs, stored
        under its path until now, are renamed to the id."""
        for watch in self.config.watches:
            if watch.id:
                renamed = self.store.rename_folder(str(watch.path), watch.id)
                if renamed:
                    self._log.info("folder_id_adopted", folder=str(watch.path), id=watch.id,
                                   jobs=renamed)

    def _reclaim_dead_owners(self) -> None:
        for job in self.store.jobs(JobState.RUNNING, limit=10_000):
            if owner_is_dead(job.lease_owner, self.owner) and self.store.expire_lease(
                job.id, job.lease_token
            ):
                self._log.info(
                    "lease_reclaimed", job=job.key, file=job.source.relative, owner=job.lease_owner
                )

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

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stopping.is_set()

    def stop(self, timeout: float | None = None) -> bool:
        """Graceful stop: no new jobs; running jobs get ``timeout`` seconds (default
        ``stop_timeout``) to finish or reach a checkpoint, then are cancelled (ffmpeg
        killed) and given back to the queue. Returns True when every worker ended."""
        self._stopping.set()
        for watcher in self.watchers:
            watcher.stop()
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

    def _join(self, active: _Active, deadline: float) -> None:
        active.done.wait(max(0.0, deadline - self.clock()))

    def _snapshot(self) -> list[_Active]:
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
        if self._rescan.is_set():
            self._rescan.clear()
            for watcher in self.watchers:
                watcher.scan(now)
        self._find_files(now)
        self._reap()
        self._heartbeat(now)
        if not self._stopping.is_set():
            self._start_jobs(now)

    def _find_files(self, now: float) -> None:
        settled: list[tuple[FolderWatcher, FoundFile]] = []
        for watcher in self.watchers:
            settled.extend((watcher, found) for found in watcher.poll(now))
        if not settled:
            return
        busy: set[Path] = set()
        if self.options.check_open_files:
            busy = open_for_writing(Path(w.root) / f.relative for w, f in settled)
        for watcher, found in settled:
            if Path(watcher.root) / found.relative in busy:
                self._log.debug("file_still_open", file=found.relative)
                watcher.postpone(found, now)
                continue
            self._enqueue(watcher, found)

    def _enqueue(self, watcher: FolderWatcher, found: FoundFile) -> None:
        path = Path(watcher.root) / found.relative
        log = self._log.bind(file=found.relative, folder=watcher.root)
        try:
            print_ = fingerprint(path, found.size, found.mtime)
        except OSError as exc:
            log.warning("file_unreadable", error=str(exc))
            return
        try:
            rule_name = choose_rule(self.config, path, watcher.watch).name
        except PermanentJobError:
            rule_name = NO_RULE
        job = self.store.enqueue(
            print_, rule_name, SourceRef(watcher.watch.key, found.relative),
            size=found.size, mtime=found.mtime,
        )
        watcher.mark_seen(found)
        if job is None:
            log.info("file_already_known", rule=rule_name)
            return
        log.info("job_queued", job=job.key, rule=rule_name)
        self._emit("queued", job)

    def _reap(self) -> None:
        with self._lock:
            for job_id in [i for i, a in self._active.items() if a.done.is_set()]:
                del self._active[job_id]

    def _heartbeat(self, now: float) -> None:
        for active in self._snapshot():
            if active.done.is_set() or active.lost:
                continue
            if now - active.last_heartbeat < self.options.heartbeat_seconds:
                continue
            active.last_heartbeat = now
            if not self.store.heartbeat(
                active.job.id, active.job.lease_token, lease_seconds=self.options.lease_seconds,
                step=active.step, progress=active.progress,
            ):
                self._lose(active)

    def _lose(self, active: _Active) -> None:
        """Fencing: the job was taken over; stop the work, publish nothing."""
        if not active.lost:
            active.lost = True
            self._log.warning("lease_lost", job=active.job.key, file=active.job.source.relative)
        active.context.cancel.set()

    def _start_jobs(self, now: float) -> None:
        while len(self._snapshot()) < self.config.concurrency and not self._stopping.is_set():
            job = self.store.claim(self.owner, lease_seconds=self.options.lease_seconds)
            if job is None:
                return
            active = self._new_active(job, now)
            with self._lock:
                self._active[job.id] = active
            self._workers.submit(functools.partial(self._work, active), self.config.concurrency)

    def _new_active(self, job: Job, now: float) -> _Active:
        active = _Active(job=job, context=JobContext(), last_heartbeat=now)

        def checkpoint(step: str) -> None:
            active.step = step
            if active.lost or not self.store.heartbeat(
                job.id, job.lease_token, lease_seconds=self.options.lease_seconds, step=step,
                progress=0.0,
            ):
                self._lose(active)
                raise LeaseLostError(f"{job.key} was taken over")
            if self._stopping.is_set() and step != "publish":
                # Stop before the next expensive step; a finished render is still
                # published (quick) rather than thrown away.
                raise _Stopping(f"stopping before {step}")

        def progress(step: str, fraction: float) -> None:
            active.step, active.progress = step, fraction

        active.context = JobContext(
            ledger=StoreLedger(self.store, job, self.options.lease_seconds),
            progress=progress,
            checkpoint=checkpoint,
        )
        return active

    # --- running one job (worker thread) -------------------------------------------------

    def _work(self, active: _Active) -> None:
        job = active.job
        log = self._log.bind(job=job.key, file=job.source.relative, rule=job.rule)
        try:
            self._execute(active, log)
        except Exception:  # a worker thread must never die silently
            log.exception("worker_crashed")
        finally:
            active.done.set()
            self.wakeup.set()

    def _watch_for(self, job: Job) -> WatchFolder | None:
        return self.config.watch_for(job.source.root)

    def _source_path(self, job: Job) -> Path:
        """The job's source on this host. When its folder is not configured here, just its
        relative path: good for naming the file in messages, not for opening it."""
        return self.config.locate(job.source.root, job.source.relative) or Path(job.source.relative)

    def _rule_for(self, job: Job, watch: WatchFolder, source: Path) -> Rule:
        if job.rule == NO_RULE:
            return choose_rule(self.config, source, watch)  # raises why nothing matches
        try:
            return self.config.rule(job.rule)
        except KeyError:
            raise PermanentJobError(
                f"the rule {job.rule!r} no longer exists in the configuration."
            ) from None

    def _prepare(self, job: Job) -> tuple[WatchFolder, Path]:
        """The job's watch folder and source path; raises when the job cannot start."""
        watch = self._watch_for(job)
        source = self._source_path(job)
        if watch is None:
            raise PermanentJobError(f"its watch folder {job.source.root} is no longer configured.")
        if job.attempts > self.config.max_attempts:
            raise PermanentJobError(
                f"nemod was interrupted {job.attempts - 1} times while processing "
                f"{source.name}, so it gave up."
            )
        if not source.is_file():
            if not watch.path.is_dir():
                raise WaitingError(
                    f"the watch folder {watch.path} cannot be reached",
                    reason="unreachable", delay=self.options.unreachable_retry_seconds,
                )
            raise PermanentJobError(f"{source.name} disappeared before it could be processed.")
        return watch, source

    def _check_window(self, watch: WatchFolder, rule: Rule) -> None:
        """Raise WaitingError (reason ``schedule``) while the job's processing window is shut."""
        hold = self._service.hold(watch, rule) if self._service is not None else None
        if hold is not None:
            raise WaitingError("outside its processing window", reason="schedule", delay=hold)

    def _execute(self, active: _Active, log: Any) -> None:
        job, config = active.job, self.config
        watch = self._watch_for(job)
        source = self._source_path(job)
        rule: Rule | None = None
        try:
            watch, source = self._prepare(job)
            rule = self._rule_for(job, watch, source)
            self._check_window(watch, rule)
            log.info("job_started", attempt=job.attempts, step=job.step)
            self._emit("started", job)
            outcome = run_job(
                config, self.backend, source, watch.output, job_id=job.key, rule=rule,
                context=active.context,
            )
            outputs = {suffix: str(path) for suffix, path in outcome.outputs.items()}
            if active.lost or not self.store.complete(job.id, job.lease_token, outputs):
                self._lose(active)
                log.warning("job_taken_over_at_completion")
                return
            log.info("job_done", outputs=sorted(outputs.values()), summary=outcome.summary)
            self._after_success(job, watch, rule, source, log)
            self._emit("done", self.store.get(job.id) or job)
        except LeaseLostError:
            log.warning("job_abandoned", reason="lease lost")
        except _Stopping:
            self._give_back(active, log)
        except WaitingError as exc:
            delay = exc.delay if exc.delay is not None else self.options.waiting_default_seconds
            if self.store.wait(job.id, job.lease_token, exc.reason, delay):
                log.info("job_waiting", reason=exc.reason, seconds=delay)
                self._emit("waiting", self.store.get(job.id) or job)
        except PermanentJobError as exc:
            self._fail_permanently(active, watch, rule, source=source, sentence=str(exc), log=log)
        except Exception as exc:  # noqa: BLE001 - anything else is worth a retry
            if active.lost:
                log.warning("job_abandoned", reason="lease lost")
            elif self._stopping.is_set() and active.context.cancel.is_set():
                self._give_back(active, log)
            else:
                self._retry_or_fail(active, watch, rule, source=source, exc=exc, log=log)

    def _give_back(self, active: _Active, log: Any) -> None:
        if self.store.release(active.job.id, active.job.lease_token):
            log.info("job_released", step=active.step)

    def _retry_or_fail(
        self, active: _Active, watch: WatchFolder | None, rule: Rule | None, *, source: Path,
        exc: Exception, log: Any,
    ) -> None:
        job = active.job
        message = str(exc) or type(exc).__name__
        if not isinstance(exc, NemodError | OSError):
            log.exception("job_error_unexpected")
        if job.attempts >= self.config.max_attempts:
            sentence = (
                f"{source.name} failed {job.attempts} times; "
                f"the last error was: {message.rstrip('.')}."
            )
            self._fail_permanently(active, watch, rule, source=source, sentence=sentence, log=log)
            return
        delay = getattr(exc, "delay", None)
        if delay is None:
            options = self.options
            delay = backoff(job.attempts, options.retry_base_seconds, options.retry_max_seconds)
        if self.store.fail(job.id, job.lease_token, message, retry_after=delay):
            log.warning("job_retrying", error=message, attempt=job.attempts, seconds=delay)
            self._emit("retrying", self.store.get(job.id) or job)

    def _fail_permanently(
        self, active: _Active, watch: WatchFolder | None, rule: Rule | None, *, source: Path,
        sentence: str, log: Any,
    ) -> None:
        job = active.job
        if not self.store.fail(job.id, job.lease_token, sentence):
            self._lose(active)
            return
        log.error("job_failed", error=sentence)
        if watch is not None:
            policy = (rule.on_failure if rule and rule.on_failure else None) or watch.on_failure
            try:
                write_failure(source, watch, job.source.relative, sentence, move=policy == "move")
            except OSError as exc:
                log.warning("failure_note_not_written", error=str(exc))
        self._emit("failed", self.store.get(job.id) or job)

    def _after_success(
        self, job: Job, watch: WatchFolder, rule: Rule, source: Path, log: Any
    ) -> None:
        policy = rule.on_success or watch.on_success
        try:
            if policy == "delete":
                source.unlink(missing_ok=True)
                log.info("source_deleted")
            elif policy == "move" and source.exists():
                target = move_aside(source, watch.done, job.source.relative)
                log.info("source_moved", to=str(target))
        except OSError as exc:
            log.warning("source_not_tidied", error=str(exc))

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
        try:
            config = loader()
        except ConfigError as exc:
            self._log.error("config_reload_failed", problems=[str(p) for p in exc.problems])
            return
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the old config stays
            self._log.error("config_reload_failed", problems=[str(exc) or type(exc).__name__])
            return
        if self._backend_factory is not None:
            try:
                self.backend = self._backend_factory(config)
            except Exception as exc:  # noqa: BLE001 - as above
                self._log.error("config_reload_failed", problems=[str(exc) or type(exc).__name__])
                return
        for watcher in self.watchers:
            watcher.stop()
        self.config = config
        self._adopt_folder_ids()
        self.watchers = [self._make_watcher(watch) for watch in config.watches]
        for watcher in self.watchers:
            watcher.start(now)
        self._log.info("config_reloaded", folders=len(self.watchers))

    def health(self) -> dict[str, Any]:
        """A snapshot for health checks: ``ok`` (not stopping and every folder reachable),
        per-folder reachability and observer kind, running jobs with step and progress,
        and job counts by state."""
        folders = [
            {"path": w.root, "reachable": w.reachable, "polling": w.polling,
             "pending": len(w.tracker)}
            for w in self.watchers
        ]
        running = [
            {"job": a.job.key, "file": a.job.source.relative, "step": a.step,
             "progress": a.progress}
            for a in self._snapshot()
            if not a.done.is_set()
        ]
        counts = {state.value: n for state, n in self.store.counts().items()}
        ok = not self.stopping and all(f["reachable"] for f in folders)
        return {"ok": ok, "folders": folders, "running": running, "jobs": counts}

    def _emit(self, name: str, job: Job) -> None:
        if self._events is None:
            return
        try:
            self._events(name, job)
        except Exception:  # noqa: BLE001 - a listener must not break the daemon
            self._log.exception("event_listener_failed", event=name, job=job.key)

    # --- the service loop ----------------------------------------------------------------

    def run_forever(self, *, install_signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT (or :meth:`request_stop`), then stop gracefully.

        SIGHUP reloads the config (a bad one is reported and the old one kept). A
        BackgroundScheduler requests a full rescan every ``rescan_seconds``. Returns 0.
        """
        if install_signals:
            self._install_signals()
        self.start()
        scheduler = BackgroundScheduler(daemon=True)
        scheduler.add_job(
            self.request_rescan, "interval", seconds=self.config.rescan_seconds, id="rescan",
            max_instances=1, coalesce=True,
        )
        scheduler.add_job(
            self.prune, "interval", days=1, id="prune", max_instances=1, coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        scheduler.start()
        if self._service is not None:
            self._service.started(self)  # READY=1, beacon, status endpoint
        try:
            while not self._stopping.is_set():
                self.wakeup.clear()
                self.run_once(self.clock())
                if self._service is not None:
                    self._service.tick(self)  # WATCHDOG=1, STATUS=, beacon
                self.wakeup.wait(self.options.tick_seconds)
        finally:
            if self._service is not None:
                self._service.stopping(self)  # STOPPING=1
            scheduler.shutdown(wait=True)
            self.stop()
            if self._service is not None:
                self._service.stopped()
        return 0

    def _install_signals(self) -> None:
        def on_stop(signum: int, frame: FrameType | None) -> None:
            self.request_stop()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self.request_reload()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, on_hup)


# --- moving sources aside ------------------------------------------------------------------


def _free_path(folder: Path, relative: str) -> Path:
    """``folder/relative``, or ``name-1.ext``, ``name-2.ext``… when taken."""
    target = folder / relative
    candidate, counter = target, 0
    while candidate.exists() or candidate.is_symlink():
        counter += 1
        candidate = target.with_name(f"{target.stem}-{counter}{target.suffix}")
    return candidate


def move_aside(source: Path, folder: Path, relative: str) -> Path:
    """Move ``source`` to ``folder/relative`` without overwriting; returns where it went."""
    target = _free_path(folder, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(target))
    return target


def write_failure(
    source: Path, watch: WatchFolder, relative: str, sentence: str, *, move: bool
) -> Path:
    """Move the source to the failed folder (when ``move`` and it still exists) and write
    ``<stem>.error.txt`` there with ``sentence``; returns the note's path."""
    if move and source.is_file():  # never move away a folder that took the file's name
        moved = move_aside(source, watch.failed, relative)
        note = moved.with_name(f"{moved.stem}.error.txt")
    else:
        note = _free_path(watch.failed, str(Path(relative).with_name(f"{source.stem}.error.txt")))
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text(sentence.strip() + "\n", encoding="utf-8", errors="backslashreplace")
    return note

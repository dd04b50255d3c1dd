"""What connects the running daemon to the outside world while it runs as a service.

:class:`ServiceRuntime` is handed to the daemon (``Daemon(..., service=runtime,
events=runtime.on_event)``) and is called at five points:

=====================  ===========================================================
``started(daemon)``    store open, watchers running: start the status endpoint,
                       write the beacon, send ``READY=1`` with a ``STATUS=`` line
``tick(daemon)``       every loop iteration: ``WATCHDOG=1`` (paced by
                       ``$WATCHDOG_USEC``), and every ``status_every`` seconds a
                       fresh ``STATUS=`` line, beacon and live health; the cloud
                       credit balance every ``credits_every`` seconds
``hold(watch, rule)``  before a claimed job starts: None when its processing
                       window (folder's and rule's ``schedule:``) is open, else the
                       seconds until it opens (the daemon puts the job in
                       ``waiting`` with that ``not_before``)
``stopping(daemon)``   the loop ended: ``STOPPING=1``
``stopped()``          after the graceful stop: beacon says stopped, endpoint and
                       notifier threads end
=====================  ===========================================================

``on_event(name, job)`` turns the daemon's job events into notifications (``done``,
``failed``; ``credits_low`` when a cloud job starts waiting for credits or the
balance drops below ``cloud.min_credits``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any, Protocol

import structlog

from nemod.config import Config, Rule, WatchFolder
from nemod.names import shown
from nemod.schedule import AllOf, Schedule, combine, local_zone
from nemod.service.beacon import DaemonBeacon, beacon_path
from nemod.service.http import StatusServer
from nemod.service.notify import (
    BackgroundNotifier,
    EventSink,
    Notifier,
    NullSink,
    credits_fields,
    job_fields,
)
from nemod.service.sdnotify import SdNotifier, status_line
from nemod.service.storeview import StoreStatusSource
from nemod.store.base import Job, JobStore

log = structlog.get_logger(__name__)

#: How long to hold a job whose schedules never open together (then look again).
NEVER_OPEN_RETRY_SECONDS = 24 * 3600.0


class DaemonView(Protocol):
    """What the runtime reads from the daemon."""

    config: Config
    backend: Any

    def health(self) -> dict[str, Any]:
        """``{"ok", "folders": [{"path", "reachable", …}], "running": [{"file", "step",
        "progress", …}], "jobs": {state: n}}``."""


class Endpoint(Protocol):
    """The HTTP endpoint the runtime starts with the daemon (status page or dashboard)."""

    @property
    def port(self) -> int:
        """The bound port."""

    def attach(self, daemon: Any) -> None:
        """Given the daemon before :meth:`start` (the dashboard acts through it)."""

    def start(self) -> None:
        """Bind and serve; raises OSError when the port is taken."""

    def close(self) -> None:
        """Stop serving."""


class ServiceHooks(Protocol):
    """The calls the daemon makes (see the module docstring)."""

    def started(self, daemon: DaemonView) -> None:
        """The daemon is up."""

    def tick(self, daemon: DaemonView) -> None:
        """One loop iteration finished."""

    def hold(self, watch: WatchFolder, rule: Rule) -> float | None:
        """Seconds to hold a job back for its processing window, or None to start it."""

    def reloading(self, daemon: DaemonView) -> None:
        """A SIGHUP reload began."""

    def reloaded(self, daemon: DaemonView) -> None:
        """The reload is over (the new config in use, or the old one kept)."""

    def stopping(self, daemon: DaemonView) -> None:
        """A graceful stop began."""

    def stopped(self) -> None:
        """The daemon stopped."""


def describe_running(running: list[dict[str, Any]]) -> tuple[str, ...]:
    """``("talk.mov render 45%", …)`` from ``Daemon.health()["running"]``."""
    parts = []
    for job in running:
        name = PurePath(str(job.get("file") or job.get("job") or "?")).name
        step = job.get("step") or "starting"
        progress = job.get("progress")
        parts.append(f"{name} {step}" + (f" {progress * 100:.0f}%" if progress is not None else ""))
    return tuple(parts)


class ServiceRuntime:
    """Service plumbing for one daemon process (see the module docstring).

    Every collaborator is passed in: ``sd`` (sd_notify), ``beacon``, ``sink`` (where
    notifications go), ``server`` (the optional status endpoint); ``wall`` and
    ``monotonic`` are the clocks, ``zone`` the time zone of ``schedule:`` values.
    """

    def __init__(
        self,
        config: Config,
        *,
        sd: SdNotifier,
        beacon: DaemonBeacon,
        sink: EventSink | None = None,
        server: Endpoint | None = None,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        zone: dt.tzinfo | None = None,
        status_every: float = 2.0,
        credits_every: float = 600.0,
    ) -> None:
        self.config = config
        self.sd = sd
        self.beacon = beacon
        self.sink: EventSink = sink or NullSink()
        self.server = server
        self.wall = wall
        self.monotonic = monotonic
        self.zone = zone or local_zone()
        self.status_every = status_every
        self.credits_every = credits_every
        self._schedules: dict[tuple[str | None, str | None], Schedule | AllOf] = {}
        self._last_status: float | None = None
        self._last_credits: float | None = None
        self._credits_low = False
        self._credits_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._health: dict[str, bool] = {"watchers": False, "loop": False}
        self._last_tick: float | None = None

    # --- daemon hooks ------------------------------------------------------------------

    def started(self, daemon: DaemonView) -> None:
        """Start the endpoint, refresh status and beacon, then ``READY=1``."""
        if self.server is not None:
            try:
                self.server.attach(daemon)
                self.server.start()
            except OSError as exc:
                log.error(  # noqa: TRY400 - one line is enough: the port is taken
                    "status_endpoint_unavailable", port=self.server.port, error=str(exc)
                )
                self.server = None
            else:
                self.beacon.update(status_port=self.server.port)
        line = self._refresh(daemon, force=True, announce=False)
        self.sd.ready(status=line)
        log.info("service_ready", status=line)

    def tick(self, daemon: DaemonView) -> None:
        """Keep-alive, and now and then a fresh status line, beacon and credit check."""
        self.config = daemon.config  # follows SIGHUP reloads
        now = self.monotonic()
        with self._lock:
            self._last_tick = now
        self.sd.keepalive(now)
        if self._last_status is None or now - self._last_status >= self.status_every:
            self._refresh(daemon)
        if self.credits_every > 0 and (
            self._last_credits is None or now - self._last_credits >= self.credits_every
        ):
            self._last_credits = now
            self._check_credits(daemon)

    def hold(self, watch: WatchFolder, rule: Rule) -> float | None:
        """None when the job may start now; else seconds until its windows open."""
        key = (watch.schedule, rule.schedule)
        schedule = self._schedules.get(key)
        if schedule is None:
            schedule = self._schedules[key] = combine(key, self.zone)
        now = dt.datetime.fromtimestamp(self.wall(), self.zone)
        if schedule.is_open(now):
            return None
        opens = schedule.next_open(now)
        if opens is None:
            log.warning("schedule_never_opens", folder=str(watch.path), rule=rule.name)
            return NEVER_OPEN_RETRY_SECONDS
        return max(1.0, (opens - now).total_seconds())

    def reloading(self, daemon: DaemonView) -> None:
        """``RELOADING=1`` (systemd shows the unit as reloading)."""
        self.sd.reloading()

    def reloaded(self, daemon: DaemonView) -> None:
        """``READY=1`` with a fresh status line: ``systemctl reload`` returns."""
        self.config = daemon.config
        self.sd.ready(status=self._refresh(daemon, force=True, announce=False))
        log.info("service_reloaded")

    def stopping(self, daemon: DaemonView) -> None:
        """``STOPPING=1``."""
        self.sd.stopping()

    def stopped(self) -> None:
        """Beacon says stopped; the endpoint, the credit check and notifications end."""
        self.beacon.stopped(self.wall())
        if self.server is not None:
            self.server.close()
            self.server = None
        thread = self._credits_thread
        if thread is not None:
            thread.join(30.0)
        close = getattr(self.sink, "close", None)
        if callable(close):
            close()
        self.sd.close()

    # --- health for /healthz -----------------------------------------------------------

    def health(self) -> Mapping[str, bool]:
        """Live checks: ``watchers`` (every folder reachable, not stopping), ``store`` (the
        job store answered at the last tick) and ``loop`` (the main loop ticked within the
        last 30 s)."""
        with self._lock:
            checks = dict(self._health)
            last = self._last_tick
        checks["loop"] = last is not None and self.monotonic() - last < 30.0
        return checks

    # --- events ------------------------------------------------------------------------

    def on_event(self, name: str, job: Job) -> None:
        """The daemon's ``events`` callback: ``done``/``failed`` → notifications;
        ``waiting`` for credits → ``credits_low`` (once until credits return)."""
        if name in ("done", "failed"):
            if self.config.backend == "cloud":
                self._last_credits = None  # log and check the balance after every cloud job
            if name == "done":
                self._credits_low = False if self.config.backend == "cloud" else self._credits_low
            duration = None
            if job.finished_at is not None and job.created_at:
                duration = job.finished_at - job.created_at
            code = (job.error_code or "other") if name == "failed" else "other"
            self.sink.on_event(name, job_fields(
                job_id=str(job.id), source=shown(str(self.config.locate(job.source.root, job.source.relative)
                                               or job.source.relative)), rule=job.rule,
                folder=job.source.root, outputs=sorted(job.outputs.values()),
                error=job.error if name == "failed" else None,
                error_code=None if code == "other" else code,
                attempts=job.attempts, duration_seconds=duration,
            ))
        elif name == "waiting" and job.wait_reason == "credits":
            self._report_credits(None)

    # --- internals ---------------------------------------------------------------------

    def _refresh(self, daemon: DaemonView, *, force: bool = False, announce: bool = True) -> str:
        self._last_status = self.monotonic()
        try:
            health = daemon.health()
        except Exception as exc:  # the store may be locked or gone: say so, do not crash
            log.exception("health_failed")
            health = {"ok": False, "folders": [], "running": [], "jobs": {}, "error": str(exc)}
        folders = health.get("folders", [])
        watchers_ok = bool(health.get("ok")) and all(f.get("reachable") for f in folders)
        jobs = health.get("jobs", {})
        line = status_line(
            queued=int(jobs.get("queued", 0)),
            running=describe_running(health.get("running", [])),
            waiting=int(jobs.get("waiting", 0)),
            window=self._window_note(),
        )
        unreachable = [f["path"] for f in folders if not f.get("reachable")]
        if unreachable:
            line += f"; unreachable: {', '.join(unreachable)}"
        store = health.get("store") or {"ok": True}
        store_ok = bool(store.get("ok", True))
        if not store_ok:
            watchers_ok = watchers_ok or all(f.get("reachable") for f in folders)
            line += "; job store unreachable: not claiming, retrying"
        with self._lock:
            self._health = {"watchers": watchers_ok, "store": store_ok}
        if announce:
            self.sd.status(line)
        self.beacon.update(status=line, health={"watchers": watchers_ok, "loop": True, "store": store_ok})
        self.beacon.beat(self.wall(), force=force)
        return line

    def _window_note(self) -> str | None:
        texts = [w.schedule for w in self.config.watches] + [r.schedule for r in self.config.rules]
        schedules = [combine([text], self.zone) for text in texts if text]
        if not schedules:
            return None
        now = dt.datetime.fromtimestamp(self.wall(), self.zone)
        if any(s.is_open(now) for s in schedules):
            return None
        opens = [t for t in (s.next_open(now) for s in schedules) if t is not None]
        if not opens:
            return "no processing window ever opens"
        return f"outside processing windows until {min(opens):%a %H:%M}"

    def _check_credits(self, daemon: DaemonView) -> None:
        balance_of = getattr(daemon.backend, "balance", None)
        if self.config.backend != "cloud" or not callable(balance_of):
            return
        if self._credits_thread is not None and self._credits_thread.is_alive():
            return

        def check() -> None:
            try:
                available = int(balance_of().available)
            except Exception as exc:  # noqa: BLE001 - network trouble: try again next time
                log.warning("credits_check_failed", error=f"{type(exc).__name__}: {exc}")
                return
            log.info("credits", available=available, minimum=self.config.cloud.min_credits)
            self._report_credits(available)

        self._credits_thread = threading.Thread(target=check, name="nemod-credits", daemon=True)
        self._credits_thread.start()

    def _report_credits(self, balance: int | None) -> None:
        minimum = self.config.cloud.min_credits
        if balance is not None:
            self.beacon.update(
                credits={"balance": balance, "minimum": minimum, "checked_at": self.wall()}
            )
        low = balance is None or balance < minimum
        if low and not self._credits_low:
            self._credits_low = True
            fields = credits_fields(balance, minimum) if balance is not None else {
                "credits": {"minimum": minimum}
            }
            self.sink.on_event("credits_low", fields)
        elif not low:
            self._credits_low = False


def build_runtime(
    config: Config, *, env: Mapping[str, str] | None = None, started_at: float | None = None,
    open_store: Callable[[], JobStore] | None = None,
) -> ServiceRuntime:
    """The runtime for ``nemod run``: sd_notify from the environment, the beacon in
    ``state_dir``, notifications on their own thread when ``notify:`` has targets, and
    the loopback endpoint when ``status_port`` is set (reading the store ``open_store``
    opens; default: the SQLite store in ``state_dir``)."""
    sd = SdNotifier.from_environment(env)
    beacon = DaemonBeacon(
        beacon_path(config.state_dir), started_at=started_at or time.time(),
        status_port=config.status_port,
    )
    notifier = Notifier(config.notify)
    sink: EventSink
    if notifier.active:
        background = BackgroundNotifier(notifier)
        background.start()
        sink = background
    else:
        notifier.close()
        sink = NullSink()
    runtime = ServiceRuntime(config, sd=sd, beacon=beacon, sink=sink)
    if config.status_port is not None:
        source = StoreStatusSource.for_state_dir(
            config.state_dir, folders=[w.key for w in config.watches],  # as the store names them
            open_store=open_store, host_id=config.host_id, store_name=config.store_name,
        )
        runtime.server = StatusServer(source, port=config.status_port, health=runtime.health)
    return runtime

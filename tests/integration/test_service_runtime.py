"""The service runtime plugged into the real daemon: READY/STATUS/WATCHDOG/STOPPING on a
fake notify socket, the beacon, webhooks on job events, /healthz, and processing
windows holding jobs back (with an injected clock shared by the store)."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.backends import CopyBackend
from support.clocks import ManualClock
from support.daemon_loop import run_until
from support.logs import captured_logs

from nemod.config import Config, load
from nemod.daemon import Daemon, DaemonOptions
from nemod.service.beacon import DaemonBeacon, beacon_path, read_beacon
from nemod.service.notify import EventSink
from nemod.service.runtime import ServiceRuntime, build_runtime, describe_running
from nemod.service.sdnotify import SdNotifier
from nemod.store import Job, JobState, SourceRef
from nemod.store.sqlite import SQLiteStore

FAST = DaemonOptions(
    lease_seconds=5.0,
    heartbeat_seconds=0.1,
    stop_timeout=2.0,
    cancel_timeout=5.0,
    tick_seconds=0.05,
    retry_base_seconds=0.1,
    retry_max_seconds=1.0,
)




class FakeSystemd:
    """A datagram socket collecting sd_notify messages on a thread-safe list."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []

    def collect_until(
        self, predicate: Callable[[dict[str, str]], bool], timeout: float = 10.0
    ) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            message = dict(line.split("=", 1) for line in data.split("\n"))
            self.messages.append(message)
            if predicate(message):
                return message
        raise AssertionError(f"no matching sd_notify message; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


class Receiver:
    """Loopback webhook receiver."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, HTTPServer

        self.bodies: list[dict[str, Any]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.arrived:
                    receiver.bodies.append(body)
                    receiver.arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: predicate(self.bodies), timeout), self.bodies

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    path = str(tmp_path / "notify")
    if len(path) > 100:
        pytest.skip("temporary folder path too long for an AF_UNIX socket")
    fake = FakeSystemd(path)
    yield fake
    fake.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def write_config(tmp_path: Path, *, extra: str = "", rule_extra: str = "") -> Config:
    (tmp_path / "in").mkdir(exist_ok=True)
    path = tmp_path / "nemod.yaml"
    path.write_text(
        f"state_dir: state\nsettle_seconds: 0.2\n{extra}\n"
        "watch:\n  - path: in\n    output: out\n    poll_interval: 0.2\n"
        f"rules:\n  - name: all\n{rule_extra}\n"
    )
    return load(path)


def test_daemon_as_a_service(tmp_path: Path, systemd: FakeSystemd, receiver: Receiver) -> None:
    config = write_config(tmp_path, extra=f"status_port: 0\nnotify:\n  webhooks: [{receiver.url}]")
    store = SQLiteStore(config.state_dir / "jobs.sqlite3")
    runtime = build_runtime(config, env={"NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": "200000"})
    runtime.status_every = 0.1
    daemon = Daemon(
        config, store, CopyBackend(), options=FAST, events=runtime.on_event, service=runtime
    )
    thread = threading.Thread(target=daemon.run_forever, kwargs={"install_signals": False})
    thread.start()
    try:
        ready = systemd.collect_until(lambda m: m.get("READY") == "1")
        assert ready["STATUS"].startswith("idle; 0 queued")
        systemd.collect_until(lambda m: m.get("WATCHDOG") == "1")

        beacon = read_beacon(beacon_path(config.state_dir))
        assert beacon is not None and beacon["status"].startswith("idle")
        port = beacon["status_port"]
        assert isinstance(port, int) and port > 0
        health = httpx.get(f"http://127.0.0.1:{port}/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["checks"] == {"store": True, "watchers": True, "loop": True}

        (tmp_path / "in" / "talk.mov").write_bytes(b"not really a movie")
        receiver.wait_for(lambda bodies: any(b["event"] == "done" for b in bodies))
        done = next(b for b in receiver.bodies if b["event"] == "done")
        assert done["job"]["source"] == str(tmp_path / "in" / "talk.mov")
        assert done["job"]["rule"] == "all"
        assert any(path.endswith("talk.mp4") for path in done["job"]["outputs"])
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert 'nemod_jobs{state="done"} 1' in metrics
    finally:
        daemon.request_stop()
        thread.join(30)
    assert not thread.is_alive()
    stopping = systemd.collect_until(lambda m: m.get("STOPPING") == "1")
    assert "stopping" in stopping["STATUS"]
    beacon = read_beacon(beacon_path(config.state_dir))
    assert beacon is not None and beacon.get("stopped_at")
    store.close()
    leftovers = {t.name for t in threading.enumerate()} & {"nemod-status-http", "nemod-notify"}
    assert not leftovers


def test_processing_window_holds_jobs_until_it_opens(tmp_path: Path) -> None:
    config = write_config(tmp_path, rule_extra='    schedule: "mon-fri 22:00-06:00"')
    saturday_noon = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC).timestamp()
    clock = ManualClock(saturday_noon)
    store = SQLiteStore(config.state_dir / "jobs.sqlite3", clock=clock)
    events: list[tuple[str, Job]] = []

    class Sink:
        def on_event(self, name: str, payload: Any) -> None:
            pass

    runtime = ServiceRuntime(
        config,
        sd=SdNotifier(None),
        beacon=DaemonBeacon(tmp_path / "b.json", started_at=0),
        sink=Sink(),
        wall=clock,
        zone=dt.UTC,
    )

    def on_event(name: str, job: Job) -> None:
        events.append((name, job))
        runtime.on_event(name, job)

    daemon = Daemon(config, store, CopyBackend(), options=FAST, events=on_event, service=runtime)

    def drive(until: Callable[[], bool]) -> None:
        run_until(daemon, until, detail=lambda: f"jobs: {store.jobs()}")

    try:
        (tmp_path / "in" / "late.mov").write_bytes(b"x")
        # The worker updates the store, then fires the event: wait for both.
        drive(lambda: store.counts()[JobState.WAITING] == 1 and any(n == "waiting" for n, _ in events))
        [job] = store.jobs(JobState.WAITING)
        assert job.wait_reason == "schedule"
        assert job.attempts == 0  # holding a job back is not an attempt
        monday_night = dt.datetime(2026, 11, 30, 22, 0, tzinfo=dt.UTC).timestamp()
        assert job.not_before == pytest.approx(monday_night)
        assert ("waiting", job.id) in [(name, j.id) for name, j in events]

        clock.now = monday_night - 60  # still shut: nothing starts
        for _ in range(5):
            daemon.run_once()
        assert store.counts()[JobState.WAITING] == 1

        clock.now = monday_night + 1
        drive(lambda: store.counts()[JobState.DONE] == 1)
    finally:
        daemon.stop()
        store.close()


# --- the runtime on its own ----------------------------------------------------------------


class FakeDaemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.backend: Any = None
        self.report: dict[str, Any] = {
            "ok": True,
            "folders": [{"path": "/in", "reachable": True}],
            "running": [
                {"job": "job-1", "file": "sub/talk.mov", "step": "render", "progress": 0.45}
            ],
            "jobs": {"queued": 3, "waiting": 1},
        }
        self.broken = False

    def health(self) -> dict[str, Any]:
        if self.broken:
            raise RuntimeError("database is locked")
        return self.report


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def on_event(self, name: str, payload: Any) -> None:
        self.events.append((name, dict(payload)))


class Balance:
    def __init__(self, available: int) -> None:
        self.available = available


def make_runtime(
    tmp_path: Path,
    config: Config,
    sink: EventSink,
    wall: Callable[[], float] | None = None,
    monotonic: Callable[[], float] | None = None,
) -> ServiceRuntime:
    return ServiceRuntime(
        config,
        sd=SdNotifier(None),
        beacon=DaemonBeacon(tmp_path / "beacon.json", started_at=0),
        sink=sink,
        wall=wall or time.time,
        monotonic=monotonic or time.monotonic,
        zone=dt.UTC,
    )


def test_status_line_beacon_and_health(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    ticks = ManualClock(100.0)
    runtime = make_runtime(tmp_path, config, Recorder(), monotonic=ticks)
    daemon = FakeDaemon(config)
    runtime.started(daemon)
    beacon = read_beacon(tmp_path / "beacon.json")
    assert beacon is not None
    assert beacon["status"] == "1 running (talk.mov render 45%); 3 queued; 1 waiting"
    assert beacon["health"] == {"watchers": True, "loop": True, "store": True}
    assert runtime.health() == {"watchers": True, "store": True, "loop": False}  # no tick yet
    runtime.tick(daemon)
    assert runtime.health() == {"watchers": True, "store": True, "loop": True}
    ticks.now += 31  # the main loop stopped ticking
    assert runtime.health()["loop"] is False
    daemon.report["folders"][0]["reachable"] = False
    runtime.tick(daemon)
    assert runtime.health()["watchers"] is False
    daemon.broken = True
    ticks.now += 5
    runtime.tick(daemon)  # a failing health() is logged, not raised
    assert runtime.health()["watchers"] is False
    runtime.stopped()


def test_job_events_become_notifications(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    sink = Recorder()
    runtime = make_runtime(tmp_path, config, sink)
    job = Job(
        id=7,
        fingerprint="f",
        rule="all",
        source=SourceRef("/in", "a.mov"),
        state=JobState.DONE,
        attempts=1,
        created_at=100.0,
        finished_at=160.0,
        outputs={".mp4": "/out/a.mp4"},
    )
    runtime.on_event("queued", job)
    runtime.on_event("done", job)
    failed = Job(
        id=8,
        fingerprint="g",
        rule="all",
        source=SourceRef("/in", "b.mov"),
        state=JobState.FAILED,
        attempts=2,
        error="NemoVideo error code 2001: no credits",
        error_code="2001",  # the store's column: nothing parses the text
    )
    runtime.on_event("failed", failed)
    assert [name for name, _ in sink.events] == ["done", "failed"]
    done = sink.events[0][1]["job"]
    assert done["id"] == "7"
    assert done["outputs"] == ["/out/a.mp4"]
    assert done["duration_seconds"] == 60.0
    assert sink.events[1][1]["job"]["error_code"] == "2001"


def test_credits_low_is_sent_once_until_credits_return(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="backend: cloud\ncloud:\n  min_credits: 50")
    sink = Recorder()
    runtime = make_runtime(tmp_path, config, sink)
    runtime.credits_every = 0.0001
    daemon = FakeDaemon(config)
    balances = [Balance(10), Balance(5), Balance(80), Balance(20)]
    daemon.backend = type("Cloud", (), {"balance": lambda self: balances.pop(0)})()

    def check_once() -> None:
        runtime._last_credits = None
        runtime.tick(daemon)
        assert runtime._credits_thread is not None
        runtime._credits_thread.join(5)

    for _ in range(4):
        check_once()
    lows = [payload for name, payload in sink.events if name == "credits_low"]
    assert [p["credits"]["balance"] for p in lows] == [10, 20]
    beacon = read_beacon(tmp_path / "beacon.json")
    runtime.stopped()
    beacon = read_beacon(tmp_path / "beacon.json")
    assert beacon is not None and beacon["credits"]["balance"] == 20


def test_waiting_for_credits_triggers_credits_low(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="backend: cloud")
    sink = Recorder()
    runtime = make_runtime(tmp_path, config, sink)
    job = Job(
        id=1,
        fingerprint="f",
        rule="all",
        source=SourceRef("/in", "a.mov"),
        state=JobState.WAITING,
        error="credits",
        wait_reason="credits",
    )
    runtime.on_event("waiting", job)
    runtime.on_event("waiting", job)
    assert [name for name, _ in sink.events] == ["credits_low"]
    assert sink.events[0][1] == {"credits": {"minimum": 50}}


def test_window_note_in_status(tmp_path: Path) -> None:
    config = write_config(tmp_path, rule_extra='    schedule: "mon-fri 22:00-06:00"')
    saturday_noon = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC).timestamp()
    runtime = make_runtime(tmp_path, config, Recorder(), wall=lambda: saturday_noon)
    daemon = FakeDaemon(config)
    daemon.report["running"] = []
    runtime.started(daemon)
    beacon = read_beacon(tmp_path / "beacon.json")
    assert beacon is not None
    assert (
        beacon["status"] == "idle; 3 queued; 1 waiting; outside processing windows until Mon 22:00"
    )


def test_describe_running() -> None:
    assert describe_running([{"file": "a/b.mov", "step": None, "progress": None}]) == (
        "b.mov starting",
    )


def test_cloud_balance_is_logged_at_start_and_after_each_job(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="backend: cloud\ncloud:\n  min_credits: 50")
    runtime = make_runtime(tmp_path, config, Recorder())
    runtime.credits_every = 3600.0
    daemon = FakeDaemon(config)
    balances = [Balance(90), Balance(40)]
    daemon.backend = type("Cloud", (), {"balance": lambda self: balances.pop(0)})()

    def tick() -> None:
        runtime.tick(daemon)
        if runtime._credits_thread is not None:
            runtime._credits_thread.join(5)

    job = Job(id=3, fingerprint="f", rule="all", source=SourceRef("/in", "a.mov"),
              state=JobState.DONE, attempts=1)
    with captured_logs() as logs:
        tick()  # start: first check
        tick()  # within the hour: no second check
        runtime.on_event("done", job)
        tick()  # after a job: checked again
    runtime.stopped()
    assert [(e["available"], e["minimum"]) for e in logs if e["event"] == "credits"] == [(90, 50), (40, 50)]

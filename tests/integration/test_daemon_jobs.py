"""The daemon end to end with real observers and real SQLite, and a trivial backend
(the engine is not what is tested here)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.daemon_loop import run_until
from support.logs import captured_logs

from nemod.backends.base import JobContext, JobRequest, Rendition
from nemod.config import Config, load
from nemod.daemon import Daemon, DaemonOptions
from nemod.daemon.cancels import CANCELLED
from nemod.errors import MediaError, NemodError, PermanentJobError, RetryableJobError, WaitingError
from nemod.store import Job, JobState, SourceRef, fingerprint
from nemod.store.base import JobStore
from nemod.store.postgres import PostgresStore
from nemod.store.sqlite import SQLiteStore
from nemod.timeline import Timeline

FAST = DaemonOptions(
    lease_seconds=5.0, heartbeat_seconds=0.1, stop_timeout=2.0, cancel_timeout=5.0,
    tick_seconds=0.05, retry_base_seconds=0.1, retry_max_seconds=1.0,
    unreachable_retry_seconds=0.2,
)


class FakeBackend:
    """Copies the source into the scratch folder; can block, fail or wait on request."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.started = threading.Event()
        self.gate: threading.Event | None = None
        self.errors: dict[str, list[Exception]] = {}
        self.cancelled = threading.Event()
        #: a render that does not notice it was cancelled and finishes anyway (no checkpoint)
        self.stubborn = False
        #: raise the queued errors after the gate opens instead of at once
        self.late_errors = False
        self.finished = threading.Event()
        self.running = 0
        self.max_running = 0
        self.threads: set[str] = set()
        self.sources: list[Path] = []
        self._lock = threading.Lock()

    def process(self, request: JobRequest, context: JobContext) -> Rendition:
        with self._lock:
            self.calls.append(request.source.name)
            self.sources.append(request.source)
            self.threads.add(threading.current_thread().name)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            self.started.set()
            context.checkpoint("edit")
            errors = self.errors.get(request.source.name)
            if errors and not self.late_errors:
                raise errors.pop(0)
            while self.gate is not None and not self.gate.wait(0.02):
                if context.cancel.is_set():
                    self.cancelled.set()
                    if not self.stubborn:
                        raise MediaError("ffmpeg was cancelled")
                    break
            if errors and self.late_errors:
                raise errors.pop(0)
            context.progress("render", 0.5)
            if not self.stubborn:
                context.checkpoint("render")
            video = request.work_dir / f"{request.stem}.mp4"
            video.write_bytes(request.source.read_bytes())
            self.finished.set()
            return Rendition(video=video, timeline=Timeline(video=None, duration=0), summary="copied")
        finally:
            with self._lock:
                self.running -= 1


def write_config(tmp_path: Path, extra: str = "", watch_extra: str = "", rule_extra: str = "") -> Path:
    (tmp_path / "in").mkdir(exist_ok=True)
    path = tmp_path / "nemod.yaml"
    path.write_text(
        f"""
state_dir: state
settle_seconds: 0.2
max_attempts: 3
{extra}
watch:
  - path: in
    output: out
    poll_interval: 0.2
{watch_extra}
rules:
  - name: all
{rule_extra}
"""
    )
    return path


class Harness:
    def __init__(self, tmp_path: Path, config: Config, **kwargs: Any) -> None:
        self.tmp_path = tmp_path
        self.inbox = tmp_path / "in"
        self.out = tmp_path / "out"
        self.store: JobStore = kwargs.pop("store", None) or SQLiteStore(config.state_dir / "jobs.sqlite3")
        self.backend = kwargs.pop("backend", FakeBackend())
        self.events: list[tuple[str, int]] = []
        self.daemon = Daemon(
            config, self.store, self.backend, options=kwargs.pop("options", FAST),
            events=lambda name, job: self.events.append((name, job.id)), **kwargs,
        )

    def drive(self, until: Callable[[], bool], timeout: float = 10.0) -> None:
        run_until(self.daemon, until, timeout=timeout, detail=lambda: f"jobs: {self.store.jobs()}")

    def jobs(self, state: JobState | None = None) -> list[Job]:
        return self.store.jobs(state, limit=10_000)

    def count(self, state: JobState) -> int:
        return self.store.counts()[state]

    def saw(self, name: str, count: int = 1) -> bool:
        return [event for event, _ in self.events].count(name) >= count

    def idle(self) -> bool:
        return not self.daemon.health()["running"]

    def outputs(self) -> list[str]:
        if not self.out.exists():
            return []
        return sorted(p.name for p in self.out.iterdir())


@pytest.fixture(autouse=True)
def no_threads_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    extra: list[threading.Thread] = []
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        extra[0].join(0.1)
    raise AssertionError(f"threads left running: {extra}")


@pytest.fixture
def harness(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    kwargs = getattr(request, "param", {})
    config = load(write_config(tmp_path, **kwargs))
    h = Harness(tmp_path, config)
    yield h
    h.daemon.stop(timeout=2)
    h.store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def any_harness(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    """A harness on the SQLite store, and one on a PostgreSQL store of a real cluster."""
    config = load(write_config(tmp_path))
    store = PostgresStore(request.getfixturevalue("pg_url")) if request.param == "postgres" else None
    h = Harness(tmp_path, config, store=store)
    yield h
    h.daemon.stop(timeout=2)
    h.store.close()


def test_a_dropped_file_becomes_one_done_job(harness: Harness) -> None:
    (harness.inbox / "talk.mp4").write_bytes(b"video" * 100)
    with captured_logs() as logs:
        harness.drive(lambda: harness.count(JobState.DONE) == 1)
    assert harness.outputs() == ["talk.log.json", "talk.mp4"]
    assert (harness.out / "talk.mp4").read_bytes() == b"video" * 100
    log = json.loads((harness.out / "talk.log.json").read_text())
    job = harness.jobs()[0]
    assert log["job"] == job.key and job.outputs[".mp4"] == str(harness.out / "talk.mp4")
    assert [name for name, _ in harness.events] == ["queued", "started", "done"]
    assert (harness.inbox / "talk.mp4").exists()  # on_success: leave
    lines = [entry for entry in logs if entry.get("job") == job.key]
    assert {"job_queued", "job_started", "job_done"} <= {entry["event"] for entry in lines}
    assert all(entry.get("file") == "talk.mp4" for entry in lines)


def test_renamed_or_moved_done_file_is_not_processed_again(harness: Harness) -> None:
    source = harness.inbox / "a.mp4"
    source.write_bytes(b"a" * 1000)
    harness.drive(lambda: harness.count(JobState.DONE) == 1)
    (harness.inbox / "sub").mkdir()
    os.rename(source, harness.inbox / "renamed.mp4")
    with captured_logs() as logs:
        harness.drive(lambda: any(e["event"] == "file_already_known" for e in logs))
    assert len(harness.jobs()) == 1 and harness.backend.calls == ["a.mp4"]
    # a changed file (new fingerprint) is a new job
    with (harness.inbox / "renamed.mp4").open("ab") as handle:
        handle.write(b"more")
    harness.drive(lambda: harness.count(JobState.DONE) == 2)
    assert harness.backend.calls == ["a.mp4", "renamed.mp4"]


def test_an_unsupported_file_is_moved_to_failed_with_a_sentence(harness: Harness) -> None:
    (harness.inbox / "notes.txt").write_text("hello")
    harness.drive(lambda: harness.saw("failed"))
    failed = harness.inbox / "failed"
    assert (failed / "notes.txt").read_text() == "hello"
    sentence = (failed / "notes.error.txt").read_text()
    assert "not an accepted type" in sentence and sentence.count("\n") == 1
    assert not (harness.inbox / "notes.txt").exists()
    assert harness.backend.calls == []
    assert harness.events[-1][0] == "failed"


def test_a_permanent_backend_error_fails_at_once(harness: Harness) -> None:
    harness.backend.errors["bad.mp4"] = [PermanentJobError("bad.mp4 is not a video ffmpeg can read.")]
    (harness.inbox / "bad.mp4").write_bytes(b"junk")
    harness.drive(lambda: harness.saw("failed"))
    job = harness.jobs(JobState.FAILED)[0]
    assert job.attempts == 1 and job.error == "bad.mp4 is not a video ffmpeg can read."
    assert (harness.inbox / "failed" / "bad.error.txt").exists()


def test_transient_errors_are_retried_with_backoff(harness: Harness) -> None:
    harness.backend.errors["flaky.mp4"] = [RetryableJobError("ffmpeg crashed")]
    (harness.inbox / "flaky.mp4").write_bytes(b"f")
    harness.drive(lambda: any(name == "retrying" for name, _ in harness.events))
    queued = harness.jobs()[0]
    assert queued.state is JobState.QUEUED and queued.error == "ffmpeg crashed"
    assert queued.not_before > queued.updated_at
    harness.drive(lambda: harness.count(JobState.DONE) == 1)
    assert harness.jobs()[0].attempts == 2 and harness.outputs() == ["flaky.log.json", "flaky.mp4"]


def test_retries_give_up_after_max_attempts(harness: Harness) -> None:
    harness.backend.errors["doomed.mp4"] = [OSError("disk on fire")] * 5
    (harness.inbox / "doomed.mp4").write_bytes(b"d")
    harness.drive(lambda: harness.saw("failed"))
    job = harness.jobs()[0]
    assert job.attempts == 3 and "failed 3 times" in (job.error or "")
    assert (harness.inbox / "failed" / "doomed.error.txt").exists()


def test_waiting_for_credits_is_not_an_attempt(harness: Harness) -> None:
    harness.backend.errors["c.mp4"] = [WaitingError("not enough credits", reason="credits", delay=0.3)]
    (harness.inbox / "c.mp4").write_bytes(b"c")
    harness.drive(lambda: harness.count(JobState.WAITING) == 1)
    waiting = harness.jobs()[0]
    assert waiting.attempts == 0 and waiting.wait_reason == "credits" and waiting.error == "not enough credits"
    harness.drive(lambda: harness.count(JobState.DONE) == 1)
    assert harness.jobs()[0].attempts == 1


@pytest.mark.parametrize("harness", [{"watch_extra": "    on_success: move"}], indirect=True)
def test_on_success_move(harness: Harness) -> None:
    (harness.inbox / "m.mp4").write_bytes(b"m")
    harness.drive(lambda: harness.saw("done"))
    assert (harness.inbox / "done" / "m.mp4").read_bytes() == b"m"
    assert not (harness.inbox / "m.mp4").exists()


@pytest.mark.parametrize("harness", [{"rule_extra": "    on_success: delete"}], indirect=True)
def test_on_success_delete_from_the_rule(harness: Harness) -> None:
    (harness.inbox / "d.mp4").write_bytes(b"d")
    harness.drive(lambda: harness.saw("done"))
    assert not (harness.inbox / "d.mp4").exists() and "d.mp4" in harness.outputs()


@pytest.mark.parametrize("harness", [{"watch_extra": "    on_failure: leave"}], indirect=True)
def test_on_failure_leave_keeps_the_source(harness: Harness) -> None:
    (harness.inbox / "x.txt").write_text("x")
    harness.drive(lambda: harness.saw("failed"))
    assert (harness.inbox / "x.txt").exists()
    assert (harness.inbox / "failed" / "x.error.txt").exists()
    harness.daemon.request_rescan()
    harness.daemon.run_once()
    assert len(harness.jobs()) == 1  # a failed file left in place is not queued again


def test_fifo_with_concurrency_one(harness: Harness) -> None:
    for index in range(5):
        path = harness.inbox / f"{index}.mp4"
        path.write_bytes(bytes([index]) * 10)
        os.utime(path, (1_000_000 + index, 1_000_000 + index))
    harness.drive(lambda: harness.count(JobState.DONE) == 5)
    assert harness.backend.max_running == 1
    done = sorted(harness.jobs(), key=lambda job: job.finished_at or 0)
    assert [job.id for job in done] == sorted(job.id for job in done)


@pytest.mark.parametrize("harness", [{"extra": "concurrency: 3"}], indirect=True)
def test_concurrency_limit(harness: Harness) -> None:
    harness.backend.gate = threading.Event()
    for index in range(6):
        (harness.inbox / f"{index}.mp4").write_bytes(bytes([index]) * 10)
    harness.drive(lambda: harness.backend.running == 3)
    assert len(harness.daemon.health()["running"]) == 3
    harness.backend.gate.set()
    harness.drive(lambda: harness.count(JobState.DONE) == 6)
    assert harness.backend.max_running == 3
    # Six jobs, three long-lived workers (names, not idents: the OS reuses idents).
    assert len(harness.backend.threads) == 3


def _taken_over(harness: Harness) -> Job:
    """Once the backend runs, another host takes the job over (as if our lease had
    expired); returns the job as it was claimed by us."""
    harness.drive(harness.backend.started.is_set)
    job = harness.jobs(JobState.RUNNING)[0]
    assert harness.store.expire_lease(job.id, job.lease_token)
    thief = harness.store.claim("other-host:1:1", lease_seconds=60)
    assert thief is not None and thief.id == job.id
    return job


def test_fencing_a_taken_over_job_is_cancelled_and_publishes_nothing(any_harness: Harness) -> None:
    harness = any_harness
    harness.backend.gate = threading.Event()
    (harness.inbox / "t.mp4").write_bytes(b"t")
    job = _taken_over(harness)
    harness.drive(lambda: harness.backend.cancelled.is_set() and harness.idle())
    assert harness.outputs() in ([], [".nemod-work"]) or "t.mp4" not in harness.outputs()
    current = harness.store.get(job.id)
    assert current is not None and current.state is JobState.RUNNING
    assert current.lease_owner == "other-host:1:1"
    assert "done" not in [name for name, _ in harness.events]


def test_a_render_that_finishes_after_its_lease_was_taken_publishes_nothing(any_harness: Harness) -> None:
    harness = any_harness
    harness.backend.gate = threading.Event()
    harness.backend.stubborn = True
    (harness.inbox / "t.mp4").write_bytes(b"t")
    job = _taken_over(harness)
    harness.backend.gate.set()  # the render completes although its lease is gone
    harness.drive(lambda: harness.backend.finished.is_set() and harness.idle())
    assert [name for name in harness.outputs() if not name.startswith(".")] == []
    current = harness.store.get(job.id)
    assert current is not None and current.state is JobState.RUNNING
    assert current.lease_owner == "other-host:1:1" and current.outputs == {}
    assert "done" not in [name for name, _ in harness.events]


def test_stop_gives_a_blocked_job_back_to_the_queue(harness: Harness) -> None:
    harness.backend.gate = threading.Event()
    (harness.inbox / "s.mp4").write_bytes(b"s")
    harness.drive(harness.backend.started.is_set)
    assert harness.daemon.stop(timeout=0.2)
    assert harness.backend.cancelled.is_set()
    job = harness.jobs()[0]
    assert job.state is JobState.QUEUED and job.attempts == 0


def test_stop_waits_for_a_job_to_reach_its_next_checkpoint(harness: Harness) -> None:
    harness.backend.gate = threading.Event()
    (harness.inbox / "s.mp4").write_bytes(b"s")
    harness.drive(harness.backend.started.is_set)
    threading.Timer(0.2, harness.backend.gate.set).start()
    assert harness.daemon.stop(timeout=5)
    assert not harness.backend.cancelled.is_set()
    job = harness.jobs()[0]
    assert job.state is JobState.QUEUED and job.step == "render"  # stopped at the checkpoint


def test_a_bad_config_on_reload_keeps_the_old_one(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))

    def bad_loader() -> Config:
        return load(tmp_path / "missing.yaml")

    harness = Harness(tmp_path, config, config_loader=bad_loader)
    try:
        harness.daemon.run_once()
        with captured_logs() as logs:
            harness.daemon.request_reload()
            harness.daemon.run_once()
        assert [e["event"] for e in logs if "reload" in e["event"]] == ["config_reload_failed"]
        assert harness.daemon.config is config
        (harness.inbox / "after.mp4").write_bytes(b"a")
        harness.drive(lambda: harness.count(JobState.DONE) == 1)
    finally:
        harness.daemon.stop(timeout=2)
        harness.store.close()


def test_a_good_config_on_reload_is_used(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))
    (tmp_path / "in2").mkdir()
    new_path = tmp_path / "new.yaml"
    new_path.write_text(
        "state_dir: state\nsettle_seconds: 0.2\nwatch:\n  - path: in2\n    output: out\n"
        "rules:\n  - name: all\n"
    )
    harness = Harness(tmp_path, config, config_loader=lambda: load(new_path))
    try:
        harness.daemon.run_once()
        harness.daemon.request_reload()
        harness.daemon.run_once()
        assert harness.daemon.config.watches[0].path == tmp_path / "in2"
        (tmp_path / "in2" / "n.mp4").write_bytes(b"n")
        harness.drive(lambda: harness.count(JobState.DONE) == 1)
        assert harness.jobs()[0].source == SourceRef(str(tmp_path / "in2"), "n.mp4")
    finally:
        harness.daemon.stop(timeout=2)
        harness.store.close()


def test_restart_reclaims_a_dead_processes_job_at_once(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))
    store = SQLiteStore(config.state_dir / "jobs.sqlite3")
    source = tmp_path / "in" / "r.mp4"
    source.write_bytes(b"r")
    stat = source.stat()
    from nemod.store import fingerprint

    store.enqueue(fingerprint(source), "all", SourceRef(str(tmp_path / "in"), "r.mp4"),
                  size=stat.st_size, mtime=stat.st_mtime)
    import socket
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    claimed = store.claim(f"{socket.gethostname()}:{dead.pid}:1", lease_seconds=3600)
    assert claimed is not None
    store.close()
    harness = Harness(tmp_path, config)
    try:
        harness.drive(lambda: harness.count(JobState.DONE) == 1, timeout=5)
        assert harness.jobs()[0].attempts == 2
    finally:
        harness.daemon.stop(timeout=2)
        harness.store.close()


def test_a_job_already_published_is_not_published_twice(harness: Harness) -> None:
    # First attempt publishes, then "crashes" before recording the job as done.
    (harness.inbox / "p.mp4").write_bytes(b"p")
    original_complete = harness.store.complete
    crashed = threading.Event()

    def crash_once(job_id: int, lease: int, outputs: Any) -> bool:
        if not crashed.is_set():
            crashed.set()
            raise RetryableJobError("the process died here")
        return original_complete(job_id, lease, outputs)

    harness.store.complete = crash_once  # type: ignore[method-assign]
    harness.drive(lambda: harness.count(JobState.DONE) == 1)
    assert harness.outputs() == ["p.log.json", "p.mp4"]
    assert harness.backend.calls == ["p.mp4"]


def test_health_reports_folders_running_jobs_and_counts(harness: Harness) -> None:
    harness.backend.gate = threading.Event()
    (harness.inbox / "h.mp4").write_bytes(b"h")
    harness.drive(harness.backend.started.is_set)
    harness.drive(lambda: harness.daemon.health()["running"][0]["step"] is not None)
    health = harness.daemon.health()
    assert health["ok"] and health["folders"][0]["reachable"]
    assert health["jobs"]["running"] == 1
    harness.backend.gate.set()
    harness.drive(lambda: harness.count(JobState.DONE) == 1)


class DeafObserver:
    """An observer that loses every event (as on a network share without polling)."""

    def schedule(self, *args: object, **kwargs: object) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def join(self) -> None:
        pass


def test_a_rescan_catches_files_whose_events_were_lost(tmp_path: Path) -> None:
    from nemod.watch.watcher import FolderWatcher

    config = load(write_config(tmp_path))

    def deaf_watcher(*args: Any, **kwargs: Any) -> FolderWatcher:
        return FolderWatcher(*args, observer_factory=lambda polling, interval: DeafObserver(),
                             **kwargs)

    harness = Harness(tmp_path, config, watcher_factory=deaf_watcher)
    try:
        harness.daemon.run_once()
        (harness.inbox / "lost.mp4").write_bytes(b"l")
        for _ in range(5):
            harness.daemon.run_once()
        assert harness.jobs() == []  # no event arrived
        harness.daemon.request_rescan()
        harness.drive(lambda: harness.count(JobState.DONE) == 1)
    finally:
        harness.daemon.stop(timeout=2)
        harness.store.close()


def test_a_file_still_open_for_writing_is_not_started(harness: Harness) -> None:
    path = harness.inbox / "open.mp4"
    with path.open("wb") as handle:
        handle.write(b"o" * 100)
        handle.flush()
        with captured_logs() as logs:
            harness.drive(lambda: any(e["event"] == "file_still_open" for e in logs))
        assert harness.jobs() == []
    harness.drive(lambda: harness.count(JobState.DONE) == 1)


class PaidBackend(FakeBackend):
    """Like a cloud backend: records a paid call in the ledger before and after making it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self.resumed_from: list[str | None] = []

    def process(self, request: JobRequest, context: JobContext) -> Rendition:
        entry = context.ledger.get("render")
        self.resumed_from.append(entry.remote_id if entry else None)
        if entry is None or entry.remote_id is None:
            context.ledger.record("render")
            self.sent += 1
            context.ledger.record("render", f"r-{self.sent}")
            raise RetryableJobError("connection reset while polling the render")
        return super().process(request, context)


def test_a_paid_call_is_not_sent_again_when_the_job_resumes(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))
    harness = Harness(tmp_path, config, backend=PaidBackend())
    try:
        (harness.inbox / "cloud.mp4").write_bytes(b"c")
        harness.drive(lambda: harness.count(JobState.DONE) == 1)
        assert harness.backend.sent == 1
        assert harness.backend.resumed_from == [None, "r-1"]
    finally:
        harness.daemon.stop(timeout=2)
        harness.store.close()


def test_hosts_mounting_one_share_at_different_places_share_jobs_by_folder_id(tmp_path: Path) -> None:
    # One NAS share, mounted at mnt-a on host A and at mnt-b on host B; one job store.
    shares = {"a": tmp_path / "mnt-a", "b": tmp_path / "mnt-b"}
    for share in shares.values():
        share.mkdir()
    (shares["a"] / "talk.mp4").write_bytes(b"the talk")
    shutil.copy2(shares["a"] / "talk.mp4", shares["b"] / "talk.mp4")  # same file, same mtime

    def host(name: str, backend: FakeBackend) -> tuple[Daemon, SQLiteStore]:
        path = tmp_path / f"host-{name}.yaml"
        path.write_text(
            f"state_dir: state\nsettle_seconds: 0.2\nmax_attempts: 5\nwatch:\n"
            f"  - path: {shares[name]}\n    id: studio-share\n    output: out-{name}\n"
            f"    poll_interval: 0.2\nrules:\n  - name: all\n"
        )
        config = load(path)
        store = SQLiteStore(config.state_dir / "jobs.sqlite3")
        return Daemon(config, store, backend, options=FAST, owner=f"host-{name}:1:1"), store

    backend_a = FakeBackend()
    backend_a.errors["talk.mp4"] = [RetryableJobError("the network dropped")] * 10
    daemon_a, store_a = host("a", backend_a)
    try:
        run_until(daemon_a, lambda: any(j.attempts >= 1 for j in store_a.jobs(JobState.QUEUED)),
                  detail=lambda: f"jobs: {store_a.jobs()}")
    finally:
        daemon_a.stop(timeout=2)
    [job] = store_a.jobs()
    assert job.source == SourceRef("studio-share", "talk.mp4")  # no host's mount point

    backend_b = FakeBackend()
    daemon_b, store_b = host("b", backend_b)
    try:
        run_until(daemon_b, lambda: store_b.counts()[JobState.DONE] == 1,
                  detail=lambda: f"jobs: {store_b.jobs()}")
        assert len(store_b.jobs()) == 1
    finally:
        daemon_b.stop(timeout=2)
        store_a.close()
        store_b.close()
    assert backend_b.sources == [shares["b"] / "talk.mp4"]  # resolved through B's config
    assert (tmp_path / "out-b" / "talk.mp4").read_bytes() == b"the talk"


def test_giving_a_folder_an_id_keeps_its_history(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    (tmp_path / "in" / "talk.mp4").write_bytes(b"talk")
    first = Harness(tmp_path, load(config_path))
    try:
        first.drive(lambda: first.count(JobState.DONE) == 1)
    finally:
        first.daemon.stop(timeout=2)
        first.store.close()
    config_path.write_text(config_path.read_text().replace("    output: out", "    id: inbox\n    output: out"))
    second = Harness(tmp_path, load(config_path))
    try:
        with captured_logs() as logs:
            second.daemon.run_once()
        assert [job.source for job in second.jobs()] == [SourceRef("inbox", "talk.mp4")]
        assert any(e["event"] == "folder_id_adopted" and e["jobs"] == 1 for e in logs)
        assert not any(e["event"] == "file_already_known" for e in logs)  # no fingerprinting again
        assert second.outputs().count("talk.mp4") == 1
    finally:
        second.daemon.stop(timeout=2)
        second.store.close()


def test_a_reload_during_a_job_does_not_change_how_its_failure_is_handled(tmp_path: Path) -> None:
    """The job's retry limit is the one of the config it started with (one snapshot per
    attempt): a reload lowering ``max_attempts`` to 1 mid-job does not turn its first
    failure into a permanent one; the next job gets the reloaded config."""
    first = load(write_config(tmp_path))
    changed = tmp_path / "changed.yaml"
    changed.write_text((tmp_path / "nemod.yaml").read_text().replace("max_attempts: 3", "max_attempts: 1"))
    harness = Harness(tmp_path, first, config_loader=lambda: load(changed))
    try:
        harness.backend.gate = threading.Event()
        harness.backend.late_errors = True
        harness.backend.errors["a.mp4"] = [MediaError("ffmpeg exited with 1")]
        (harness.inbox / "a.mp4").write_bytes(b"a")
        harness.drive(harness.backend.started.is_set)
        harness.daemon.request_reload()
        harness.drive(lambda: harness.daemon.config.max_attempts == 1)
        harness.backend.gate.set()
        harness.drive(lambda: harness.saw("retrying") or harness.saw("failed"))
        assert harness.saw("retrying") and not harness.saw("failed")
    finally:
        harness.daemon.stop(timeout=1)


def test_a_failing_job_for_a_file_whose_name_is_not_utf8_fails_cleanly(harness: Harness) -> None:
    raw = b"caf\xe9.mp4"
    name = os.fsdecode(raw)
    harness.backend.errors[name] = [PermanentJobError(f"{name} is not a readable video.")]
    with open(os.path.join(os.fsencode(harness.inbox), raw), "wb") as handle:
        handle.write(b"x")
    failed = os.fsencode(harness.inbox / "failed")
    harness.drive(lambda: harness.idle() and os.path.exists(os.path.join(failed, b"caf\xe9.error.txt")))
    (job,) = harness.jobs()
    assert job.state is JobState.FAILED
    assert job.source.relative == name and job.error == "caf\\xe9.mp4 is not a readable video."
    assert sorted(os.listdir(failed)) == [b"caf\xe9.error.txt", raw]
    with open(os.path.join(failed, b"caf\xe9.error.txt"), "rb") as handle:
        note = handle.read()
    assert note == b"caf\\xe9.mp4 is not a readable video.\n"


def test_cancelling_a_queued_job_fails_it_in_the_store_and_a_restart_keeps_it(any_harness: Harness) -> None:
    harness = any_harness
    source = harness.inbox / "talk.mp4"
    source.write_bytes(b"talk" * 100)
    stat = source.stat()
    key = harness.daemon.config.watches[0].key
    queued = harness.store.enqueue(fingerprint(source), "all", SourceRef(key, "talk.mp4"),
                                   size=stat.st_size, mtime=stat.st_mtime)
    assert queued is not None
    assert "will not start" in harness.daemon.request_cancel(queued.id)
    cancelled = harness.store.get(queued.id)
    assert cancelled is not None and cancelled.state is JobState.FAILED  # in the store, not in memory
    assert cancelled.error == CANCELLED and cancelled.error_code == "cancelled"
    assert ("failed", queued.id) in harness.events
    parked = harness.inbox / "failed" / "talk.mp4"
    assert parked.is_file() and not source.exists()  # on_failure: move, as for any failure
    assert "cancelled by a person" in (harness.inbox / "failed" / "talk.error.txt").read_text()
    with pytest.raises(NemodError, match="only queued or running jobs can be cancelled"):
        harness.daemon.request_cancel(queued.id)
    with pytest.raises(NemodError, match="does not exist"):
        harness.daemon.request_cancel(999_999)

    restarted = Daemon(harness.daemon.config, harness.store, harness.backend, options=FAST)
    harness.daemon = restarted  # a new process on the same store: nothing remembers the cancel but the store
    (harness.inbox / "next.mp4").write_bytes(b"next" * 100)
    harness.drive(lambda: harness.count(JobState.DONE) == 1)
    assert harness.backend.calls == ["next.mp4"]
    after = harness.store.get(queued.id)
    assert after is not None and after.state is JobState.FAILED and after.attempts == 0

"""The daemon driven one ``run_once(now)`` at a time with an explicit clock shared with
the store: settling and retry backoff follow the clock, not the wall."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from support.clocks import ManualClock

from nemod.backends.base import JobContext, JobRequest, Rendition
from nemod.config import load
from nemod.daemon import Daemon, DaemonOptions
from nemod.errors import RetryableJobError
from nemod.store import JobState, SourceRef
from nemod.store.sqlite import SQLiteStore
from nemod.timeline import Timeline
from nemod.watch.watcher import FolderWatcher


class DeafObserver:
    def schedule(self, *args: object, **kwargs: object) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def join(self) -> None:
        pass


def deaf_watcher(*args: Any, **kwargs: Any) -> FolderWatcher:
    return FolderWatcher(*args, observer_factory=lambda p, i: DeafObserver(), **kwargs)


class FlakyOnce:
    name = "flaky"

    def __init__(self) -> None:
        self.calls = 0
        self.finished = threading.Event()

    def process(self, request: JobRequest, context: JobContext) -> Rendition:
        self.calls += 1
        try:
            if self.calls == 1:
                raise RetryableJobError("the network hiccuped")
            video = request.work_dir / "v.mp4"
            video.write_bytes(b"v")
            return Rendition(video=video, timeline=Timeline(video=None, duration=0), summary="ok")
        finally:
            self.finished.set()


def test_settle_and_backoff_follow_the_injected_clock(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.mp4").write_bytes(b"a")
    config_path = tmp_path / "nemod.yaml"
    config_path.write_text(
        "state_dir: state\nsettle_seconds: 5\nwatch:\n  - path: in\n    output: out\n"
        "rules:\n  - name: all\n"
    )
    clock = ManualClock()
    store = SQLiteStore(tmp_path / "state" / "jobs.sqlite3", clock=clock)
    backend = FlakyOnce()
    daemon = Daemon(
        load(config_path), store, backend, clock=clock, watcher_factory=deaf_watcher,
        options=DaemonOptions(retry_base_seconds=30, check_open_files=False),
    )

    def step(seconds: float) -> None:
        clock.now += seconds
        daemon.run_once(clock.now)

    def finish_job() -> None:
        assert backend.finished.wait(10)
        backend.finished.clear()
        assert daemon.wait_idle(10)

    try:
        step(0)  # starts: the scan sees a.mp4 at t=0
        step(4.9)
        assert store.jobs() == []  # not settled yet
        step(0.2)
        finish_job()  # queued and started in the same iteration; failed once
        job = store.jobs()[0]
        assert job.state is JobState.QUEUED and job.not_before == clock.now + 30
        step(29)
        assert backend.calls == 1  # still backing off
        step(2)
        finish_job()
        step(0)
        assert store.jobs()[0].state is JobState.DONE and backend.calls == 2
    finally:
        daemon.stop(timeout=5)
        store.close()


def test_prune_applies_retention_days_on_the_store_clock(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    config_path = tmp_path / "nemod.yaml"
    config_path.write_text(
        "state_dir: state\nretention_days: 7\nwatch:\n  - path: in\n    output: out\n"
        "rules:\n  - name: all\n"
    )
    clock = ManualClock()
    store = SQLiteStore(tmp_path / "state" / "jobs.sqlite3", clock=clock)
    daemon = Daemon(load(config_path), store, FlakyOnce(), clock=clock, watcher_factory=deaf_watcher)
    try:
        job = store.enqueue("fp", "all", SourceRef(str(tmp_path / "in"), "bad.mp4"))
        assert job is not None
        claimed = store.claim("w", lease_seconds=60)
        assert claimed is not None
        store.fail(claimed.id, claimed.lease_token, "bad.mp4 is empty (0 bytes).")
        clock.now += 6 * 86_400
        assert daemon.prune() == 0
        clock.now += 2 * 86_400
        assert daemon.prune() == 1
        assert store.get(job.id) is None
    finally:
        daemon.stop()
        store.close()

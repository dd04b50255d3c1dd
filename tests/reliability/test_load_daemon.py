"""Load suite: many files, many folders, a big existing folder — each file done exactly once.

The real daemon loop (``run_forever`` in a thread, native observers, SQLite store) with a
trivial copy backend, so what is measured is the daemon, not the engine (the same set-up
as bench/daemon_burst.py). Long forms: ``-m slow`` (10,000 files processed) and
bench/reliability_soak.py (an hour with RSS sampled).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.backends import CopyBackend

from nemod.config import Config, load
from nemod.daemon import Daemon, DaemonOptions
from nemod.store import JobState, SourceRef
from nemod.store.sqlite import SQLiteStore


class Running:
    """The daemon's own loop in a thread; ``done`` counts done events."""

    def __init__(self, config: Config) -> None:
        self.store = SQLiteStore(config.state_dir / "jobs.sqlite3")
        self.backend = CopyBackend()
        self.done = 0
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        options = DaemonOptions(tick_seconds=0.05, heartbeat_seconds=1.0)
        self.daemon = Daemon(config, self.store, self.backend, options=options, events=self.on_event)
        self.thread = threading.Thread(target=self.daemon.run_forever, kwargs={"install_signals": False})

    def on_event(self, name: str, job: object) -> None:
        if name == "done":
            with self.changed:
                self.done += 1
                self.changed.notify_all()

    def wait_done(self, count: int, timeout: float) -> float:
        started = time.monotonic()
        with self.changed:
            if not self.changed.wait_for(lambda: self.done >= count, timeout):
                raise AssertionError(f"only {self.done} of {count} done; {self.store.counts()}")
        return time.monotonic() - started

    def rescan_and_stop(self) -> None:
        """A full rescan (nothing may be queued again), then a graceful stop."""
        before = sum(self.store.counts().values())
        scanned = threading.Event()
        original = self.daemon.run_once

        def once(now: float | None = None) -> None:
            rescan = self.daemon._rescan.is_set()
            original(now)
            if rescan:
                scanned.set()

        self.daemon.run_once = once  # type: ignore[method-assign]
        self.daemon.request_rescan()
        assert scanned.wait(60)
        self.daemon.request_stop()
        self.thread.join(60)
        assert sum(self.store.counts().values()) == before

    def close(self) -> None:
        if self.thread.is_alive():
            self.daemon.request_stop()
            self.thread.join(60)
        self.store.close()


def config_for(root: Path, folders: int = 1, concurrency: int = 4) -> Config:
    names = ["in"] if folders == 1 else [f"in{i}" for i in range(folders)]
    watches = ""
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        watches += f"  - path: {name}\n    output: {name.replace('in', 'out', 1)}\n"
    (root / "nemod.yaml").write_text(
        f"state_dir: state\nsettle_seconds: 0.5\nconcurrency: {concurrency}\n"
        f"watch:\n{watches}rules:\n  - name: all\n    edit: copy\n"
    )
    return load(root / "nemod.yaml")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Any]:
    handles: list[Running] = []

    def make(config: Config) -> Running:
        handle = Running(config)
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        handle.close()


def check_exactly_once(root: Path, run: Running, expected: dict[str, list[str]]) -> None:
    """Every file of ``expected`` (watch folder → names) has one done job, one backend call
    and one output named like it; nothing else."""
    counts = run.store.counts()
    total = sum(len(names) for names in expected.values())
    assert counts[JobState.DONE] == total == sum(counts.values()), counts
    assert len(run.backend.calls) == total and set(run.backend.calls.values()) == {1}
    for folder, names in expected.items():
        out = root / folder.replace("in", "out", 1)
        produced = sorted(p.name for p in out.glob("*.mp4"))
        assert produced == sorted(names), f"{folder}: {len(produced)} outputs for {len(names)} files"


def write_files(folder: Path, count: int, prefix: str = "f") -> list[str]:
    names = []
    for index in range(count):
        name = f"{prefix}{index:05d}.mp4"
        (folder / name).write_bytes(f"{prefix}{index}".encode() * 32)
        names.append(name)
    return names


def test_thousand_files_dropped_within_ten_seconds(tmp_path: Path, running: Any) -> None:
    run = running(config_for(tmp_path))
    run.thread.start()
    started = time.monotonic()
    names = []
    for batch in range(10):  # ten bursts of 100 over about 2 s
        names += write_files(tmp_path / "in", 100, prefix=f"b{batch}-")
        time.sleep(0.2)
    assert time.monotonic() - started < 10
    seconds = run.wait_done(1000, 240)
    run.rescan_and_stop()
    check_exactly_once(tmp_path, run, {"in": names})
    print(f"1,000 dropped: all done {seconds:.1f} s after the drop began")


def test_eight_watched_folders(tmp_path: Path, running: Any) -> None:
    run = running(config_for(tmp_path, folders=8))
    run.thread.start()
    expected = {}
    for index in range(8):
        expected[f"in{index}"] = write_files(tmp_path / f"in{index}", 40, prefix=f"d{index}-")
    run.wait_done(320, 180)
    run.rescan_and_stop()
    check_exactly_once(tmp_path, run, expected)


def seed_known(config: Config, folder: Path, names: list[str]) -> None:
    """Record ``names`` as done jobs (as a previous run would have)."""
    store = SQLiteStore(config.state_dir / "jobs.sqlite3")
    try:
        for name in names:
            info = (folder / name).stat()
            job = store.enqueue(f"seed-{name}", "all", SourceRef(str(folder), name),
                                size=info.st_size, mtime=info.st_mtime)
            assert job is not None
        while (claimed := store.claim("seed", lease_seconds=60)) is not None:
            store.complete(claimed.id, claimed.lease_token, {})
    finally:
        store.close()


def test_folder_with_ten_thousand_existing_files(tmp_path: Path, running: Any) -> None:
    """A restart over 10,000 files already done and 25 new ones: only the new ones run, and
    the start-up scan does not hold the daemon up."""
    config = config_for(tmp_path)
    old = write_files(tmp_path / "in", 10_000, prefix="old")
    seed_known(config, tmp_path / "in", old)
    new = write_files(tmp_path / "in", 25, prefix="new")
    run = running(config)
    started = time.monotonic()
    run.thread.start()
    seconds = run.wait_done(25, 120)
    run.rescan_and_stop()
    assert run.store.counts()[JobState.DONE] == 10_025
    assert sorted(Path(c).name for c in run.backend.calls) == sorted(new)
    assert set(run.backend.calls.values()) == {1}
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) == sorted(new)
    print(f"10,000 known + 25 new: new ones done {time.monotonic() - started:.1f} s after start ({seconds:.1f})")


@pytest.mark.slow
def test_ten_thousand_existing_files_all_processed(tmp_path: Path, running: Any) -> None:
    config = config_for(tmp_path)
    names = write_files(tmp_path / "in", 10_000)
    run = running(config)
    run.thread.start()
    seconds = run.wait_done(10_000, 1800)
    run.rescan_and_stop()
    check_exactly_once(tmp_path, run, {"in": names})
    print(f"10,000 existing: all done in {seconds:.0f} s ({10_000 / seconds:.0f} jobs/s)")


def test_no_file_descriptor_leak_over_many_jobs(tmp_path: Path, running: Any) -> None:
    """Open descriptors after 300 jobs are about what they were after the first 20."""
    run = running(config_for(tmp_path))
    run.thread.start()
    write_files(tmp_path / "in", 20, prefix="warm")
    run.wait_done(20, 60)
    before = len(os.listdir("/proc/self/fd"))
    write_files(tmp_path / "in", 280, prefix="more")
    run.wait_done(300, 120)
    after = len(os.listdir("/proc/self/fd"))
    run.rescan_and_stop()
    assert after <= before + 5, (before, after)

"""Daemon helpers: backoff, lease owners, failure notes, moving sources aside."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from nemod.config import WatchFolder
from nemod.daemon import WorkerPool, backoff, make_owner, move_aside, owner_is_dead, write_failure


def test_backoff_doubles_and_caps() -> None:
    assert [backoff(n, 30, 3600) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert backoff(20, 30, 3600) == 3600


def test_owner_of_a_live_process_is_alive() -> None:
    me = make_owner()
    assert not owner_is_dead(me, me)
    assert not owner_is_dead(None, me)
    assert not owner_is_dead("otherhost:1:1", me)
    assert not owner_is_dead("nonsense", me)
    parent = os.getppid()
    host = socket.gethostname()
    start = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[19]
    assert not owner_is_dead(f"{host}:{parent}:{start}", me)


def test_owner_of_a_dead_process_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    me = make_owner()
    host = socket.gethostname()
    assert owner_is_dead(f"{host}:{child.pid}:12345", me)
    # our own pid with another tag: an earlier process that had the same pid
    assert owner_is_dead(f"{host}:{os.getpid()}:not-me", me)
    # a live pid whose start time differs: the pid was reused
    assert owner_is_dead(f"{host}:{os.getppid()}:1", me)


def _watch(tmp_path: Path) -> WatchFolder:
    return WatchFolder(
        path=tmp_path / "in", output=tmp_path / "out", failed=tmp_path / "in" / "failed",
        done=tmp_path / "in" / "done",
    )


def test_write_failure_moves_the_source_and_writes_one_sentence(tmp_path: Path) -> None:
    watch = _watch(tmp_path)
    source = watch.path / "day1" / "clip.mp4"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"x")
    note = write_failure(source, watch, "day1/clip.mp4", "clip.mp4 is corrupt.", move=True)
    assert not source.exists()
    assert (watch.failed / "day1" / "clip.mp4").read_bytes() == b"x"
    assert note == watch.failed / "day1" / "clip.error.txt"
    assert note.read_text() == "clip.mp4 is corrupt.\n"


def test_write_failure_can_leave_the_source(tmp_path: Path) -> None:
    watch = _watch(tmp_path)
    source = watch.path / "clip.mp4"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"x")
    note = write_failure(source, watch, "clip.mp4", "No rule matches.", move=False)
    assert source.exists() and note == watch.failed / "clip.error.txt"


def test_move_aside_never_overwrites(tmp_path: Path) -> None:
    folder = tmp_path / "done"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(b"old")
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"new")
    target = move_aside(source, folder, "clip.mp4")
    assert target == folder / "clip-1.mp4" and target.read_bytes() == b"new"
    assert (folder / "clip.mp4").read_bytes() == b"old"


def test_worker_pool_reuses_at_most_size_threads_and_shuts_down() -> None:
    pool = WorkerPool(name="test-worker")
    ran: list[str] = []
    finished = threading.Semaphore(0)

    def work(index: int) -> None:
        ran.append(threading.current_thread().name)  # idents are reused by the OS; names not
        finished.release()

    for index in range(40):
        pool.submit(lambda index=index: work(index), size=2)
    for _ in range(40):
        assert finished.acquire(timeout=10)
    assert len(ran) == 40
    assert len(set(ran)) <= 2
    assert pool.shutdown(timeout=10)
    assert not [t for t in threading.enumerate() if t.name.startswith("test-worker")]


def test_worker_pool_shutdown_reports_a_stuck_worker() -> None:
    pool = WorkerPool(name="stuck-worker")
    release = threading.Event()
    pool.submit(release.wait, size=1)
    assert pool.shutdown(timeout=0.2) is False
    release.set()


def test_worker_pool_survives_a_job_raising_system_exit_and_refuses_work_after_shutdown() -> None:
    pool = WorkerPool(name="exit-worker")
    done = threading.Event()

    def leave() -> None:
        raise SystemExit(3)

    pool.submit(leave, size=1)
    pool.submit(done.set, size=1)  # the single worker is still there to run it
    assert done.wait(10)
    assert pool.shutdown(timeout=10)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(done.set, size=1)

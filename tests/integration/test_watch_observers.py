"""Real watchdog observers (native and polling) on temporary folders."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nemod.config import WatchFolder
from nemod.watch.openfiles import open_for_writing
from nemod.watch.watcher import FolderWatcher, FoundFile


@pytest.fixture(autouse=True)
def no_threads_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            return
        extra[0].join(0.1)
    raise AssertionError(f"threads left running: {extra}")


def make_watch(tmp_path: Path, **overrides: object) -> WatchFolder:
    root = tmp_path / "in"
    root.mkdir(exist_ok=True)
    values: dict[str, object] = {
        "path": root, "output": root / "out", "failed": root / "failed", "done": root / "done",
        "settle_seconds": 0.3, "poll_interval": 0.2,
    }
    values.update(overrides)
    return WatchFolder(**values)  # type: ignore[arg-type]


@pytest.fixture
def watchers() -> Iterator[list[FolderWatcher]]:
    started: list[FolderWatcher] = []
    yield started
    for watcher in started:
        watcher.stop()


def start(
    watchers: list[FolderWatcher], watch: WatchFolder,
    known: Callable[[str, int, float], bool] = lambda r, s, m: False,
) -> FolderWatcher:
    watcher = FolderWatcher(watch, known)
    watchers.append(watcher)
    watcher.start(time.monotonic())
    return watcher


def collect(
    watcher: FolderWatcher, until: Callable[[list[FoundFile]], bool], timeout: float = 10.0
) -> list[FoundFile]:
    """Poll the watcher (waking on its events) until ``until(found)`` or the timeout."""
    found: list[FoundFile] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found.extend(watcher.poll(time.monotonic()))
        if until(found):
            return found
        watcher.wakeup.wait(0.05)
        watcher.wakeup.clear()
    return found


def names(found: list[FoundFile]) -> list[str]:
    return [f.relative for f in found]


@pytest.mark.parametrize("polling", [False, True], ids=["native", "polling"])
def test_a_new_file_is_reported_once_after_settling(
    tmp_path: Path, watchers: list[FolderWatcher], polling: bool
) -> None:
    watcher = start(watchers, make_watch(tmp_path, polling=polling))
    assert watcher.polling is polling
    written = time.monotonic()
    (watcher.watch.path / "clip.mp4").write_bytes(b"x" * 1000)
    found = collect(watcher, bool)
    assert names(found) == ["clip.mp4"] and found[0].size == 1000
    assert time.monotonic() - written >= 0.3
    assert collect(watcher, lambda f: False, timeout=1.0) == []


def _write_slowly(path: Path, seconds: float, stop: threading.Event) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with path.open("ab") as handle:
            handle.write(b"y" * 4096)
        stop.wait(0.1)


def _slow_file_case(tmp_path: Path, watchers: list[FolderWatcher], seconds: float) -> None:
    watcher = start(watchers, make_watch(tmp_path, settle_seconds=1.0))
    path = watcher.watch.path / "slow.mp4"
    stop = threading.Event()
    writer = threading.Thread(target=_write_slowly, args=(path, seconds, stop))
    writer.start()
    try:
        early = collect(watcher, lambda f: bool(f) or not writer.is_alive(), timeout=seconds + 5)
        assert early == [], "a file that is still growing must never be reported"
    finally:
        stop.set()
        writer.join()
    final_size = path.stat().st_size
    found = collect(watcher, bool)
    assert names(found) == ["slow.mp4"] and found[0].size == final_size
    assert collect(watcher, lambda f: False, timeout=1.5) == []


def test_a_slowly_written_file_is_reported_once_after_it_stops_growing(
    tmp_path: Path, watchers: list[FolderWatcher]
) -> None:
    _slow_file_case(tmp_path, watchers, seconds=3.0)


@pytest.mark.slow
def test_a_file_appended_for_ten_seconds(tmp_path: Path, watchers: list[FolderWatcher]) -> None:
    _slow_file_case(tmp_path, watchers, seconds=10.0)


def test_a_file_renamed_into_the_folder(tmp_path: Path, watchers: list[FolderWatcher]) -> None:
    watcher = start(watchers, make_watch(tmp_path))
    outside = tmp_path / "staging.mp4"
    outside.write_bytes(b"z" * 100)
    os.rename(outside, watcher.watch.path / "arrived.mp4")
    assert names(collect(watcher, bool)) == ["arrived.mp4"]


def test_a_partial_download_renamed_to_its_final_name(
    tmp_path: Path, watchers: list[FolderWatcher]
) -> None:
    watcher = start(watchers, make_watch(tmp_path))
    partial = watcher.watch.path / "clip.mp4.part"
    partial.write_bytes(b"z" * 100)
    assert collect(watcher, bool, timeout=1.0) == []
    os.rename(partial, watcher.watch.path / "clip.mp4")
    assert names(collect(watcher, bool)) == ["clip.mp4"]


def test_a_folder_deleted_and_recreated(tmp_path: Path, watchers: list[FolderWatcher]) -> None:
    watcher = start(watchers, make_watch(tmp_path))
    (watcher.watch.path / "first.mp4").write_bytes(b"1" * 10)
    assert names(collect(watcher, bool)) == ["first.mp4"]
    shutil.rmtree(watcher.watch.path)
    assert collect(watcher, lambda f: not watcher.reachable) == []
    assert not watcher.reachable
    watcher.watch.path.mkdir()
    (watcher.watch.path / "second.mp4").write_bytes(b"2" * 10)
    assert names(collect(watcher, bool)) == ["second.mp4"]
    assert watcher.reachable
    (watcher.watch.path / "third.mp4").write_bytes(b"3" * 10)
    assert names(collect(watcher, bool)) == ["third.mp4"]


def test_an_unreachable_root_at_start_is_watched_once_it_appears(
    tmp_path: Path, watchers: list[FolderWatcher]
) -> None:
    watch = make_watch(tmp_path)
    watch.path.rmdir()
    watcher = start(watchers, watch)
    assert not watcher.reachable and watcher.poll(time.monotonic()) == []
    watch.path.mkdir()
    (watch.path / "late.mp4").write_bytes(b"l")
    assert names(collect(watcher, bool)) == ["late.mp4"]


def test_startup_scan_recursion_ignores_and_known_files(
    tmp_path: Path, watchers: list[FolderWatcher]
) -> None:
    watch = make_watch(tmp_path, recursive=True)
    root = watch.path
    (root / "day1").mkdir()
    (root / "day1" / "a.mp4").write_bytes(b"a")
    (root / "b.mp4").write_bytes(b"b")
    (root / "done.mp4").write_bytes(b"d")
    (root / ".hidden.mp4").write_bytes(b"h")
    (root / "out").mkdir()
    (root / "out" / "result.mp4").write_bytes(b"r")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"s")
    (root / "link.mp4").symlink_to(outside / "secret.mp4")
    (root / "linkdir").symlink_to(outside)
    (root / "inner-link.mp4").symlink_to(root / "b.mp4")
    watcher = start(watchers, watch, known=lambda rel, size, mtime: rel == "done.mp4")
    found = collect(watcher, lambda f: len(f) >= 3)
    assert sorted(names(found)) == ["b.mp4", "day1/a.mp4", "inner-link.mp4"]


def test_a_folder_moved_in_is_scanned_when_recursive(
    tmp_path: Path, watchers: list[FolderWatcher]
) -> None:
    watcher = start(watchers, make_watch(tmp_path, recursive=True))
    staging = tmp_path / "card"
    staging.mkdir()
    (staging / "c1.mp4").write_bytes(b"1")
    (staging / "c2.mp4").write_bytes(b"2")
    os.rename(staging, watcher.watch.path / "card")
    found = collect(watcher, lambda f: len(f) >= 2)
    assert sorted(names(found)) == ["card/c1.mp4", "card/c2.mp4"]


def test_non_recursive_watch_ignores_subfolders(
    tmp_path: Path, watchers: list[FolderWatcher]
) -> None:
    watcher = start(watchers, make_watch(tmp_path))
    (watcher.watch.path / "sub").mkdir()
    (watcher.watch.path / "sub" / "x.mp4").write_bytes(b"x")
    (watcher.watch.path / "top.mp4").write_bytes(b"t")
    assert names(collect(watcher, lambda f: False, timeout=1.0)) == ["top.mp4"]


def test_open_for_writing_sees_our_own_writer(tmp_path: Path) -> None:
    path = tmp_path / "busy.mp4"
    other = tmp_path / "idle.mp4"
    other.write_bytes(b"i")
    with path.open("wb") as handle:
        handle.write(b"b")
        handle.flush()
        with other.open("rb"):
            assert open_for_writing([path, other]) == {path}
    assert open_for_writing([path, other]) == set()

"""One watched folder: a watchdog observer, a startup scan, and the settle tracker.

The observer only says *where to look*: every candidate is stat-ed and must settle
(:class:`~nemod.watch.settle.SettleTracker`) before it is reported. Scans and events
feed the same tracker, so a lost event is caught by the next scan.

A root that cannot be reached (share unmounted, folder deleted) is *unreachable*: its
files are not reported and nothing is inferred from their absence. When it comes back
(or was replaced by a new folder), the observer is restarted and the tree rescanned.

Paths are plain strings here (os.scandir/os.stat): scans touch tens of thousands of
entries and pathlib objects would dominate the cost.
"""
# ruff: noqa: PTH116, PTH118

from __future__ import annotations

import os
import stat as stat_module
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from nemod.config import WatchFolder
from nemod.names import WORK_DIR_NAME, is_utf8, readable, shown
from nemod.watch.ignore import is_ignored
from nemod.watch.mounts import fs_type_of, needs_polling
from nemod.watch.settle import SettleTracker, Signature

#: ``known(relative, size, mtime)``: True when the file was already turned into a job.
Known = Callable[[str, int, float], bool]


@dataclass(frozen=True)
class FoundFile:
    """A settled file: its path relative to the watch root, size and mtime."""

    relative: str
    size: int
    mtime: float


class _Handler(FileSystemEventHandler):
    """Collects the paths events mention; the watcher reads them on its next poll."""

    def __init__(self, root: str, wakeup: threading.Event) -> None:
        self._root = root
        self._wakeup = wakeup
        self._lock = threading.Lock()
        self.files: set[str] = set()
        self.dirs: set[str] = set()

    def _relative(self, path: str | bytes) -> str | None:
        text = os.fsdecode(path)
        if text == self._root or not text.startswith(self._root + os.sep):
            return None
        return text[len(self._root) + 1 :].replace(os.sep, "/")

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Remember the file or folder an event is about (deletions need nothing)."""
        if event.event_type in ("deleted", "opened", "closed_no_write"):
            return
        path = event.dest_path if event.event_type == "moved" else event.src_path
        relative = self._relative(path)
        if relative is None:
            return
        with self._lock:
            if event.is_directory:
                if event.event_type in ("created", "moved"):
                    self.dirs.add(relative)
            else:
                self.files.add(relative)
        self._wakeup.set()

    def drain(self) -> tuple[set[str], set[str]]:
        """The files and folders mentioned since the last drain."""
        with self._lock:
            files, dirs = self.files, self.dirs
            self.files, self.dirs = set(), set()
        return files, dirs


def _make_observer(polling: bool, poll_interval: float) -> Any:
    return PollingObserver(timeout=poll_interval) if polling else Observer()


class FolderWatcher:
    """Turns one :class:`WatchFolder` into a stream of settled, not-yet-known files.

    ``known`` says whether a file (relative path, size, mtime) already has a job;
    ``wakeup`` is set whenever an event arrives (the daemon's loop waits on it).
    """

    def __init__(
        self,
        watch: WatchFolder,
        known: Known,
        *,
        wakeup: threading.Event | None = None,
        observer_factory: Callable[[bool, float], Any] = _make_observer,
        fs_type: Callable[[Path], str | None] = fs_type_of,
    ) -> None:
        self.watch = watch
        self.root = str(watch.path)
        self._known = known
        self.wakeup = wakeup or threading.Event()
        self._observer_factory = observer_factory
        self._fs_type = fs_type
        self.tracker: SettleTracker[str] = SettleTracker(watch.settle_seconds)
        self._handler = _Handler(self.root, self.wakeup)
        self._observer: Any = None
        self._identity: tuple[int, int] | None = None
        self.reachable = False
        self.polling = False
        self.fs_type: str | None = None
        self._seen: dict[str, Signature] = {}
        self._excluded = (
            *(
                os.path.relpath(folder, self.root).replace(os.sep, "/")
                for folder in (watch.output, watch.failed, watch.done)
                if str(folder).startswith(self.root + os.sep)
            ),
            WORK_DIR_NAME,
        )
        self._log = structlog.get_logger("nemod.watch").bind(folder=self.root)

    # --- lifecycle ----------------------------------------------------------------------

    def _root_identity(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.root)
        except OSError:
            return None
        if not stat_module.S_ISDIR(info.st_mode):
            return None
        return (info.st_dev, info.st_ino)

    def start(self, now: float) -> None:
        """Start observing (if the root is reachable) and scan the tree."""
        self._identity = self._root_identity()
        self.reachable = self._identity is not None
        if not self.reachable:
            self._log.warning("watch_unreachable")
            return
        self.fs_type = self._fs_type(Path(self.root))
        self.polling = needs_polling(self.watch.polling, self.fs_type)
        observer = self._observer_factory(self.polling, self.watch.poll_interval)
        observer.schedule(self._handler, self.root, recursive=self.watch.recursive)
        observer.start()
        self._observer = observer
        self._log.info(
            "watch_started", polling=self.polling, fs_type=self.fs_type,
            recursive=self.watch.recursive,
        )
        self.scan(now)

    def stop(self) -> None:
        """Stop the observer and wait for its threads."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join()

    def check_root(self, now: float) -> None:
        """Notice a root that went away or came back (a new folder, a remount)."""
        identity = self._root_identity()
        if identity == self._identity:
            return
        if identity is None:
            if self.reachable:
                self._log.warning("watch_unreachable")
            self.reachable = False
            self._identity = None
            self.stop()
            return
        self._log.info("watch_reachable_again")
        self.stop()
        self.start(now)

    # --- finding files ------------------------------------------------------------------

    def _signature(self, relative: str) -> Signature | None:
        """(size, mtime) of a regular file inside the tree, else None."""
        path = os.path.join(self.root, relative)
        try:
            info = os.lstat(path)
            if stat_module.S_ISLNK(info.st_mode):
                target = os.path.realpath(path)
                if not target.startswith(os.path.realpath(self.root) + os.sep):
                    return None  # symlinks are not followed out of the watched tree
                info = os.stat(path)
        except OSError:
            return None
        if not stat_module.S_ISREG(info.st_mode):
            return None
        return (info.st_size, info.st_mtime)

    def _consider(self, relative: str, now: float) -> None:
        """Start (or continue) settling ``relative`` unless it is ignored or known."""
        if is_ignored(relative, self.watch.ignore, self._excluded):
            return
        if not self.watch.recursive and "/" in relative:
            return
        signature = self._signature(relative)
        if signature is None:
            self.tracker.forget(relative)
            return
        if self._seen.get(relative) == signature:
            self.tracker.forget(relative)
            return
        if relative not in self.tracker and self._known(relative, *signature):
            self._seen[relative] = signature
            self.tracker.forget(relative)
            return
        if relative not in self.tracker:
            if not is_utf8(relative):
                # Processed like any other file (nemod.names keeps its bytes exactly); said
                # when a new such file is first seen.
                self._log.info("file_name_not_utf8", file=shown(relative),
                               readable_stem=readable(relative.rsplit("/", 1)[-1].rsplit(".", 1)[0]))
            self.tracker.observe(relative, signature, now)

    def _walk(self, start: str) -> Iterator[str]:
        """Relative paths of the entries below ``start`` (symlinked folders not entered)."""
        stack = [start]
        while stack:
            folder = stack.pop()
            absolute = os.path.join(self.root, folder) if folder else self.root
            try:
                with os.scandir(absolute) as entries:
                    for entry in entries:
                        relative = f"{folder}/{entry.name}" if folder else entry.name
                        try:
                            is_dir = entry.is_dir(follow_symlinks=False)
                        except OSError:
                            continue
                        if is_dir:
                            if self.watch.recursive and not is_ignored(
                                relative, self.watch.ignore, self._excluded
                            ):
                                stack.append(relative)
                        else:
                            yield relative
            except OSError:
                continue

    def scan(self, now: float, start: str = "") -> int:
        """Look at every file of the tree (or below ``start``); returns how many were seen."""
        if not self.reachable:
            return 0
        walked: set[str] = set()
        for relative in self._walk(start):
            self._consider(relative, now)
            walked.add(relative)
        if not start:  # a full scan: forget files that left the folder (bounded memory)
            self._seen = {key: value for key, value in self._seen.items() if key in walked}
        return len(walked)

    def poll(self, now: float) -> list[FoundFile]:
        """Take in events, re-check pending files, return the ones that just settled."""
        self.check_root(now)
        if not self.reachable:
            return []
        files, dirs = self._handler.drain()
        for folder in dirs:
            if self.watch.recursive:
                self.scan(now, folder)
        for relative in files:
            self._consider(relative, now)
        settled: list[FoundFile] = []
        for relative in self.tracker.pending():
            signature = self._signature(relative)
            if self.tracker.observe(relative, signature, now) and signature is not None:
                settled.append(FoundFile(relative, *signature))
        return settled

    def postpone(self, found: FoundFile, now: float) -> None:
        """Wait again for ``found`` (e.g. a process still has it open for writing)."""
        self.tracker.postpone(found.relative, (found.size, found.mtime), now)

    def mark_seen(self, found: FoundFile) -> None:
        """Remember that ``found`` was handled, so scans skip it cheaply."""
        self._seen[found.relative] = (found.size, found.mtime)

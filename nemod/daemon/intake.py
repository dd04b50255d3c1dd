"""Intake: the watchers of the configured folders, and the queueing of the files they find.

:meth:`Intake.poll` is one pass: every watcher's settled files, less those a process
still has open for writing, become jobs in the store (one per file and rule; a file no
rule matches becomes a job that fails with the reason why).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from nemod.config import Config, WatchFolder
from nemod.daemon.attempt import NO_RULE
from nemod.errors import PermanentJobError, StoreUnavailableError
from nemod.names import shown
from nemod.pipeline import choose_rule
from nemod.store.base import Job, JobStore, SourceRef, fingerprint
from nemod.watch.openfiles import open_for_writing
from nemod.watch.watcher import FolderWatcher, FoundFile


class Intake:
    """Watches ``config``'s folders and queues their finished files in ``store``.

    ``watcher_factory`` makes a :class:`FolderWatcher` (tests pass fakes), ``wakeup`` is set
    by watchers when something happened, ``queued`` is told of each new job and
    ``check_open_files`` turns the open-for-writing check on.
    """

    def __init__(
        self,
        store: JobStore,
        *,
        wakeup: threading.Event,
        queued: Callable[[Job], None],
        watcher_factory: Callable[..., FolderWatcher] = FolderWatcher,
        check_open_files: bool = True,
    ) -> None:
        self.store = store
        self.watchers: list[FolderWatcher] = []
        self._wakeup = wakeup
        self._queued = queued
        self._watcher_factory = watcher_factory
        self._check_open_files = check_open_files
        self._log = structlog.get_logger("nemod.daemon")

    def start(self, config: Config, now: float) -> None:
        """Watch ``config``'s folders (stopping any watched before) and scan them."""
        self.stop()
        self._adopt_folder_ids(config)
        self.watchers = [self._make_watcher(watch) for watch in config.watches]
        for watcher in self.watchers:
            watcher.start(now)

    def stop(self) -> None:
        """Stop every watcher."""
        for watcher in self.watchers:
            watcher.stop()

    def rescan(self, now: float) -> None:
        """Scan every folder again (lost events are caught this way)."""
        for watcher in self.watchers:
            watcher.scan(now)

    def folders(self) -> list[dict[str, Any]]:
        """Each folder's path, reachability, observer kind and files still settling."""
        return [{"path": w.root, "reachable": w.reachable, "polling": w.polling, "pending": len(w.tracker)}
                for w in self.watchers]

    def _make_watcher(self, watch: WatchFolder) -> FolderWatcher:
        key = watch.key

        def known(relative: str, size: int, mtime: float) -> bool:
            return self.store.known(SourceRef(key, relative), size, mtime)

        return self._watcher_factory(watch, known, wakeup=self._wakeup)

    def _adopt_folder_ids(self, config: Config) -> None:
        """A folder that was just given an ``id:`` keeps its history: its jobs, stored
        under its path until now, are renamed to the id."""
        for watch in config.watches:
            if watch.id:
                renamed = self.store.rename_folder(str(watch.path), watch.id)
                if renamed:
                    self._log.info("folder_id_adopted", folder=str(watch.path), id=watch.id, jobs=renamed)

    def poll(self, config: Config, now: float) -> None:
        """Queue every file the watchers found settled (rules chosen under ``config``)."""
        settled: list[tuple[FolderWatcher, FoundFile]] = []
        for watcher in self.watchers:
            settled.extend((watcher, found) for found in watcher.poll(now))
        if not settled:
            return
        busy: set[Path] = set()
        if self._check_open_files:
            busy = open_for_writing(Path(w.root) / f.relative for w, f in settled)
        for index, (watcher, found) in enumerate(settled):
            if Path(watcher.root) / found.relative in busy:
                self._log.debug("file_still_open", file=shown(found.relative))
                watcher.postpone(found, now)
                continue
            try:
                self._enqueue(config, watcher, found)
            except StoreUnavailableError:
                # The store is down: these files are queued when it answers again.
                for later_watcher, later in settled[index:]:
                    later_watcher.postpone(later, now)
                raise

    def _enqueue(self, config: Config, watcher: FolderWatcher, found: FoundFile) -> None:
        path = Path(watcher.root) / found.relative
        log = self._log.bind(file=shown(found.relative), folder=watcher.root)
        try:
            print_ = fingerprint(path, found.size, found.mtime)
        except OSError as exc:
            log.warning("file_unreadable", error=str(exc))
            return
        try:
            rule_name = choose_rule(config, path, watcher.watch).name
        except PermanentJobError:
            rule_name = NO_RULE
        job = self.store.enqueue(print_, rule_name, SourceRef(watcher.watch.key, found.relative),
                                 size=found.size, mtime=found.mtime)
        watcher.mark_seen(found)
        if job is None:
            log.info("file_already_known", rule=rule_name)
            return
        log.info("job_queued", job=job.key, rule=rule_name)
        self._queued(job)

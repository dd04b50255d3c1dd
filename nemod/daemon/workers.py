"""The daemon's long-lived worker threads."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import structlog


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

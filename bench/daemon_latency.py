"""Latency from a file's last write to its job starting, native vs polling observer.

Runs the real daemon loop (``run_forever`` in a thread, real watchdog observers, real
SQLite) with a backend that only records when it was called. Prints the median and
worst latency per observer and compares them with the targets from the issue:
native ≤ settle + 1 s, polling ≤ settle + poll interval + 1 s.

    .venv/bin/python bench/daemon_latency.py [--settle 5] [--poll 5] [--samples 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from nemod.backends.base import JobContext, JobRequest, Rendition
from nemod.config import load
from nemod.daemon import Daemon, DaemonOptions
from nemod.logs import configure
from nemod.store.sqlite import SQLiteStore
from nemod.timeline import Timeline


class StampBackend:
    name = "stamp"

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.event = threading.Event()

    def process(self, request: JobRequest, context: JobContext) -> Rendition:
        self.started[request.source.name] = time.monotonic()
        self.event.set()
        video = request.work_dir / f"{request.stem}.mp4"
        video.write_bytes(b"")
        return Rendition(video=video, timeline=Timeline(video=None, duration=0), summary="stamp")


def measure(polling: bool, settle: float, poll: float, samples: int) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "in").mkdir()
        config_path = root / "nemod.yaml"
        config_path.write_text(
            f"state_dir: state\nsettle_seconds: {settle}\n"
            f"watch:\n  - path: in\n    output: out\n    polling: {str(polling).lower()}\n"
            f"    poll_interval: {poll}\nrules:\n  - name: all\n"
        )
        config = load(config_path)
        store = SQLiteStore(config.state_dir / "jobs.sqlite3")
        backend = StampBackend()
        daemon = Daemon(config, store, backend, options=DaemonOptions())
        thread = threading.Thread(target=daemon.run_forever, kwargs={"install_signals": False})
        thread.start()
        latencies = []
        try:
            for index in range(samples):
                name = f"clip{index}.mp4"
                backend.event.clear()
                path = root / "in" / name
                with path.open("wb") as handle:
                    for _ in range(5):  # a few writes, like a copy in progress
                        handle.write(b"x" * 65536)
                        handle.flush()
                last_write = time.monotonic()
                if not backend.event.wait(settle + poll + 30):
                    raise RuntimeError("job never started")
                latencies.append(backend.started[name] - last_write)
        finally:
            daemon.request_stop()
            thread.join()
            store.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--poll", type=float, default=5.0)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    configure("warning")
    print(f"settle_seconds={args.settle} poll_interval={args.poll} samples={args.samples}")
    for polling in (False, True):
        latencies = measure(polling, args.settle, args.poll, args.samples)
        target = args.settle + (args.poll if polling else 0) + 1
        kind = "polling" if polling else "native "
        print(
            f"{kind}: median {statistics.median(latencies):.2f} s, worst {max(latencies):.2f} s, "
            f"target ≤ {target:.1f} s -> {'OK' if max(latencies) <= target else 'MISSED'} "
            f"(worst/target {max(latencies) / target:.2f})"
        )


if __name__ == "__main__":
    main()

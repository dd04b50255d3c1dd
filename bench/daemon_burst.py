"""1,000 files dropped at once: every one processed exactly once.

The real daemon loop (``run_forever`` in a thread, native observer, real SQLite) with a
trivial "copy" backend, so the daemon — not the engine — is what is measured. Prints
the wall time from the last file written to the last job done, the throughput, and
checks: one done job per file, one backend call per file, one output per file.

    .venv/bin/python bench/daemon_burst.py [--files 1000] [--concurrency 1 4]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import threading
import time
from pathlib import Path

from nemod.backends.base import JobContext, JobRequest, Rendition
from nemod.config import load
from nemod.daemon import Daemon, DaemonOptions
from nemod.logs import configure
from nemod.store import JobState
from nemod.store.sqlite import SQLiteStore
from nemod.timeline import Timeline


class CopyBackend:
    name = "copy"

    def __init__(self, expected: int) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.expected = expected
        self.all_done = threading.Event()

    def process(self, request: JobRequest, context: JobContext) -> Rendition:
        context.checkpoint("render")
        video = request.work_dir / f"{request.stem}.mp4"
        video.write_bytes(request.source.read_bytes())
        with self.lock:
            self.calls[request.source.name] += 1
        return Rendition(video=video, timeline=Timeline(video=None, duration=0), summary="copy")


def run(files: int, concurrency: int, settle: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "in").mkdir()
        config_path = root / "nemod.yaml"
        config_path.write_text(
            f"state_dir: state\nsettle_seconds: {settle}\nconcurrency: {concurrency}\n"
            "watch:\n  - path: in\n    output: out\nrules:\n  - name: all\n    edit: copy\n"
        )
        config = load(config_path)
        store = SQLiteStore(config.state_dir / "jobs.sqlite3")
        backend = CopyBackend(files)
        done = threading.Event()
        finished = 0

        def on_event(name: str, job: object) -> None:
            nonlocal finished
            if name == "done":
                finished += 1
                if finished == files:
                    done.set()

        daemon = Daemon(config, store, backend, options=DaemonOptions(), events=on_event)
        thread = threading.Thread(target=daemon.run_forever, kwargs={"install_signals": False})
        thread.start()
        try:
            daemon.wakeup.wait(0)  # the loop is running; drop everything at once
            for index in range(files):
                (root / "in" / f"drop{index:04d}.mp4").write_bytes(index.to_bytes(4, "big") * 64)
            dropped = time.monotonic()
            if not done.wait(600):
                raise RuntimeError(f"only {finished} of {files} jobs finished")
            seconds = time.monotonic() - dropped
            # let a rescan run too: nothing may be queued twice
            daemon.request_rescan()
            time.sleep(settle + 1)
        finally:
            daemon.request_stop()
            thread.join()
        counts = store.counts()
        store.close()
        outputs = sorted(p.name for p in (root / "out").iterdir() if p.suffix == ".mp4")
        once = (
            counts[JobState.DONE] == files and sum(counts.values()) == files
            and len(backend.calls) == files and set(backend.calls.values()) == {1}
            and len(outputs) == files
        )
        print(
            f"concurrency {concurrency}: {files} files done in {seconds:.1f} s after the drop "
            f"(settle {settle} s), {files / seconds:.0f} jobs/s; "
            f"exactly once: {'YES' if once else 'NO'} (jobs {sum(counts.values())}, "
            f"done {counts[JobState.DONE]}, backend calls {sum(backend.calls.values())}, "
            f"outputs {len(outputs)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--settle", type=float, default=2.0)
    args = parser.parse_args()
    configure("warning")
    for concurrency in args.concurrency:
        run(args.files, concurrency, args.settle)


if __name__ == "__main__":
    main()

"""Startup scan of a folder holding N files that were all processed before.

A child process starts the daemon (store, watcher, scan of every file, one
``run_once``) and reports the time taken; its peak resident memory (``ru_maxrss``,
the whole Python process, imports included) is read by the parent. Targets from the
issue: ≤ 10 s and ≤ 150 MB for 10,000 files. A second figure scans the same folder
with an empty store (every file new: each one is stat-ed and starts settling) to show
what the "already known" fast path saves.

    .venv/bin/python bench/daemon_startup_scan.py [--files 10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path
from nemod.config import load
from nemod.daemon import Daemon, DaemonOptions
from nemod.logs import configure
from nemod.store.sqlite import SQLiteStore

configure("warning")
config = load(Path(sys.argv[1]))
started = time.monotonic()
store = SQLiteStore(config.state_dir / "jobs.sqlite3")
class Idle:
    name = "idle"
    def process(self, request, context):
        raise AssertionError("nothing should run")
daemon = Daemon(config, store, Idle(), options=DaemonOptions())
daemon.start()
daemon.run_once()
elapsed = time.monotonic() - started
pending = sum(len(w.tracker) for w in daemon.watchers)
daemon.stop(timeout=1)
store.close()
print(json.dumps({"seconds": elapsed, "pending": pending}))
"""


def run_child(config: Path) -> tuple[float, int, float]:
    """(seconds, files still settling, peak RSS in MB over every child so far: an upper
    bound for this child)."""
    output = subprocess.run(
        [sys.executable, "-c", CHILD, str(config)], check=True, capture_output=True, text=True
    ).stdout
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = json.loads(output.strip().splitlines()[-1])
    return result["seconds"], result["pending"], peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from nemod.config import load
    from nemod.store import SourceRef, fingerprint
    from nemod.store.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        inbox = root / "in"
        inbox.mkdir()
        config_path = root / "nemod.yaml"
        config_path.write_text(
            "state_dir: state\nwatch:\n  - path: in\n    output: out\nrules:\n  - name: all\n"
        )
        config = load(config_path)
        for index in range(args.files):
            (inbox / f"clip{index:05d}.mp4").write_bytes(index.to_bytes(4, "big") * 16)
        # cold run first: an empty store, every file is new
        empty_seconds, empty_pending, _ = run_child(config_path)
        (config.state_dir / "jobs.sqlite3").unlink()
        store = SQLiteStore(config.state_dir / "jobs.sqlite3")
        started = time.monotonic()
        for path in sorted(inbox.iterdir()):
            stat = path.stat()
            job = store.enqueue(
                fingerprint(path, stat.st_size, stat.st_mtime), "all",
                SourceRef(str(inbox), path.name), size=stat.st_size, mtime=stat.st_mtime,
            )
            claimed = store.claim("bench", lease_seconds=60)
            assert job and claimed
            store.complete(claimed.id, claimed.lease_token, {})
        setup = time.monotonic() - started
        store.close()
        seconds, pending, peak_mb = run_child(config_path)
    print(f"files: {args.files} (store filled in {setup:.1f} s)")
    print(f"all already done: startup {seconds:.2f} s, pending after scan {pending}, "
          f"peak RSS {peak_mb:.0f} MB  (targets ≤ 10 s, ≤ 150 MB -> "
          f"{'OK' if seconds <= 10 and peak_mb <= 150 else 'MISSED'})")
    print(f"all new (empty store): startup {empty_seconds:.2f} s, pending after scan "
          f"{empty_pending}; known/new time ratio {seconds / empty_seconds:.2f}")


if __name__ == "__main__":
    main()

"""The daemon running for a long time: memory stays flat, no file missed or repeated.

The real daemon loop (``run_forever`` in a thread, native observer, SQLite store) with the
real local engine on a ``copy`` rule (remux, one ffmpeg per job), ``on_success: move``.
A new distinct 1.5 s clip is dropped every ``--interval`` seconds for ``--minutes``; the
process's RSS is sampled every ``--sample`` seconds. Growth is the median of the last
three samples over the median of the first three taken after the warm-up (the first
tenth of the run). Prints the figures; ``--json PATH`` also writes them.

    .venv/bin/python bench/reliability_soak.py [--minutes 60] [--interval 0.5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from nemod.config import EngineSettings, load
from nemod.daemon import Daemon, DaemonOptions
from nemod.engine.local import LocalBackend, LocalEngine
from nemod.logs import configure
from nemod.media import ffmpeg
from nemod.samples import make_clip
from nemod.store import JobState
from nemod.store.sqlite import SQLiteStore


def rss_kib() -> int:
    """This process's resident set size in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def soak(minutes: float, interval: float, sample: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "in").mkdir()
        (root / "staging").mkdir()
        template = make_clip(root / "template.mp4", width=320, height=240, seconds=1.5)
        config_path = root / "nemod.yaml"
        config_path.write_text(
            "state_dir: state\nsettle_seconds: 0.5\nrescan_seconds: 30\nconcurrency: 1\n"
            "watch:\n  - path: in\n    output: out\n    on_success: move\n"
            "rules:\n  - name: copy\n    edit: copy\n"
        )
        config = load(config_path)
        store = SQLiteStore(config.state_dir / "jobs.sqlite3")
        backend = LocalBackend(LocalEngine(EngineSettings(preset="ultrafast")))
        done = 0
        lock = threading.Lock()

        def on_event(name: str, job: object) -> None:
            nonlocal done
            if name == "done":
                with lock:
                    done += 1

        daemon = Daemon(config, store, backend, options=DaemonOptions(), events=on_event)
        thread = threading.Thread(target=daemon.run_forever, kwargs={"install_signals": False})
        thread.start()
        samples: list[tuple[float, int]] = []
        dropped = 0
        started = time.monotonic()
        end = started + minutes * 60
        next_sample = started
        try:
            while time.monotonic() < end:
                name = f"clip-{dropped:05d}.mp4"
                ffmpeg.run(["-y", "-i", str(template), "-c", "copy", "-metadata", f"title={dropped}",
                            str(root / "staging" / name)])
                (root / "staging" / name).rename(root / "in" / name)
                dropped += 1
                now = time.monotonic()
                if now >= next_sample:
                    samples.append((now - started, rss_kib()))
                    next_sample = now + sample
                time.sleep(max(0.0, interval - (time.monotonic() - now)))
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                with lock:
                    if done >= dropped:
                        break
                time.sleep(0.5)
            samples.append((time.monotonic() - started, rss_kib()))
            daemon.request_rescan()
            time.sleep(config.settle_seconds + 2)  # let a full rescan run: nothing may be queued again
        finally:
            daemon.request_stop()
            thread.join()
        counts = store.counts()
        store.close()
        outputs = sorted(p.name for p in (root / "out").glob("*.mp4"))
        repeated = [name for name in outputs if not name.startswith("clip-") or name.count("-") > 1]
        warm = [s for s in samples if s[0] >= minutes * 60 / 10] or samples
        first = statistics.median(v for _, v in warm[:3])
        last = statistics.median(v for _, v in samples[-3:])
        return {
            "minutes": minutes, "dropped": dropped, "done": counts[JobState.DONE],
            "jobs": sum(counts.values()), "outputs": len(outputs), "repeated": len(repeated),
            "missed": dropped - counts[JobState.DONE], "rss_first_kib": first, "rss_last_kib": last,
            "rss_growth_percent": round(100 * (last - first) / first, 1), "samples": samples,
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--sample", type=float, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    configure("warning")
    result = soak(args.minutes, args.interval, args.sample)
    print(
        f"{result['minutes']} min: {result['dropped']} files dropped, {result['done']} done, "
        f"{result['jobs']} jobs, {result['outputs']} outputs; missed {result['missed']}, "
        f"repeated {result['repeated']}; RSS {result['rss_first_kib']} → {result['rss_last_kib']} KiB "
        f"({result['rss_growth_percent']:+} %)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

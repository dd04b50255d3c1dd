"""The daemon running for a long time: memory stays flat, no file missed or repeated.

The real daemon loop (``run_forever`` in a thread, native observer, SQLite store, malloc
arenas capped as ``nemod run`` caps them unless ``--default-malloc``) with the
real local engine on a ``copy`` rule (remux, one ffmpeg per job), ``on_success: move``.
A new distinct 1.5 s clip is dropped every ``--interval`` seconds for ``--minutes``; the
process's RSS is sampled every ``--sample`` seconds. Growth is the median of the last
three samples over the median of the first three taken after the warm-up (the first
tenth of the run). Prints the figures; ``--json PATH`` also writes them.

Diagnostics for when the figure moves: ``--trimmed`` also samples RSS right after glibc's
``malloc_trim(0)`` (freed heap handed back, so what remains is live memory; this changes
the run, so its plain RSS figures are not comparable with an untrimmed run),
``--mappings`` prints the mappings (heap, anonymous, each library) whose resident size
grew most, and ``--tracemalloc`` prints the Python allocation sites that grew most between the end of
the warm-up and the end of the run (it slows the run and adds its own memory).

    .venv/bin/python bench/reliability_soak.py [--minutes 60] [--interval 0.5]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import statistics
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

from nemod.config import EngineSettings, load
from nemod.daemon import Daemon, DaemonOptions
from nemod.engine.local import LocalBackend, LocalEngine
from nemod.logs import configure
from nemod.malloc import limit_arenas
from nemod.media import ffmpeg
from nemod.samples import make_clip
from nemod.store import JobState
from nemod.store.sqlite import SQLiteStore


def rss_kib() -> int:
    """This process's resident set size in KiB (Linux)."""
    return status_kib()["VmRSS"]


def status_kib() -> dict[str, int]:
    """This process's memory counters from /proc/self/status in KiB: VmRSS and its parts
    RssAnon (heap, stacks), RssFile (mapped files: libraries) and RssShmem."""
    wanted = ("VmRSS", "RssAnon", "RssFile", "RssShmem")
    values = dict.fromkeys(wanted, 0)
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in wanted:
            values[key] = int(rest.split()[0])
    return values


def mappings_kib() -> dict[str, int]:
    """Resident KiB per mapping name from /proc/self/smaps: a path, [heap], [stack], or for
    anonymous mappings ``anon <size> kB`` (1024 kB: Python's object arenas; 8192 kB: thread
    stacks; others: glibc's per-thread malloc arenas and large blocks)."""
    totals: dict[str, int] = {}
    name = "anon"
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
            start, _, end = fields[0].partition("-")
            size = (int(end, 16) - int(start, 16)) // 1024
            name = fields[5] if len(fields) > 5 else f"anon {size} kB"
        elif fields and fields[0] == "Rss:":
            totals[name] = totals.get(name, 0) + int(fields[1])
    return totals


def malloc_trim() -> None:
    """Hand glibc's freed heap back to the kernel (no-op where there is no glibc)."""
    name = ctypes.util.find_library("c")
    if name:
        libc = ctypes.CDLL(name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)


def soak(
    minutes: float, interval: float, sample: float, *, trimmed: bool = False, trace: bool = False,
    mappings: bool = False,
) -> dict[str, object]:
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
        trimmed_samples: list[tuple[float, int]] = []
        warm_snapshot: tracemalloc.Snapshot | None = None
        parts: list[tuple[float, dict[str, int]]] = []
        warm_mappings: dict[str, int] | None = None
        if trace:
            tracemalloc.start(12)
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
                    parts.append((now - started, status_kib()))
                    if mappings and warm_mappings is None and now - started >= minutes * 6:
                        warm_mappings = mappings_kib()
                    if trimmed:
                        malloc_trim()
                        trimmed_samples.append((now - started, rss_kib()))
                    if trace and warm_snapshot is None and now - started >= minutes * 6:
                        warm_snapshot = tracemalloc.take_snapshot()
                    next_sample = now + sample
                time.sleep(max(0.0, interval - (time.monotonic() - now)))
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                with lock:
                    if done >= dropped:
                        break
                time.sleep(0.5)
            samples.append((time.monotonic() - started, rss_kib()))
            if trimmed:
                malloc_trim()
                trimmed_samples.append((time.monotonic() - started, rss_kib()))
            growth = []
            grown: list[str] = []
            if warm_mappings is not None:
                end_mappings = mappings_kib()
                deltas = {k: v - warm_mappings.get(k, 0) for k, v in end_mappings.items()}
                grown = [f"{delta:+6d} KiB  {name}" for name, delta in
                         sorted(deltas.items(), key=lambda kv: -abs(kv[1]))[:12]]
            if trace and warm_snapshot is not None:
                end_snapshot = tracemalloc.take_snapshot()
                growth = [str(d) for d in end_snapshot.compare_to(warm_snapshot, "traceback")[:15]]
                for stat in end_snapshot.compare_to(warm_snapshot, "traceback")[:8]:
                    growth.append("\n".join(stat.traceback.format(limit=8)))
            daemon.request_rescan()
            time.sleep(config.settle_seconds + 2)  # let a full rescan run: nothing may be queued again
        finally:
            daemon.request_stop()
            thread.join()
        counts = store.counts()
        store.close()
        outputs = sorted(p.name for p in (root / "out").glob("*.mp4"))
        repeated = [name for name in outputs if not name.startswith("clip-") or name.count("-") > 1]
        first, last = _growth(samples, minutes)
        extra: dict[str, object] = {}
        if trimmed:
            t_first, t_last = _growth(trimmed_samples, minutes)
            extra |= {"trimmed_first_kib": t_first, "trimmed_last_kib": t_last,
                      "trimmed_growth_percent": round(100 * (t_last - t_first) / t_first, 1),
                      "trimmed_samples": trimmed_samples}
        if trace:
            extra["tracemalloc_growth"] = growth
        if mappings:
            extra["mapping_growth"] = grown
        return extra | {
            "minutes": minutes, "dropped": dropped, "done": counts[JobState.DONE],
            "jobs": sum(counts.values()), "outputs": len(outputs), "repeated": len(repeated),
            "missed": dropped - counts[JobState.DONE], "rss_first_kib": first, "rss_last_kib": last,
            "rss_growth_percent": round(100 * (last - first) / first, 1), "samples": samples,
            "parts": parts,
        }


def _growth(samples: list[tuple[float, int]], minutes: float) -> tuple[float, float]:
    """Median of the first three samples after the warm-up, and of the last three."""
    warm = [s for s in samples if s[0] >= minutes * 60 / 10] or samples
    return statistics.median(v for _, v in warm[:3]), statistics.median(v for _, v in samples[-3:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--sample", type=float, default=30)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--trimmed", action="store_true", help="also sample RSS after malloc_trim")
    parser.add_argument("--tracemalloc", action="store_true", help="print the sites that grew")
    parser.add_argument("--mappings", action="store_true", help="print the mappings that grew")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's arena count as it is (nemod run caps it at 2)")
    args = parser.parse_args()
    configure("warning")
    if not args.default_malloc:
        limit_arenas()  # what `nemod run` does
    result = soak(args.minutes, args.interval, args.sample, trimmed=args.trimmed,
                  trace=args.tracemalloc, mappings=args.mappings)
    print(
        f"{result['minutes']} min: {result['dropped']} files dropped, {result['done']} done, "
        f"{result['jobs']} jobs, {result['outputs']} outputs; missed {result['missed']}, "
        f"repeated {result['repeated']}; RSS {result['rss_first_kib']} → {result['rss_last_kib']} KiB "
        f"({result['rss_growth_percent']:+} %)"
    )
    if args.trimmed:
        print(f"after malloc_trim: {result['trimmed_first_kib']} → {result['trimmed_last_kib']} KiB "
              f"({result['trimmed_growth_percent']:+} %)")
    for key in ("mapping_growth", "tracemalloc_growth"):
        for line in result.get(key, []):  # type: ignore[attr-defined]
            print(line)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

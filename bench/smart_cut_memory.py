"""Resident memory of one smart-cut render over time, sampled every 0.5 s in the rendering
process (ru_maxrss gives only the peak; the samples show where it comes from: each
re-encoded run's libx264 session and decoder on top of a floor).

The recording is the one ``bench/smart_cut.py`` generates (kept in ``--folder`` between
runs). Compare two checkouts by running it with each on ``PYTHONPATH``.

Run:  .venv/bin/python bench/smart_cut_memory.py --minutes 10
"""

from __future__ import annotations

import argparse
import json
import resource
import threading
import time
from pathlib import Path

from smart_cut import make_recording, trim_draft

from nemod.config import EngineSettings
from nemod.engine.local import LocalEngine


def rss_mb() -> float:
    """This process's resident set now (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/nemod-smart-cut-memory"))
    parser.add_argument("--preset", default="veryfast")
    options = parser.parse_args()
    folder = options.folder / f"{options.minutes:g}min"
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"lecture-{options.minutes:g}min.mp4"
    if not source.exists():
        source = make_recording(folder, options.minutes)
    draft, _ = trim_draft(source, options.minutes * 60)
    engine = LocalEngine(EngineSettings(preset=options.preset, smart_cut=True))
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(rss_mb())
            time.sleep(0.5)

    before = rss_mb()
    started = time.monotonic()
    threading.Thread(target=sample, daemon=True).start()
    result = engine.render(draft, {source.name: source}, folder / "work", "bench")
    stop.set()
    seconds = time.monotonic() - started
    print(json.dumps({
        "seconds": round(seconds, 1), "rss_before_mb": round(before), "rss_after_mb": round(rss_mb()),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "median_sample_mb": round(sorted(samples)[len(samples) // 2]) if samples else None,
        "render_path": result.details.get("render_path"),
    }, indent=2))
    result.video.unlink()


if __name__ == "__main__":
    main()

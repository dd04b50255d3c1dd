"""Benchmark of smart cutting against the full render on a generated 1080p recording.

The recording is lecture-like for a trim: 1080p30 H.264 (x264 superfast, GOP 2 s, B-frames)
with AAC sound, and the edit removes a pause of 1–2 s every ~20 s (what a pause trim
leaves), cuts falling anywhere inside GOPs. Side by side in one run, alternating, each in a
fresh process (so peak memory is the job's own):

- smart: the local engine with ``engine.smart_cut`` on (splice + sound + verification);
- full: the same engine with ``smart_cut: false`` (today's one-pass re-encode);
- plain: one plain ffmpeg pass encoding the same kept frames with the same preset (the
  lower bound of any re-encode).

Run:  .venv/bin/python bench/smart_cut.py --minutes 10 --runs 3
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from nemod.draft import to_draft
from nemod.engine.render import any_of
from nemod.media import ffmpeg
from nemod.timeline import Canvas, Clip, Timeline, VideoTrack

FPS = 30
_ONE_RENDER = """
import json, resource, sys, time
from pathlib import Path
from nemod.config import EngineSettings
from nemod.draft import from_draft
from nemod.engine.local import LocalEngine
source, timeline, work, preset, smart = Path(sys.argv[1]), from_draft(json.loads(Path(sys.argv[2]).read_text())), Path(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
engine = LocalEngine(EngineSettings(preset=preset, smart_cut=smart))
started = time.monotonic()
result = engine.render(timeline, {source.name: source}, work, "bench")
seconds = time.monotonic() - started
print(json.dumps({"seconds": seconds, "path": result.details.get("render_path", {}),
                  "python_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "ffmpeg_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
result.video.unlink()
"""


def make_recording(folder: Path, minutes: float) -> Path:
    """A ``minutes``-long 1080p30 recording: one generated minute of picture, repeated by
    remuxing (so generating it stays cheap), under a tone as long as the whole."""
    minute = folder / "minute.mp4"
    ffmpeg.run(["-y", "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate={FPS}:duration=60",
                "-c:v", "libx264", "-preset", "superfast", "-crf", "23", "-pix_fmt", "yuv420p",
                "-x264-params", f"keyint={2 * FPS}:min-keyint={2 * FPS}:scenecut=0", str(minute)])
    path = folder / f"lecture-{minutes:g}min.mp4"
    loops = max(0, round(minutes) - 1)
    ffmpeg.run(["-y", "-stream_loop", str(loops), "-i", str(minute), "-f", "lavfi",
                "-i", f"sine=frequency=220:duration={round(minutes) * 60}:sample_rate=48000",
                "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-b:a", "128k", str(path)])
    return path


def kept_ranges(seconds: float, seed: int = 13) -> list[tuple[float, float]]:
    """Ranges left after removing a pause of 1–2 s every 18–22 s (frame boundaries)."""
    rng = random.Random(seed)
    kept, start = [], 0.0
    while True:
        end = start + rng.uniform(18, 22)
        if end >= seconds:
            kept.append((start, seconds))
            return kept
        kept.append((start, end))
        start = end + rng.uniform(1.0, 2.0)
    return kept


def frames(value: float) -> float:
    return round(value * FPS) / FPS


def trim_draft(source: Path, seconds: float) -> tuple[Timeline, list[tuple[float, float]]]:
    """The trim-only timeline of ``source`` (``seconds`` long) and the ranges it keeps (seconds).
    (Named for the draft it was; ``bench/smart_cut_memory.py`` imports it by this name.)"""
    kept = [(frames(a), frames(b) if b < seconds else b) for a, b in kept_ranges(seconds)]
    clips = tuple(Clip(source.name, round(a * 1000), round(b * 1000)) for a, b in kept)
    total = sum(clip.length for clip in clips)
    timeline = Timeline(VideoTrack(clips, name=source.name), duration=total, fps=float(FPS),
                        canvas=Canvas(1920, 1080, "crop"))
    return timeline, kept


def plain_args(source: Path, kept: list[tuple[float, float]], output: Path, preset: str) -> list[str]:
    """One plain ffmpeg pass keeping ``kept`` with select/aselect, same encoder settings."""
    # A balanced sum (as the engine's own): ffmpeg refuses a flat one of 100+ terms.
    test = any_of([f"between(t,{a:.3f},{b - 0.001:.3f})" for a, b in kept])
    return ["-y", "-i", str(source), "-vf", f"select='{test}',setpts=N/FRAME_RATE/TB",
            "-af", f"aselect='{test}',asetpts=N/SR/TB", "-c:v", "libx264", "-preset", preset, "-crf", "23",
            "-c:a", "aac", "-b:a", "160k", "-movflags", "+faststart", str(output)]


def render(source: Path, draft_file: Path, work: Path, preset: str, smart: bool) -> dict[str, Any]:
    """Render the timeline in ``draft_file`` (its wire draft, JSON) in a fresh process."""
    result = subprocess.run([sys.executable, "-c", _ONE_RENDER, str(source), str(draft_file), str(work), preset,
                             "1" if smart else "0"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the {'smart' if smart else 'full'} render failed:\n{result.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    print(("smart" if smart else "full") + ": " + json.dumps(figures), flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain ffmpeg pass")
    parser.add_argument("--no-full", action="store_true", help="skip the full render (smart cut's time and memory only)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="smartcut-bench-") as temp:
        folder = Path(temp)
        source = make_recording(folder, options.minutes)
        seconds = options.minutes * 60
        timeline, kept = trim_draft(source, seconds)
        draft_file = folder / "draft.json"  # the timeline as a draft: it crosses into a fresh process
        draft_file.write_text(json.dumps(to_draft(timeline)))
        times: dict[str, list[float]] = {"smart": [], "full": [], "plain": []}
        memory: dict[str, float] = {}
        last: dict[str, Any] = {}
        for run in range(options.runs):
            for name in ("smart", "full", "plain"):
                if name == "plain":
                    if options.no_plain:
                        continue
                    started = time.monotonic()
                    ffmpeg.run(plain_args(source, kept, folder / "plain.mp4", options.preset))
                    times["plain"].append(time.monotonic() - started)
                    continue
                if name == "full" and options.no_full:
                    continue
                figures = render(source, draft_file, folder / name, options.preset, name == "smart")
                times[name].append(figures["seconds"])
                memory[f"{name}_python"] = max(memory.get(f"{name}_python", 0.0), figures["python_mb"])
                memory[f"{name}_ffmpeg"] = max(memory.get(f"{name}_ffmpeg", 0.0), figures["ffmpeg_mb"])
                last[name] = figures["path"]
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items() if v), flush=True)
        medians = {name: statistics.median(values) for name, values in times.items() if values}
        report = {
            "recording": f"{options.minutes:g} min 1080p30, GOP 2 s, {len(kept)} kept ranges",
            "kept_seconds": round(sum(b - a for a, b in kept), 1),
            "runs": {name: [round(v, 1) for v in values] for name, values in times.items() if values},
            "median_seconds": {name: round(value, 1) for name, value in medians.items()},
            "full_over_smart": round(medians["full"] / medians["smart"], 2) if "full" in medians else None,
            "plain_over_smart": round(medians["plain"] / medians["smart"], 2) if "plain" in medians else None,
            "peak_memory_mb": {name: round(value) for name, value in memory.items()},
            "smart_path": last.get("smart"),
        }
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

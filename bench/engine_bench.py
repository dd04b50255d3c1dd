"""Benchmark of the local engine on a generated 2-minute 1080p talking clip.

Measured side by side in one run (medians of several runs):
- trim pauses + 1080p export with the engine (analysis + render), against the lower
  bound: one plain ffmpeg pass encoding the same kept segments with the same preset
  (select/aselect, no fades, no analysis);
- transcription real-time factor with Whisper tiny.en;
- peak memory (resident set) of this process and of the ffmpeg children.

Run:  .venv/bin/python bench/engine_bench.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from faster_whisper.audio import decode_audio

from nemod.config import EngineSettings
from nemod.edits import parse_edit
from nemod.engine.local import LocalEngine
from nemod.media import ffmpeg
from nemod.samples import make_talk


def lower_bound_args(source: Path, kept: list[tuple[float, float]], output: Path, preset: str, crf: int) -> list[str]:
    """One plain ffmpeg pass keeping ``kept`` (seconds) with select/aselect, same encoder settings."""
    test = "+".join(f"between(t,{a:.3f},{b:.3f})" for a, b in kept)
    return [
        "-y", "-i", str(source),
        "-vf", f"select='{test}',setpts=N/FRAME_RATE/TB",
        "-af", f"aselect='{test}',asetpts=N/SR/TB",
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-c:a", "aac", "-b:a", "160k",
        "-movflags", "+faststart", str(output),
    ]


def job_memory(source: Path, work: Path, edit: str) -> dict[str, float]:
    """Run one whole engine job (analysis + render) in a fresh process; its peak memory (MB)."""
    code = (
        "import json, resource, sys; from pathlib import Path;"
        "from nemod.config import EngineSettings; from nemod.edits import parse_edit;"
        "from nemod.engine.local import LocalEngine;"
        "e = LocalEngine(EngineSettings()); s = Path(sys.argv[1]);"
        "t = e.plan_timeline(s, parse_edit(sys.argv[3])); e.render(t, {s.name: s}, Path(sys.argv[2]), 'memory');"
        "print(json.dumps({'python': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,"
        " 'ffmpeg': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(source), str(work), edit],
                            capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    settings = EngineSettings()
    engine = LocalEngine(settings)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        started = time.monotonic()
        talk = make_talk(work / "talk.mp4", repeat=4, width=1920, height=1080)
        print(f"clip: {talk.duration:.1f} s 1920x1080, {len(talk.pauses)} pauses (made in {time.monotonic() - started:.1f} s)")
        plan = parse_edit("trim the pauses, export 1080p")
        engine_times, bound_times, analysis_times = [], [], []
        timeline = None
        for run in range(options.runs):
            started = time.monotonic()
            timeline = engine.plan_timeline(talk.path, plan)
            analysed = time.monotonic()
            engine.render(timeline, {talk.path.name: talk.path}, work, f"engine{run}")
            engine_times.append(time.monotonic() - started)
            analysis_times.append(analysed - started)
            kept = timeline.kept()
            started = time.monotonic()
            ffmpeg.run(lower_bound_args(talk.path, kept, work / f"bound{run}.mp4", settings.preset, settings.crf))
            bound_times.append(time.monotonic() - started)
        assert timeline is not None and timeline.video is not None
        engine_median, bound_median = statistics.median(engine_times), statistics.median(bound_times)
        print(f"pauses cut: {timeline.video.pauses_cut}, output {timeline.duration / 1000:.1f} s")
        print(f"engine (analysis + render): median {engine_median:.2f} s  runs {[round(t, 2) for t in engine_times]}")
        print(f"  of which analysis (decode + VAD): median {statistics.median(analysis_times):.2f} s")
        print(f"lower bound (one plain ffmpeg pass): median {bound_median:.2f} s  runs {[round(t, 2) for t in bound_times]}")
        print(f"ratio engine / lower bound: {engine_median / bound_median:.3f}  (target <= 1.15)")

        samples = decode_audio(str(talk.path), sampling_rate=16_000)
        seconds = len(samples) / 16_000
        engine.listener.transcriber.words(samples[:16_000 * 5])  # load the model outside the timing
        factors = []
        for _ in range(options.runs):
            started = time.monotonic()
            words = engine.listener.transcriber.words(samples)
            factors.append((time.monotonic() - started) / seconds)
        print(f"transcription tiny.en: {len(words)} words, real-time factor median {statistics.median(factors):.3f} "
              f"runs {[round(f, 3) for f in factors]}  (target <= 0.25)")
        for edit in ("trim the pauses, export 1080p", "trim the pauses, add captions, export 1080p"):
            peak = job_memory(talk.path, work, edit)
            print(f"peak memory of one job ({edit!r}): python {peak['python']:.0f} MB, "
                  f"ffmpeg {peak['ffmpeg']:.0f} MB  (target <= 600 MB each)")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this benchmark process (model, decoded audio): {own:.0f} MB")


if __name__ == "__main__":
    main()

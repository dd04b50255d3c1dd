"""The crash suite's long form, by hand: SIGKILL ``nemod run`` at seeded random moments.

Runs the ``slow`` crash tests (local backend, and cloud against ``nemod serve``) with the
given size and prints each run's figures (kills, kills that landed mid-job, attempts,
server-side instruction and render counts; lost and duplicates are asserted to be 0).

    .venv/bin/python bench/reliability_crash.py [--files 20] [--kills 50] [--seed 2026] [--only local|cloud]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--only", choices=["local", "cloud"])
    args = parser.parse_args()
    env = {**os.environ, "NEMOD_CRASH_FILES": str(args.files), "NEMOD_CRASH_KILLS": str(args.kills),
           "NEMOD_CRASH_SEED": str(args.seed)}
    names = [f"tests/reliability/test_crash_{kind}.py" for kind in ("local", "cloud")
             if args.only in (None, kind)]
    command = [sys.executable, "-m", "pytest", *names, "-m", "slow", "-q", "-s", "-p", "no:logging",
               "-o", "timeout=7200"]
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    for line in completed.stdout.splitlines():
        if line.startswith(("local ", "cloud:")) or " passed" in line or " failed" in line:
            print(line)
    if completed.returncode:
        print(completed.stdout[-5000:], completed.stderr[-2000:])
    return completed.returncode


if __name__ == "__main__":
    sys.exit(main())

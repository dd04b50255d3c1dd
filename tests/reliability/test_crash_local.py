"""Crash suite, local backend: ``nemod run`` SIGKILLed at seeded random moments and restarted.

After the last restart every source has exactly one complete, playable output (MP4 and
job log), nothing else is visible in the output folder and no scratch file is left, every
source is still there unchanged with exactly one done job, a clean restart queues nothing,
an ffmpeg orphaned by a kill ends by itself, and the store passes ``PRAGMA integrity_check``
(the invariants are asserted in ``run_crash`` in conftest.py).

Default suite: 6 files, 8 kills. ``-m slow``: 20 files, 50 kills (the issue's long form).
"""

from __future__ import annotations

import os
from typing import Any

import pytest


def long_form(files: int, kills: int, seed: int) -> tuple[int, int, int]:
    """The long form's size, overridable by hand (bench/reliability_crash.py sets these)."""
    return (int(os.environ.get("NEMOD_CRASH_FILES", files)), int(os.environ.get("NEMOD_CRASH_KILLS", kills)),
            int(os.environ.get("NEMOD_CRASH_SEED", seed)))


def test_crash_local_short(kit: Any) -> None:
    result = kit.crash(kit.tmp_path / "run", files=6, kills=8, seed=7)
    assert result.kills == 8
    print(f"local short: {result.kills} kills ({result.kills_mid_job} mid-job), {result.files} files, "
          f"{result.attempts} attempts, {result.orphans_seen} orphaned ffmpeg seen (all ended), 0 lost, 0 duplicates")


@pytest.mark.slow
def test_crash_local_long(kit: Any) -> None:
    files, kills, seed = long_form(20, 50, 2026)
    result = kit.crash(kit.tmp_path / "run", files=files, kills=kills, seed=seed, delays=(0.0, 2.0))
    assert result.kills == kills
    print(f"local long: {result.kills} kills ({result.kills_mid_job} mid-job), {result.files} files, "
          f"{result.attempts} attempts, {result.orphans_seen} orphaned ffmpeg seen (all ended), 0 lost, 0 duplicates")

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

from nemod.samples import make_clip


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
    # Longer jobs (a 4 s clip exported at 1080p, one at a time) so that most kills land mid-job.
    template = make_clip(kit.tmp_path / "four.mp4", width=640, height=360, seconds=4.0)
    result = kit.crash(kit.tmp_path / "run", files=files, kills=kills, seed=seed, delays=(0.0, 2.0),
                       template=template, edit="export 1080p MP4", concurrency=1)
    assert result.kills == kills
    print(f"local long: {result.kills} kills ({result.kills_mid_job} mid-job), {result.files} files, "
          f"{result.attempts} attempts, {result.orphans_seen} orphaned ffmpeg seen (all ended), 0 lost, 0 duplicates")


def test_a_job_interrupted_too_often_is_quarantined(kit: Any) -> None:
    """A file whose job is killed mid-way max_attempts times (as a file that crashes the
    daemon would be) is failed with a one-line reason and moved aside; the daemon lives on."""
    from nemod.store import JobState

    root = kit.tmp_path / "run"
    config = kit.write_config(root, edit="export 1080p MP4", max_attempts=2)
    template = make_clip(kit.tmp_path / "six.mp4", width=640, height=360, seconds=6.0)
    kit.drop(root / "in", "poison.mp4", template)
    daemon = kit.process(config)
    state = root / "state"
    for attempt in (1, 2):
        process = daemon.start()
        kit.wait_until(lambda n=attempt: any(j.state is JobState.RUNNING and j.attempts == n
                                             for j in kit.all_jobs(state)), 60, f"attempt {attempt} running",
                       daemon.logs)
        daemon.kill(process)
    process = daemon.start()
    kit.wait_until(lambda: [j.state for j in kit.all_jobs(state)] == [JobState.FAILED], 60, "quarantine",
                   daemon.logs)
    assert daemon.terminate(process) == 0
    note = (root / "in" / "failed" / "poison.error.txt").read_text()
    assert note == "nemod was interrupted 2 times while processing poison.mp4, so it gave up.\n", note
    assert kit.sha256(root / "in" / "failed" / "poison.mp4") == kit.sha256(template)
    assert kit.visible(root / "out") == []

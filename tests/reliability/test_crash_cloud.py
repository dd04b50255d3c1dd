"""Crash suite, cloud backend: the daemon (its own process) against ``nemod serve`` (a thread
of the test process on loopback), SIGKILLed at seeded random moments and restarted.

Besides the invariants of the local crash suite (``run_crash`` in conftest.py), the
server's own counts must show that no instruction was sent twice for one job: every
session received at most one instruction and started at most one render, and every job
had exactly one instruction accepted (charged) over all its sessions.

Default suite: 6 files, 8 kills. ``-m slow``: 20 files, 50 kills.
"""

from __future__ import annotations

import collections
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from nemod.samples import make_clip
from nemod.serve.server import NemoServer


def long_form(files: int, kills: int, seed: int) -> tuple[int, int, int]:
    """The long form's size, overridable by hand (bench/reliability_crash.py sets these)."""
    return (int(os.environ.get("NEMOD_CRASH_FILES", files)), int(os.environ.get("NEMOD_CRASH_KILLS", kills)),
            int(os.environ.get("NEMOD_CRASH_SEED", seed)))


def instructions_per_job(state: Path, accepted: dict[str, int]) -> dict[str, int]:
    """Instructions the server accepted for each job, from the sessions in the job's ledger."""
    per_job: collections.Counter[str] = collections.Counter()
    with sqlite3.connect(state / "jobs.sqlite3") as connection:
        rows = connection.execute(
            "SELECT j.relative, s.key FROM side_effects s JOIN jobs j "
            "ON j.fingerprint = s.fingerprint AND j.rule = s.rule WHERE s.key LIKE 'upload@%'"
        ).fetchall()
    for relative, key in rows:
        per_job[relative] += accepted.get(key.split("@", 1)[1], 0)
    return dict(per_job)


def check_server(server: NemoServer, counts: Any, state: Path, files: int) -> dict[str, int]:
    seen = counts(server)
    twice = {sid: n for sid, n in seen["received"].items() if n > 1}
    assert twice == {}, f"sessions that received an instruction twice: {twice}"
    renders = {sid: n for sid, n in seen["renders"].items() if n > 1}
    assert renders == {}, f"sessions that started two renders: {renders}"
    per_job = instructions_per_job(state, seen["instructions"])
    assert len(per_job) == files and set(per_job.values()) == {1}, per_job
    return {"sessions": len(seen["instructions"]), "instructions": sum(seen["instructions"].values()),
            "renders": sum(seen["renders"].values())}


def run(kit: Any, serve: NemoServer, counts: Any, *, files: int, kills: int, seed: int, **extra: Any) -> None:
    root = kit.tmp_path / "run"
    result = kit.crash(root, files=files, kills=kills, seed=seed, launcher="child", backend="cloud",
                       api_url=serve.url, delays=(0.0, 2.0), **extra)
    server = check_server(serve, counts, root / "state", files)
    print(f"cloud: {result.kills} kills ({result.kills_mid_job} mid-job), {result.files} files, "
          f"{result.attempts} attempts, {server}, 0 lost, 0 duplicates")


def test_crash_cloud_short(kit: Any, serve: NemoServer, counts: Any) -> None:
    run(kit, serve, counts, files=6, kills=8, seed=11)


@pytest.mark.slow
def test_crash_cloud_long(kit: Any, serve: NemoServer, counts: Any) -> None:
    files, kills, seed = long_form(20, 50, 2027)
    # Longer jobs (a 4 s clip exported at 1080p, one at a time) so that most kills land mid-job.
    template = make_clip(kit.tmp_path / "four.mp4", width=640, height=360, seconds=4.0)
    run(kit, serve, counts, files=files, kills=kills, seed=seed, template=template, edit="export 1080p MP4",
        concurrency=1)

"""``nemod run`` as a real process: killed with SIGKILL mid-job and restarted; SIGTERM.

Uses the real local engine on a small generated clip (exported at 480p so a render
takes a few seconds: long enough to be interrupted).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nemod.samples import make_clip
from nemod.store import JobState
from nemod.store.sqlite import SQLiteStore


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(
        tmp_path_factory.mktemp("media") / "clip.mp4", width=640, height=360, seconds=8.0
    )


def write_config(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    config = tmp_path / "nemod.yaml"
    config.write_text(
        "state_dir: state\nsettle_seconds: 0.3\nlog_level: debug\n"
        "watch:\n  - path: in\n    output: out\n"
        "rules:\n  - name: small\n    edit: export 480p\n"
    )
    return config


class Daemons:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.config = write_config(tmp_path)
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"daemon-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "nemod", "run", "-c", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp_path,
        )
        log.close()
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp_path.glob("daemon-*.log")))

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    handle = Daemons(tmp_path)
    yield handle
    handle.cleanup()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, daemons: Daemons) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)  # polling another process's database: there is no event to wait on
    raise AssertionError(f"timed out waiting for {what}\n{daemons.logs()}")


def job_state(tmp_path: Path) -> tuple[JobState | None, str | None, int]:
    database = tmp_path / "state" / "jobs.sqlite3"
    if not database.exists():
        return None, None, 0
    store = SQLiteStore(database)
    try:
        jobs = store.jobs()
    finally:
        store.close()
    if not jobs:
        return None, None, 0
    return jobs[0].state, jobs[0].step, jobs[0].attempts


def visible(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_sigkill_mid_job_then_restart_gives_one_output(
    tmp_path: Path, clip: Path, daemons: Daemons
) -> None:
    first = daemons.start()
    shutil.copyfile(clip, tmp_path / "in" / "talk.mp4")
    wait_for(lambda: job_state(tmp_path)[:2] == (JobState.RUNNING, "render"), 60, "render", daemons)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert visible(tmp_path / "out") == []  # no partial file is visible
    second = daemons.start()
    wait_for(lambda: job_state(tmp_path)[0] is JobState.DONE, 120, "done", daemons)
    state, _, attempts = job_state(tmp_path)
    assert state is JobState.DONE
    assert attempts == 2
    assert visible(tmp_path / "out") == ["talk.log.json", "talk.mp4"]
    assert not (tmp_path / "out" / ".nemod-work").exists()
    second.send_signal(signal.SIGTERM)
    assert second.wait(60) == 0
    assert "lease_reclaimed" in daemons.logs()


def test_sigterm_mid_render_finishes_the_step_and_exits_0(
    tmp_path: Path, clip: Path, daemons: Daemons
) -> None:
    first = daemons.start()
    shutil.copyfile(clip, tmp_path / "in" / "talk.mp4")
    wait_for(lambda: job_state(tmp_path)[:2] == (JobState.RUNNING, "render"), 60, "render", daemons)
    first.send_signal(signal.SIGTERM)
    assert first.wait(60) == 0
    state, _, attempts = job_state(tmp_path)
    assert state is JobState.DONE and attempts == 1  # the render finished and was published
    assert visible(tmp_path / "out") == ["talk.log.json", "talk.mp4"]
    assert "daemon_stopped" in daemons.logs()


def test_sighup_with_a_bad_config_keeps_running(tmp_path: Path, daemons: Daemons) -> None:
    process = daemons.start()
    wait_for(lambda: "daemon_started" in daemons.logs(), 30, "start", daemons)
    good = daemons.config.read_text()
    daemons.config.write_text(good + "unknown_key: 1\n")
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: "config_reload_failed" in daemons.logs(), 30, "reload failure", daemons)
    assert "unknown_key" in daemons.logs()
    daemons.config.write_text(good.replace("settle_seconds: 0.3", "settle_seconds: 0.4"))
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: "config_reloaded" in daemons.logs(), 30, "reload", daemons)
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0

"""Shared parts of the reliability suites (crash, fault, bad input, load, secrets).

The suites drive the real daemon: ``nemod run`` as a process (crash suite) or
:class:`nemod.daemon.Daemon` in-process with real watchers, the real SQLite store and
a real backend (fault, load, bad-input suites); the cloud backend talks over loopback
HTTP to ``nemod serve`` (:func:`support.serve.make_server`) in this process.

Helpers reach the tests through fixtures (the test folder is not a package):
``kit`` (:class:`Kit`), ``serve`` (a started server), ``tiny_clip`` (320x240, 1.5 s),
``secrets_registry`` (every token issued during the run, grepped by the secrets suite).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.daemon_loop import run_until
from support.serve import make_server

from nemod.backends.base import Backend
from nemod.config import Config, load
from nemod.daemon import Daemon, DaemonOptions
from nemod.media import ffmpeg
from nemod.samples import make_clip
from nemod.serve.server import NemoServer
from nemod.store import JobState
from nemod.store.base import Job
from nemod.store.sqlite import SQLiteStore

CHILD = Path(__file__).with_name("daemon_child.py")
#: A distinctive configured token (NEMO_TOKEN): the secrets suite greps for it everywhere.
STATIC_TOKEN = "nmv_usr_RELIABILITY_canary_7f3e9b21c4d5a6e80f1d"
DATABASE = "jobs.sqlite3"

#: Daemon timings for in-process runs: seconds instead of minutes.
FAST = DaemonOptions(
    lease_seconds=5.0, heartbeat_seconds=0.1, stop_timeout=5.0, cancel_timeout=10.0,
    tick_seconds=0.05, retry_base_seconds=0.2, retry_max_seconds=1.0,
    waiting_default_seconds=0.5, unreachable_retry_seconds=0.3,
)


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               detail: Callable[[], str] = lambda: "") -> None:
    """Poll ``condition`` (another process's files and database: there is no event to wait
    on) until true; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail()}")


def sha256(path: Path) -> str:
    """The file's SHA-256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def visible(folder: Path) -> list[str]:
    """Names a user sees in ``folder`` (dot files excluded), sorted; [] when missing."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def integrity(state_dir: Path) -> str:
    """``PRAGMA integrity_check`` of the job store."""
    with sqlite3.connect(state_dir / DATABASE) as connection:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])


def all_jobs(state_dir: Path) -> list[Job]:
    """Every job in the store (opened briefly; safe while a daemon runs)."""
    if not (state_dir / DATABASE).exists():
        return []
    store = SQLiteStore(state_dir / DATABASE)
    try:
        return store.jobs(limit=1_000_000)
    finally:
        store.close()


def distinct_copies(template: Path, folder: Path, count: int, prefix: str = "clip") -> dict[str, str]:
    """``count`` playable copies of ``template`` with different content (a metadata title),
    written to a hidden staging folder and renamed into ``folder`` (so a watcher sees whole
    files); returns name → SHA-256."""
    staging = folder.parent / f".staging-{folder.name}"
    staging.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for index in range(count):
        name = f"{prefix}-{index:02d}.mp4"
        ffmpeg.run(["-y", "-i", str(template), "-c", "copy", "-metadata", f"title={prefix} {index}",
                    str(staging / name)])
        made[name] = sha256(staging / name)
        (staging / name).rename(folder / name)
    staging.rmdir()
    return made


def write_config(root: Path, *, backend: str = "local", api_url: str | None = None,
                 edit: str = "export 720p MP4", concurrency: int = 1, folders: int = 1,
                 settle: float = 0.3, extra: str = "", watch_extra: str = "",
                 rule_extra: str = "", max_attempts: int = 5) -> Path:
    """A config in ``root``: ``in``/``out`` (or ``in0..inN``/``out0..outN``), state in
    ``root/state``, one rule sending ``edit``."""
    names = [("in", "out")] if folders == 1 else [(f"in{i}", f"out{i}") for i in range(folders)]
    watches = ""
    for inbox, outbox in names:
        (root / inbox).mkdir(parents=True, exist_ok=True)
        watches += f"  - path: {inbox}\n    output: {outbox}\n    poll_interval: 0.2\n{watch_extra}"
    cloud = f"cloud:\n  api_url: {api_url}\n  min_credits: 0\n  poll_seconds: 0.1\n" if api_url else ""
    path = root / "nemod.yaml"
    path.write_text(
        f"state_dir: state\nbackend: {backend}\nsettle_seconds: {settle}\nrescan_seconds: 2\n"
        f"concurrency: {concurrency}\nmax_attempts: {max_attempts}\nengine:\n  preset: ultrafast\n"
        f"{cloud}{extra}"
        f"watch:\n{watches}"
        f"rules:\n  - name: r\n    edit: \"{edit}\"\n{rule_extra}"
    )
    return path


# --- the daemon as a process ----------------------------------------------------------------


@dataclass
class DaemonProcess:
    """``nemod run`` (``cli``) or the scaled-down launcher (``child``) on one config; each
    start logs to ``root/daemon-<n>.log``."""

    config: Path
    launcher: str = "cli"
    env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.config.parent

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.root / f"daemon-{len(self.processes):03d}.log").open("wb")
        argv = ([sys.executable, "-m", "nemod", "run", "-c", str(self.config)] if self.launcher == "cli"
                else [sys.executable, str(CHILD), str(self.config)])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEMO_", "NOTIFY_SOCKET"))}
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                                   env={**env, **self.env})
        log.close()
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.root.glob("daemon-*.log")))

    def last_log(self) -> str:
        logs = sorted(self.root.glob("daemon-*.log"))
        return logs[-1].read_text(errors="replace") if logs else ""

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(30)

    def terminate(self, process: subprocess.Popen[bytes], timeout: float = 60) -> int:
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout)

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def ffmpeg_children_of(root: Path) -> list[int]:
    """Pids of ffmpeg processes whose command line names a path under ``root``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"ffmpeg" in Path(argv[0].decode(errors="replace")).name.encode() and any(
            str(root).encode() in arg for arg in argv
        ):
            found.append(int(proc.name))
    return found


# --- the daemon in-process ------------------------------------------------------------------


class InProcess:
    """A :class:`Daemon` in this process on ``config``: real watchers, store and backend,
    driven by :meth:`Daemon.run_once`; records job events."""

    def __init__(self, config: Config, backend: Backend, options: DaemonOptions = FAST) -> None:
        self.config = config
        self.store = SQLiteStore(config.state_dir / DATABASE)
        self.backend = backend
        self.events: list[tuple[str, int]] = []
        self.cleanup_backend: Any = None
        self.daemon = Daemon(config, self.store, backend, options=options,
                             events=lambda name, job: self.events.append((name, job.id)))

    def drive(self, until: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
        run_until(self.daemon, until, timeout=timeout, what=what or "condition",
                  detail=lambda: f"jobs: {self.jobs()}")

    def jobs(self, state: JobState | None = None) -> list[Job]:
        return self.store.jobs(state, limit=1_000_000)

    def only_job(self) -> Job:
        jobs = self.jobs()
        assert len(jobs) == 1, jobs
        return jobs[0]

    def settled(self, count: int = 1, *states: JobState) -> bool:
        """True when ``count`` jobs exist and all are in ``states`` (default: done/failed)
        and no worker is busy."""
        wanted = states or (JobState.DONE, JobState.FAILED)
        jobs = self.jobs()
        return (len(jobs) == count and all(j.state in wanted for j in jobs)
                and not self.daemon.health()["running"])

    def close(self) -> None:
        self.daemon.stop(timeout=5)
        self.store.close()


# --- fixtures -------------------------------------------------------------------------------


@dataclass
class Kit:
    """The helpers, handed to tests by the ``kit`` fixture."""

    tmp_path: Path
    clip: Path
    daemons: list[DaemonProcess] = field(default_factory=list)
    in_process: list[InProcess] = field(default_factory=list)

    wait_until = staticmethod(wait_until)
    sha256 = staticmethod(sha256)
    visible = staticmethod(visible)
    integrity = staticmethod(integrity)
    all_jobs = staticmethod(all_jobs)
    distinct_copies = staticmethod(distinct_copies)
    write_config = staticmethod(write_config)
    ffmpeg_children_of = staticmethod(ffmpeg_children_of)

    def process(self, config: Path, launcher: str = "cli", env: dict[str, str] | None = None) -> DaemonProcess:
        handle = DaemonProcess(config, launcher, env or {})
        self.daemons.append(handle)
        return handle

    def daemon(self, config_path: Path, backend: Backend, options: DaemonOptions = FAST) -> InProcess:
        handle = InProcess(load(config_path), backend, options)
        self.in_process.append(handle)
        return handle

    def crash(self, root: Path, **kwargs: Any) -> CrashResult:
        """See :func:`run_crash`."""
        return run_crash(self, root, **kwargs)

    def drop(self, folder: Path, name: str, source: Path | None = None, data: bytes | None = None) -> Path:
        """Put a whole file into ``folder`` at once (written aside, then renamed in). The
        bytes are copied, never hard-linked: a test that compares the source with its
        template afterwards must see a source changed in place."""
        staging = folder.parent / ".drops"
        staging.mkdir(exist_ok=True)
        aside = staging / name
        if data is not None:
            aside.write_bytes(data)
        else:
            shutil.copyfile(source or self.clip, aside)
        target = folder / name
        aside.rename(target)
        return target


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1.5 s 320x240 test picture with a tone."""
    return make_clip(tmp_path_factory.mktemp("clips") / "tiny.mp4", width=320, height=240, seconds=1.5)


@pytest.fixture
def kit(tmp_path: Path, tiny_clip: Path) -> Iterator[Kit]:
    handle = Kit(tmp_path, tiny_clip)
    yield handle
    for daemon in handle.in_process:
        daemon.close()
    for process in handle.daemons:
        process.cleanup()


@pytest.fixture(scope="session")
def secrets_registry() -> set[str]:
    """Every token the suites' servers issued (plus the configured canary token)."""
    return {STATIC_TOKEN}


@pytest.fixture
def serve(tmp_path: Path, secrets_registry: set[str]) -> Iterator[NemoServer]:
    """``nemod serve`` on loopback with plenty of credits; accepts :data:`STATIC_TOKEN`."""
    server = make_server(tmp_path / "serve", balance=1_000_000, edit_cost=1,
                         static_tokens=(STATIC_TOKEN,))
    try:
        yield server
    finally:
        secrets_registry.update(server.service._tokens)
        server.stop()


def server_counts(server: NemoServer) -> dict[str, Any]:
    """The server's own counts: instructions accepted / received and renders, per session."""
    service = server.service
    return {"instructions": dict(service.instruction_counts),
            "received": dict(service.received_counts), "renders": dict(service.render_counts)}


@pytest.fixture
def counts() -> Callable[[NemoServer], dict[str, Any]]:
    return server_counts


def dedent(text: str) -> str:
    return textwrap.dedent(text)


# --- the crash runner -----------------------------------------------------------------------


@dataclass
class CrashResult:
    """What a crash run measured."""

    files: int
    kills: int
    kills_mid_job: int
    sources: dict[str, str]
    jobs: list[Job]
    orphans_seen: int
    attempts: int


def run_crash(kit: Kit, root: Path, *, files: int, kills: int, seed: int, launcher: str = "cli",
              backend: str = "local", api_url: str | None = None, env: dict[str, str] | None = None,
              concurrency: int = 2, delays: tuple[float, float] = (0.0, 1.5), template: Path | None = None,
              edit: str = "export 720p MP4") -> CrashResult:
    """Drop ``files`` tiny clips, then ``kills`` times: start the daemon, SIGKILL it at a
    seeded random moment; then let one last daemon finish, stop it with SIGTERM, start and
    stop it once more (a restart must queue nothing). Asserts the invariants every crash run
    must keep and returns the figures."""
    # A job interrupted max_attempts times is quarantined on purpose (a file that keeps
    # crashing the daemon must not crash it forever); here the kills are ours, so the
    # limit is set above their number.
    config = write_config(root, backend=backend, api_url=api_url, concurrency=concurrency, edit=edit,
                          max_attempts=kills + 5)
    inbox, outbox, state = root / "in", root / "out", root / "state"
    sources = distinct_copies(template or kit.clip, inbox, files)
    daemon = kit.process(config, launcher, env)
    chooser = random.Random(seed)
    mid_job = orphans_seen = 0
    for _ in range(kills):
        process = daemon.start()
        # The suite's point is a kill at an arbitrary moment: a seeded random delay, not a
        # condition. Most kills count from the moment the daemon is up (scan, settle, jobs);
        # one in six lands during start-up.
        if chooser.random() >= 1 / 6:
            wait_until(lambda p=process: "daemon_started" in daemon.last_log() or p.poll() is not None,
                       60, "the daemon to start", daemon.last_log)
        delay = chooser.uniform(*delays)
        try:
            process.wait(delay)
        except subprocess.TimeoutExpired:
            pass
        else:
            raise AssertionError(f"the daemon exited by itself ({process.returncode})\n{daemon.last_log()}")
        daemon.kill(process)
        mid_job += any(job.state is JobState.RUNNING for job in all_jobs(state))
        # Right after a kill a reader sees only whole results: an MP4 only with its log
        # (the MP4 is placed last), nothing else.
        shown = visible(outbox)
        assert all(n.endswith((".mp4", ".log.json")) for n in shown), shown
        assert all(f"{n[:-4]}.log.json" in shown for n in shown if n.endswith(".mp4")), shown
        orphans = ffmpeg_children_of(root)
        orphans_seen += len(orphans)
        # An ffmpeg left behind by the killed daemon must end by itself (its pipe is gone).
        wait_until(lambda: not ffmpeg_children_of(root), 15, "orphaned ffmpeg processes to exit")
    process = daemon.start()

    def finished() -> bool:
        jobs = all_jobs(state)
        return len(jobs) == files and all(job.state is JobState.DONE for job in jobs)

    wait_until(lambda: finished() and "daemon_started" in daemon.last_log(), 120 + files * 6,
               "every job done", lambda: f"{all_jobs(state)}\n{daemon.last_log()[-4000:]}")
    assert daemon.terminate(process) == 0, "SIGTERM must stop the daemon cleanly (exit 0)"
    # A clean restart must find every file already known and queue nothing.
    process = daemon.start()
    wait_until(lambda: "service_ready" in daemon.last_log(), 30, "the restart")
    assert daemon.terminate(process) == 0
    jobs = all_jobs(state)

    # Exactly one complete output per source, nothing else visible, no scratch left.
    expected = sorted([f"{Path(n).stem}.mp4" for n in sources] + [f"{Path(n).stem}.log.json" for n in sources])
    assert visible(outbox) == expected
    leftovers = [str(p) for p in (outbox / ".nemod-work").rglob("*")] if (outbox / ".nemod-work").exists() else []
    assert leftovers == [], f"scratch files left behind: {leftovers}"
    for name in sources:
        video = outbox / f"{Path(name).stem}.mp4"
        assert video.stat().st_size > 1000
        _assert_playable(video)
    # No source lost, changed, or left unprocessed; one job per source.
    assert {name: sha256(inbox / name) for name in sources} == sources
    assert sorted(job.source.relative for job in jobs) == sorted(sources)
    assert all(job.state is JobState.DONE for job in jobs)
    assert integrity(state) == "ok"
    return CrashResult(files, kills, mid_job, sources, jobs, orphans_seen, sum(j.attempts for j in jobs))


def _assert_playable(video: Path) -> None:
    from nemod.media.probe import probe

    info = probe(video)
    assert info.has_video and info.duration and info.duration > 1.0, (video, info)

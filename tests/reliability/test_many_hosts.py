"""Many hosts on one PostgreSQL store: real ``nemod run`` processes (the scaled-down
launcher), each with its own ``host_id`` and ``state_dir``, one shared watch folder seen
through two paths (the second a symlink) under one folder ``id:``, one shared output
folder, and a real PostgreSQL cluster from ``initdb``."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from nemod.samples import make_clip
from nemod.store import Job, JobState
from nemod.store.postgres import PostgresStore

LEASE = 4.0
#: The token ``nemod serve`` accepts in the reliability suites (conftest's STATIC_TOKEN).
SHARED_TOKEN = "nmv_usr_RELIABILITY_canary_7f3e9b21c4d5a6e80f1d"


def host_config(root: Path, host: str, watch: Path, output: Path, url: str) -> Path:
    home = root / host
    home.mkdir(parents=True)
    path = home / "nemod.yaml"
    path.write_text(
        f"state_dir: state\nstore: {url}\nhost_id: {host}\nsettle_seconds: 0.3\nrescan_seconds: 2\n"
        "engine:\n  preset: ultrafast\n"
        f"watch:\n  - path: {watch}\n    id: studio\n    output: {output}\n    poll_interval: 0.2\n"
        "    on_success: leave\n"
        "rules:\n  - name: r\n    edit: \"export 720p MP4\"\n"
    )
    return path


@contextlib.contextmanager
def reader(url: str) -> Iterator[PostgresStore]:
    """The shared store as ``nemod status`` reads it (never migrating it)."""
    store = PostgresStore(url, migrate=False)
    try:
        yield store
    finally:
        store.close()


def jobs(url: str, state: JobState | None = None) -> list[Job]:
    """The store's jobs (in ``state``), oldest first; [] before a host created the tables."""
    try:
        with reader(url) as store:
            return sorted(store.jobs(state, limit=1000), key=lambda job: job.id)
    except psycopg.errors.UndefinedTable:
        return []


def done_count(url: str) -> int:
    """How many jobs are done."""
    return len(jobs(url, JobState.DONE))


def two_hosts(kit: Any, url: str) -> tuple[Path, Path, Any, Any]:
    share = kit.tmp_path / "nas"
    inbox, output = share / "in", share / "out"
    inbox.mkdir(parents=True)
    mount_b = kit.tmp_path / "mnt-b"
    mount_b.symlink_to(inbox, target_is_directory=True)  # host b mounts the share elsewhere
    env = {"NEMOD_CHILD_LEASE": str(LEASE)}
    a = kit.process(host_config(kit.tmp_path, "host-a", inbox, output, url), launcher="child", env=env)
    b = kit.process(host_config(kit.tmp_path, "host-b", mount_b, output, url), launcher="child", env=env)
    return inbox, output, a, b


def test_two_hosts_process_a_shared_folder_once_each(kit: Any, pg_url: str) -> None:
    inbox, output, a, b = two_hosts(kit, pg_url)
    a.start()
    b.start()
    made = kit.distinct_copies(kit.clip, inbox, 4)

    kit.wait_until(lambda: done_count(pg_url) == len(made), 180, "4 jobs done",
                   lambda: a.last_log()[-3000:] + b.last_log()[-3000:])
    assert sorted((job.source.root, job.source.relative) for job in jobs(pg_url)) == [
        ("studio", name) for name in sorted(made)]
    outputs = [name for name in kit.visible(output) if name.endswith(".mp4")]
    assert sorted(outputs) == sorted(Path(name).stem + ".mp4" for name in made)
    assert '"host": "host-a"' in a.logs() and '"host": "host-b"' in b.logs()
    for daemon in (a, b):
        assert daemon.terminate(daemon.processes[-1]) == 0


def test_a_killed_hosts_job_is_reclaimed_by_the_other_within_the_lease(kit: Any, pg_url: str) -> None:
    inbox, output, a, b = two_hosts(kit, pg_url)
    long_clip = make_clip(kit.tmp_path / "long.mp4", width=320, height=240, seconds=20)
    processes = {"host-a": a.start(), "host-b": b.start()}
    kit.distinct_copies(long_clip, inbox, 1, prefix="long")

    kit.wait_until(lambda: bool(jobs(pg_url, JobState.RUNNING)), 60, "a running job",
                   lambda: a.last_log()[-2000:])
    claimed = jobs(pg_url, JobState.RUNNING)[0]
    victim = str(claimed.host)
    survivor = "host-b" if victim == "host-a" else "host-a"
    (a if victim == "host-a" else b).kill(processes[victim])
    killed_at = time.monotonic()

    def now() -> Job:
        with reader(pg_url) as store:
            job = store.get(claimed.id)
        assert job is not None
        return job

    def reclaimed() -> bool:
        job = now()
        return job.host == survivor and job.lease_token > claimed.lease_token

    kit.wait_until(reclaimed, LEASE + 5, f"{survivor} to re-claim job {claimed.id}")
    assert time.monotonic() - killed_at <= LEASE + 5
    kit.wait_until(lambda: now().state is JobState.DONE, 120, "the re-claimed job to finish")
    assert [name for name in kit.visible(output) if name.endswith(".mp4")] == ["long-00.mp4"]
    assert not [p for p in output.iterdir() if p.name.startswith(".")], "scratch left in the output folder"
    alive = a if survivor == "host-a" else b
    assert alive.terminate(processes[survivor]) == 0


# --- hosts killed at seeded moments ------------------------------------------------------------


def run_hosts_crash(kit: Any, url: str, *, hosts: int, files: int, kills: int, seed: int,
                    backend: str = "local", api_url: str | None = None) -> dict[str, int]:
    """``hosts`` hosts (the second sees the share through a symlink) process ``files``
    clips while ``kills`` SIGKILLs hit random hosts at seeded moments, each restarted at
    once; then every host is stopped with SIGTERM. Asserts: one job per file, all done,
    one output (and log) per file and nothing else, no scratch left, sources untouched."""
    share = kit.tmp_path / "nas"
    inbox, output = share / "in", share / "out"
    inbox.mkdir(parents=True)
    (kit.tmp_path / "mnt-2").symlink_to(inbox, target_is_directory=True)
    cloud = f"backend: cloud\ncloud:\n  api_url: {api_url}\n  min_credits: 0\n  poll_seconds: 0.1\n" if api_url else ""
    daemons = []
    for index in range(hosts):
        name = f"host-{index + 1}"
        home = kit.tmp_path / name
        home.mkdir()
        watch = kit.tmp_path / "mnt-2" if index == 1 else inbox
        (home / "nemod.yaml").write_text(
            f"state_dir: state\nstore: {url}\nhost_id: {name}\nsettle_seconds: 0.3\nrescan_seconds: 2\n"
            f"max_attempts: {kills + 5}\nengine:\n  preset: ultrafast\n{cloud}"
            f"watch:\n  - path: {watch}\n    id: studio\n    output: {output}\n    poll_interval: 0.2\n"
            "    on_success: leave\n"
            "rules:\n  - name: r\n    edit: \"export 720p MP4\"\n"
        )
        env = {"NEMOD_CHILD_LEASE": str(LEASE)}
        if api_url:
            env["NEMO_TOKEN"] = SHARED_TOKEN  # one account on every host (see check_shared_account)
        daemons.append(kit.process(home / "nemod.yaml", launcher="child", env=env))
    sources = kit.distinct_copies(kit.clip, inbox, files)
    running = [daemon.start() for daemon in daemons]
    chooser = random.Random(seed)
    mid_job = 0
    for _ in range(kills):
        time.sleep(chooser.uniform(0.2, 1.5))  # a seeded random moment, not a condition
        victim = chooser.randrange(hosts)
        daemons[victim].kill(running[victim])
        mid_job += any(job.host == f"host-{victim + 1}" for job in jobs(url, JobState.RUNNING))
        running[victim] = daemons[victim].start()

    kit.wait_until(lambda: done_count(url) == files, 120 + files * 3, f"{files} jobs done",
                   lambda: str([(j.source.relative, j.state, j.lease_owner) for j in jobs(url)
                                if j.state is not JobState.DONE]))
    for daemon, process in zip(daemons, running, strict=True):
        # a host restarted moments ago handles SIGTERM once it is up, as on one host
        kit.wait_until(lambda d=daemon: "daemon_started" in d.last_log(), 60, "the host to start", daemon.last_log)
        assert daemon.terminate(process) == 0
    every = jobs(url)
    assert sorted(job.source.relative for job in every) == sorted(sources), "one job per file"
    assert {job.source.root for job in every} == {"studio"}
    expected = sorted([f"{Path(n).stem}.mp4" for n in sources] + [f"{Path(n).stem}.log.json" for n in sources])
    assert kit.visible(output) == expected, "exactly one output per file"
    scratch = output / ".nemod-work"
    left = sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*")) if scratch.exists() else []
    assert left == [], f"scratch left behind: {left}"
    assert {name: kit.sha256(inbox / name) for name in sources} == sources
    figures = {"jobs": len(every), "attempts": sum(job.attempts for job in every), "kills": kills,
               "kills_mid_job": mid_job}
    print(f"{hosts} hosts, {files} files: {figures}")
    return figures


def orphans(kit: Any, alive: set[int]) -> list[int]:
    """ffmpeg processes working under the test folder whose parent is no live host."""
    found = []
    for pid in kit.ffmpeg_children_of(kit.tmp_path):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2:].split()[1]) not in alive:
            found.append(pid)
    return found


def ledger_instructions(url: str, accepted: dict[str, int]) -> dict[str, int]:
    """Instructions the server accepted per job, over the sessions in the job's ledger."""
    per_job: dict[str, int] = {}
    with reader(url) as store:
        for job in store.jobs(limit=1000):
            sessions = [effect.key.split("@", 1)[1] for effect in store.side_effects(job)
                        if effect.key.startswith("upload@")]
            per_job[job.source.relative] = sum(accepted.get(session, 0) for session in sessions)
    return per_job


def test_three_hosts_survive_kills(kit: Any, pg_url: str) -> None:
    figures = run_hosts_crash(kit, pg_url, hosts=3, files=8, kills=6, seed=14)
    assert figures["jobs"] == 8


def test_three_hosts_survive_kills_on_the_cloud(kit: Any, pg_url: str, serve: Any, counts: Any) -> None:
    run_hosts_crash(kit, pg_url, hosts=3, files=4, kills=4, seed=15, api_url=serve.url)
    seen = counts(serve)
    assert {sid: n for sid, n in seen["received"].items() if n > 1} == {}, "an instruction sent twice"
    assert {sid: n for sid, n in seen["renders"].items() if n > 1} == {}, "a render started twice"
    per_job = ledger_instructions(pg_url, seen["instructions"])
    assert len(per_job) == 4 and set(per_job.values()) == {1}, per_job


@pytest.mark.slow
def test_three_hosts_200_files_30_kills(kit: Any, pg_url: str) -> None:
    figures = run_hosts_crash(kit, pg_url, hosts=3, files=200, kills=30, seed=2026)
    assert figures["jobs"] == 200


@pytest.mark.slow
def test_three_hosts_survive_many_kills_on_the_cloud(kit: Any, pg_url: str, serve: Any, counts: Any) -> None:
    run_hosts_crash(kit, pg_url, hosts=3, files=12, kills=15, seed=2027, api_url=serve.url)
    seen = counts(serve)
    assert {sid: n for sid, n in seen["received"].items() if n > 1} == {}, "an instruction sent twice"
    assert {sid: n for sid, n in seen["renders"].items() if n > 1} == {}, "a render started twice"
    per_job = ledger_instructions(pg_url, seen["instructions"])
    assert len(per_job) == 12 and set(per_job.values()) == {1}, per_job

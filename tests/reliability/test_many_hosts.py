"""Many hosts on one PostgreSQL store: real ``nemod run`` processes (the scaled-down
launcher), each with its own ``host_id`` and ``state_dir``, one shared watch folder seen
through two paths (the second a symlink) under one folder ``id:``, one shared output
folder, and a real PostgreSQL cluster from ``initdb``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg

from nemod.samples import make_clip

LEASE = 4.0


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


def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    """The rows of ``sql``; [] before the first host created the tables."""
    try:
        with psycopg.connect(url) as conn:
            return list(conn.execute(sql).fetchall())  # type: ignore[call-overload]
    except psycopg.errors.UndefinedTable:
        return []


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

    def done() -> bool:
        return rows(pg_url, "SELECT count(*) FROM jobs WHERE state = 'done'") == [(len(made),)]

    kit.wait_until(done, 180, "4 jobs done", lambda: a.last_log()[-3000:] + b.last_log()[-3000:])
    jobs = rows(pg_url, "SELECT root, relative, state FROM jobs ORDER BY relative")
    assert [(root, rel) for root, rel, _ in jobs] == [("studio", name) for name in sorted(made)]
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

    def running() -> list[tuple[object, ...]]:
        return rows(pg_url, "SELECT id, lease_owner, lease_token FROM jobs WHERE state = 'running'")

    kit.wait_until(lambda: bool(running()), 60, "a running job", lambda: a.last_log()[-2000:])
    job_id, owner, token = running()[0]
    victim = str(owner).rsplit(":", 2)[0]
    survivor = "host-b" if victim == "host-a" else "host-a"
    (a if victim == "host-a" else b).kill(processes[victim])
    killed_at = time.monotonic()

    def reclaimed() -> bool:
        now = rows(pg_url, f"SELECT lease_owner, lease_token FROM jobs WHERE id = {job_id}")[0]
        return str(now[0] or "").startswith(survivor + ":") and int(str(now[1])) > int(str(token))

    kit.wait_until(reclaimed, LEASE + 5, f"{survivor} to re-claim job {job_id}")
    assert time.monotonic() - killed_at <= LEASE + 5
    kit.wait_until(lambda: rows(pg_url, f"SELECT state FROM jobs WHERE id = {job_id}") == [("done",)],
               120, "the re-claimed job to finish")
    assert [name for name in kit.visible(output) if name.endswith(".mp4")] == ["long-00.mp4"]
    assert not [p for p in output.iterdir() if p.name.startswith(".")], "scratch left in the output folder"
    alive = a if survivor == "host-a" else b
    assert alive.terminate(processes[survivor]) == 0

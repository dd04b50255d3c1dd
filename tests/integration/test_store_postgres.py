"""What only the PostgreSQL store does: migrations under a lock, wake-ups by NOTIFY,
outages reported as StoreUnavailableError, the database's clock. On a real cluster."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psycopg
import pytest
from support.pgcluster import PgCluster

from nemod.errors import StoreError, StoreUnavailableError
from nemod.store import JobState, SourceRef
from nemod.store.postgres import MIGRATIONS, PostgresStore, redact


def test_hosts_starting_at_once_migrate_once(pg_url: str) -> None:
    opened: list[PostgresStore] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def start() -> None:
        barrier.wait()
        try:
            opened.append(PostgresStore(pg_url, pool_size=1))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert errors == [] and len(opened) == 6
        with psycopg.connect(pg_url) as conn:
            versions = [row[0] for row in conn.execute("SELECT version FROM nemod_schema ORDER BY version")]
        assert versions == [version for version, _ in MIGRATIONS]
        assert opened[0].schema_version() == MIGRATIONS[-1][0]
    finally:
        for store in opened:
            store.close()


def test_a_schema_newer_than_this_nemod_is_refused(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO nemod_schema VALUES (999, 0)")
    with pytest.raises(StoreError, match="schema version 999"):
        PostgresStore(pg_url)


def test_a_schema_1_database_gets_the_jobs_page_indexes(pg_url: str) -> None:
    PostgresStore(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # back to what schema 1 had
        conn.execute("DROP INDEX jobs_page_state, jobs_page_root, jobs_page_rule")
        conn.execute("DELETE FROM nemod_schema WHERE version > 1")
    store = PostgresStore(pg_url)
    try:
        assert store.schema_version() == 2
        with psycopg.connect(pg_url) as conn:
            names = {row[0] for row in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'jobs'")}
        assert {"jobs_page_state", "jobs_page_root", "jobs_page_rule"} <= names
    finally:
        store.close()


def test_an_idle_host_wakes_on_another_hosts_enqueue(pg_url: str) -> None:
    idle, busy = PostgresStore(pg_url), PostgresStore(pg_url)
    woke = threading.Event()
    try:
        idle.on_new_work(woke.set)
        assert woke.wait(10)  # once on connecting: whatever was queued before
        woke.clear()
        assert not woke.wait(1.5)
        started = time.monotonic()
        busy.enqueue("fp1", "cut", SourceRef("studio", "a.mp4"))
        assert woke.wait(5), "no NOTIFY reached the idle host"
        assert time.monotonic() - started < 2
        woke.clear()
        assert busy.enqueue("fp1", "cut", SourceRef("studio", "a.mp4")) is None
        assert not woke.wait(1.5), "a duplicate enqueue woke the host"
        job = idle.claim("idle", lease_seconds=30)
        assert job is not None and job.source == SourceRef("studio", "a.mp4")
    finally:
        idle.close()
        busy.close()


def test_leases_use_the_database_clock(pg_url: str) -> None:
    skewed = PostgresStore(pg_url)  # the host's clock plays no part without a clock= argument
    try:
        skewed.enqueue("fp1", "cut", SourceRef("studio", "a.mp4"))
        before = skewed.now()
        job = skewed.claim("w", lease_seconds=30)
        assert job is not None and job.lease_expires_at is not None
        assert 29 < job.lease_expires_at - before < 32
    finally:
        skewed.close()


def test_the_url_password_is_never_shown() -> None:
    assert redact("postgresql://nemod:s3cr%2Bt@db.lan:5432/nemod") == "postgresql://nemod:***@db.lan:5432/nemod"
    assert redact("postgresql://nemod@db.lan/nemod") == "postgresql://nemod@db.lan/nemod"


def test_an_outage_raises_store_unavailable_and_the_store_recovers(pg_cluster: PgCluster) -> None:
    url = pg_cluster.new_database()
    store = PostgresStore(url, connect_timeout=2)
    try:
        store.enqueue("fp1", "cut", SourceRef("studio", "a.mp4"))
        pg_cluster.stop()
        try:
            with pytest.raises(StoreUnavailableError) as caught:
                store.claim("w", lease_seconds=30)
            assert "cannot be reached" in str(caught.value)
        finally:
            pg_cluster.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                job = store.claim("w", lease_seconds=30)
                break
            except StoreUnavailableError:
                assert time.monotonic() < deadline, "the store did not come back"
                time.sleep(0.2)
        assert job is not None and job.state is JobState.RUNNING
    finally:
        store.close()


def test_status_and_jobs_show_hosts_and_never_the_password(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nemod.cli import main

    secret_url = pg_url.replace("postgres@", "postgres:topsecret-pw@")  # trust auth ignores it
    (tmp_path / "in").mkdir()
    config = tmp_path / "nemod.yaml"
    config.write_text(
        f"state_dir: state\nstore: {secret_url}\nhost_id: rig-1\n"
        "watch:\n  - path: in\n    id: studio\n    output: out\nrules:\n  - name: r\n"
    )
    store = PostgresStore(secret_url)
    try:
        store.enqueue("fp1", "r", SourceRef("studio", "talk.mov"))
        store.enqueue("fp2", "r", SourceRef("studio", "late.mov"))
        job = store.claim("rig-2:4242:1", lease_seconds=60)
        assert job is not None
        store.heartbeat(job.id, job.lease_token, lease_seconds=60, step="render", progress=0.5)
        assert main(["status", "-c", str(config)]) == 3  # no daemon on this host
        out = capsys.readouterr().out
        assert "host:     rig-1  (store postgresql://postgres:***@127.0.0.1:" in out
        running = next(line for line in out.splitlines() if "talk.mov" in line)
        assert "render 50%" in running and running.rstrip().endswith("rig-2")
        assert main(["status", "-c", str(config), "--json"]) == 3
        data = json.loads(capsys.readouterr().out)
        assert data["host_id"] == "rig-1" and data["running"][0]["host"] == "rig-2"
        assert data["counts"]["queued"] == 1
        assert main(["jobs", "-c", str(config)]) == 0
        listing = capsys.readouterr().out
        assert "(on rig-2)" in listing and "late.mov" in listing
        everything = out + json.dumps(data) + listing
        assert "topsecret-pw" not in everything
    finally:
        store.close()


def test_status_reports_an_unreachable_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from support.pgcluster import free_port

    from nemod.cli import main

    (tmp_path / "in").mkdir()
    config = tmp_path / "nemod.yaml"
    config.write_text(
        f"state_dir: state\nstore: postgresql://nemod:pw-9@127.0.0.1:{free_port()}/nemod\n"
        "watch:\n  - path: in\n    output: out\nrules:\n  - name: r\n"
    )
    assert main(["status", "-c", str(config)]) == 3
    out = capsys.readouterr().out
    assert "store:    the job store postgresql://nemod:***@127.0.0.1:" in out and "cannot be reached" in out
    assert "pw-9" not in out

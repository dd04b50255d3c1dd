"""A PostgreSQL outage under a running daemon, on a real cluster that is stopped and
started again: the running step goes on and its result is recorded once the database is
back, nothing is claimed meanwhile, health says the store is down, and files that
settled during the outage are queued afterwards."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from support.backends import GatedBackend
from support.daemon_loop import run_until
from support.pgcluster import PgCluster

from nemod.config import load
from nemod.daemon import Daemon, DaemonOptions
from nemod.errors import StoreUnavailableError
from nemod.service.beacon import beacon_path, read_beacon
from nemod.service.runtime import build_runtime
from nemod.store import JobState, SourceRef
from nemod.store.postgres import PostgresStore

OPTIONS = DaemonOptions(lease_seconds=20.0, heartbeat_seconds=0.2, tick_seconds=0.05, stop_timeout=5.0,
                        cancel_timeout=5.0, retry_base_seconds=0.2, retry_max_seconds=1.0)
T = TypeVar("T")


class WatchedStore(PostgresStore):
    """The store, counting per operation the calls that found the database down: the
    outage test waits on what the daemon asked, not on the clock."""

    def __init__(self, url: str, **options: float) -> None:
        super().__init__(url, **options)  # type: ignore[arg-type]
        self.refused: Counter[str] = Counter()

    def _counted(self, name: str, call: Callable[[], T]) -> T:
        """``call()``, counted under ``name`` when the store was down."""
        try:
            return call()
        except StoreUnavailableError:
            self.refused[name] += 1
            raise

    def now(self) -> float:
        """The daemon's probe of a store it found down."""
        return self._counted("now", super().now)


@pytest.fixture
def cluster(pg_cluster: PgCluster) -> Iterator[PgCluster]:
    yield pg_cluster
    if not _running(pg_cluster):  # never leave the session's cluster stopped
        pg_cluster.start()


def _running(cluster: PgCluster) -> bool:
    import psycopg

    try:
        psycopg.connect(cluster.url(), connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


def done(store: PostgresStore) -> int:
    """Done jobs, or -1 while the store's pool is still reconnecting."""
    try:
        return store.counts()[JobState.DONE]
    except StoreUnavailableError:
        return -1


def test_a_database_outage_keeps_the_running_step_and_claims_nothing(cluster: PgCluster, tmp_path: Path) -> None:
    url = cluster.new_database()
    (tmp_path / "in").mkdir()
    (tmp_path / "nemod.yaml").write_text(
        f"state_dir: state\nstore: {url}\nhost_id: rig-1\nsettle_seconds: 0.2\n"
        "watch:\n  - path: in\n    output: out\n    poll_interval: 0.2\n    on_success: leave\n"
        "rules:\n  - name: all\n"
    )
    config = load(tmp_path / "nemod.yaml")
    store = WatchedStore(url, connect_timeout=1)
    backend = GatedBackend(first_only=True)
    runtime = build_runtime(config, env={})  # the beacon and /healthz checks, no systemd
    runtime.status_every = 0.0
    daemon = Daemon(config, store, backend, options=OPTIONS)
    try:
        (tmp_path / "in" / "a.mov").write_bytes(b"first")
        run_until(daemon, backend.started.is_set, timeout=20, what="a.mov rendering")

        cluster.stop()
        (tmp_path / "in" / "b.mov").write_bytes(b"second")
        # The daemon notices, backs off, and asks the stopped store again (refused).
        run_until(daemon, lambda: store.refused["now"] >= 1, timeout=20, what="a probe of the stopped store")
        health = daemon.health()
        assert health["store"]["ok"] is False and not health["ok"]
        assert "cannot be reached" in (daemon.store_error or "")
        runtime.tick(daemon)
        assert runtime.health()["store"] is False  # /healthz answers 503
        beacon = read_beacon(beacon_path(config.state_dir))
        assert beacon is not None and "job store unreachable" in beacon["status"]
        assert beacon["health"]["store"] is False  # `nemod status`: "health: failing: store"
        backend.gate.set()  # the step finishes while the database is down
        run_until(daemon, backend.finished.is_set, timeout=30, what="the gated step to finish")
        probes = store.refused["now"]
        # Its result waits for the store; the loop asks the store again, a worker free.
        run_until(daemon, lambda: store.refused["now"] > probes, timeout=30,
                  what="another probe of the stopped store")
        assert backend.calls == ["a.mov"], "something was claimed during the outage"

        cluster.start()
        run_until(daemon, lambda: done(store) == 2, timeout=40, what="both jobs done")
        assert daemon.health()["store"]["ok"] is True and daemon.store_error is None
        runtime.tick(daemon)
        assert runtime.health()["store"] is True
        assert sorted(backend.calls) == ["a.mov", "b.mov"], "a job was done twice"
        assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) == ["a.mp4", "b.mp4"]
        assert {job.attempts for job in store.jobs()} == {1}
    finally:
        backend.gate.set()
        daemon.stop()
        runtime.stopped()
        store.close()


def test_a_host_claims_only_jobs_of_folders_it_has_and_reaches(pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "nemod.yaml").write_text(
        f"state_dir: state\nstore: {pg_url}\nhost_id: rig-1\nsettle_seconds: 0.2\n"
        "watch:\n  - path: in\n    id: studio\n    output: out\n    poll_interval: 0.2\n"
        "rules:\n  - name: all\n"
    )
    config = load(tmp_path / "nemod.yaml")
    store = PostgresStore(pg_url, connect_timeout=1)
    other = PostgresStore(pg_url)
    backend = GatedBackend(first_only=True)
    backend.gate.set()
    daemon = Daemon(config, store, backend, options=OPTIONS)
    try:
        # another host's folder, which this host does not have: left for that host
        assert other.enqueue("fp-x", "all", SourceRef("rig-2-inbox", "x.mov")) is not None
        (tmp_path / "in" / "a.mov").write_bytes(b"mine")
        run_until(daemon, lambda: store.counts()[JobState.DONE] == 1, timeout=20, what="a.mov done")
        for _ in range(10):
            daemon.run_once()
        theirs = other.find("fp-x", "all")
        assert theirs is not None and theirs.state is JobState.QUEUED and theirs.attempts == 0
        assert backend.calls == ["a.mov"]
    finally:
        daemon.stop()
        store.close()
        other.close()

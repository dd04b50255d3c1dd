"""Status over a real SQLite job store: the read-only reader, ``nemod status``, and the
loopback endpoint (/healthz, /metrics, /status.json, the HTML page)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.clocks import ManualClock

from nemod.cli import main
from nemod.service.beacon import DaemonBeacon, beacon_path
from nemod.service.http import StatusServer
from nemod.service.storeview import StoreStatusSource, store_path
from nemod.store import SourceRef
from nemod.store.sqlite import SQLiteStore

T0 = 1_800_000_000.0


@pytest.fixture
def state(tmp_path: Path) -> Iterator[tuple[Path, SQLiteStore, ManualClock]]:
    """A store with: 2 queued (one later), 1 running at render 40%, 1 done, 1 failed,
    1 waiting — over two watch folders."""
    state_dir = tmp_path / "state"
    clock = ManualClock(T0)
    store = SQLiteStore(store_path(state_dir), clock=clock)
    inbox, other = str(tmp_path / "inbox"), str(tmp_path / "other")
    jobs = [
        store.enqueue(f"fp{i}", "talks", SourceRef(root, f"clip{i}.mov"), size=1000 * (i + 1))
        for i, root in enumerate([inbox, inbox, inbox, other, other, inbox])
    ]
    assert all(job is not None for job in jobs)
    running = store.claim("host:1:1", lease_seconds=120)
    assert running is not None and running.source.relative == "clip0.mov"
    assert store.heartbeat(
        running.id, running.lease_token, lease_seconds=120, step="render", progress=0.4
    )
    clock.now += 100
    done = store.claim("host:1:1", lease_seconds=120)
    assert done is not None
    assert store.complete(done.id, done.lease_token, {".mp4": "/out/clip1.mp4"})
    failed = store.claim("host:1:1", lease_seconds=120)
    assert failed is not None
    assert store.fail(failed.id, failed.lease_token, "NemoVideo error code 2001: no credits\nmore")
    waiting = store.claim("host:1:1", lease_seconds=120)
    assert waiting is not None
    assert store.wait(waiting.id, waiting.lease_token, "schedule", 3600)
    later = store.claim("host:1:1", lease_seconds=120)
    assert later is not None
    assert store.fail(later.id, later.lease_token, "HTTP 503 from upload", retry_after=600)
    yield state_dir, store, clock
    store.close()


def source_for(state_dir: Path, *folders: str) -> StoreStatusSource:
    return StoreStatusSource.for_state_dir(state_dir, folders=folders)


def test_snapshot_from_the_real_store(
    state: tuple[Path, SQLiteStore, ManualClock], tmp_path: Path
) -> None:
    state_dir, _, clock = state
    snapshot = source_for(state_dir, str(tmp_path / "inbox"), str(tmp_path / "empty")).snapshot(
        clock.now
    )
    assert snapshot.store_ok
    assert dict(snapshot.counts) == {
        "queued": 2,
        "waiting": 1,
        "running": 1,
        "done": 1,
        "failed": 1,
    }
    folders = {f.folder: dict(f.counts) for f in snapshot.folders}
    assert folders[str(tmp_path / "inbox")] == {
        "queued": 1,
        "waiting": 0,
        "running": 1,
        "done": 1,
        "failed": 1,
    }
    assert folders[str(tmp_path / "other")]["queued"] == 1
    assert folders[str(tmp_path / "other")]["waiting"] == 1
    assert sum(folders[str(tmp_path / "empty")].values()) == 0  # configured, no jobs yet
    [running] = snapshot.running
    assert (running.source, running.step, running.progress) == ("clip0.mov", "render", 0.4)
    assert [job.source for job in snapshot.queue] == ["clip5.mov", "clip4.mov", "clip3.mov"]
    assert snapshot.queue[1].reason == "HTTP 503 from upload"
    assert snapshot.queue[2].state == "waiting"
    assert snapshot.queue[2].reason == "schedule"
    [failure] = snapshot.failures
    assert failure.reason == "NemoVideo error code 2001: no credits"
    assert snapshot.totals.errors_by_code == {"2001": 1}
    assert snapshot.totals.bytes_done == 2000
    assert snapshot.totals.finished["done"] == (1, 100.0)


def test_reader_never_writes(state: tuple[Path, SQLiteStore, ManualClock]) -> None:
    state_dir, _, clock = state
    files = sorted(state_dir.iterdir())
    # The -shm file is WAL's shared-memory index: readers mark their place in it.
    data_files = [f for f in files if not f.name.endswith("-shm")]

    def fingerprint() -> list[tuple[str, int, bytes]]:
        return [(f.name, f.stat().st_mtime_ns, f.read_bytes()) for f in data_files]

    before = fingerprint()
    for _ in range(3):
        source_for(state_dir).snapshot(clock.now)
    assert fingerprint() == before
    assert sorted(state_dir.iterdir()) == files


def test_missing_or_broken_store_is_reported(tmp_path: Path) -> None:
    snapshot = source_for(tmp_path / "nothing").snapshot(T0)
    assert not snapshot.store_ok
    assert "no job store yet" in (snapshot.store_error or "")
    (tmp_path / "broken").mkdir()
    store_path(tmp_path / "broken").write_bytes(b"this is not a database" * 100)
    snapshot = source_for(tmp_path / "broken").snapshot(T0)
    assert not snapshot.store_ok
    assert (snapshot.store_error or "").startswith("unreadable:")


# --- nemod status -------------------------------------------------------------------------


def write_config(tmp_path: Path, state_dir: Path) -> Path:
    (tmp_path / "inbox").mkdir(exist_ok=True)
    config = tmp_path / "nemod.yaml"
    config.write_text(
        f"state_dir: {state_dir}\n"
        f"watch:\n  - path: {tmp_path / 'inbox'}\n    output: {tmp_path / 'out'}\n"
        "rules:\n  - name: talks\n"
    )
    return config


def test_status_command_daemon_down(
    state: tuple[Path, SQLiteStore, ManualClock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir, _, _ = state
    assert main(["status", "-c", str(write_config(tmp_path, state_dir))]) == 3
    out = capsys.readouterr().out
    assert "daemon:   not running" in out
    assert "clip0.mov" in out and "render 40%" in out
    assert "NemoVideo error code 2001: no credits" in out


def test_status_command_daemon_up_json(
    state: tuple[Path, SQLiteStore, ManualClock], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir, _, _ = state
    beacon = DaemonBeacon(beacon_path(state_dir), started_at=time.time() - 60)
    beacon.update(status="1 running; 2 queued", credits={"balance": 80, "minimum": 50})
    assert beacon.beat(time.time())
    assert main(["status", "-c", str(write_config(tmp_path, state_dir)), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["daemon"]["up"] is True
    assert data["daemon"]["pid"] == os.getpid()
    assert data["counts"]["running"] == 1
    assert data["running"][0]["step"] == "render"
    assert data["recent_failures"][0]["reason"].startswith("NemoVideo error code 2001")
    assert data["credits"] == {"balance": 80, "minimum": 50}
    beacon.stopped(time.time())
    assert main(["status", "-c", str(write_config(tmp_path, state_dir))]) == 3
    assert "daemon:   stopped" in capsys.readouterr().out


def test_status_command_before_the_first_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "-c", str(write_config(tmp_path, tmp_path / "fresh"))]) == 3
    out = capsys.readouterr().out
    assert "no daemon has used this state folder" in out
    assert not (tmp_path / "fresh").exists()  # status created nothing


def test_status_command_lists_a_folder_by_its_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = tmp_path / "state"
    store = SQLiteStore(store_path(state_dir))
    store.enqueue("fp-1", "talks", SourceRef("studio-inbox", "talk.mov"), size=1, mtime=1.0)
    store.close()
    config = write_config(tmp_path, state_dir)
    config.write_text(config.read_text().replace("    output:", "    id: studio-inbox\n    output:"))
    assert main(["status", "-c", str(config), "--json"]) == 3
    folders = {f["folder"]: f for f in json.loads(capsys.readouterr().out)["folders"]}
    assert list(folders) == ["studio-inbox"]  # once, with its job; not also under its path
    assert folders["studio-inbox"]["counts"]["queued"] == 1


# --- the loopback endpoint ----------------------------------------------------------------


@pytest.fixture
def server(
    state: tuple[Path, SQLiteStore, ManualClock],
) -> Iterator[tuple[StatusServer, dict[str, bool]]]:
    state_dir, _, clock = state
    live = {"watchers": True}
    status = StatusServer(source_for(state_dir), port=0, health=lambda: dict(live), clock=clock)
    status.start()
    yield status, live
    status.close()
    assert not any(t.name == "nemod-status-http" for t in threading.enumerate())


def test_healthz_follows_the_checks(server: tuple[StatusServer, dict[str, bool]]) -> None:
    status, live = server
    base = f"http://127.0.0.1:{status.port}"
    with httpx.Client() as client:
        answer = client.get(f"{base}/healthz")
        assert answer.status_code == 200
        assert answer.json() == {"ok": True, "checks": {"store": True, "watchers": True}}
        live["watchers"] = False
        answer = client.get(f"{base}/healthz")
        assert answer.status_code == 503
        assert answer.json()["checks"]["watchers"] is False


def test_healthz_fails_when_the_store_is_gone(tmp_path: Path) -> None:
    status = StatusServer(source_for(tmp_path / "none"), port=0, health=lambda: {"watchers": True})
    status.start()
    try:
        answer = httpx.get(f"http://127.0.0.1:{status.port}/healthz")
    finally:
        status.close()
    assert answer.status_code == 503
    assert answer.json()["checks"]["store"] is False


def test_metrics_page_and_json(server: tuple[StatusServer, dict[str, bool]]) -> None:
    status, _ = server
    base = f"http://127.0.0.1:{status.port}"
    with httpx.Client() as client:
        metrics = client.get(f"{base}/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert 'nemod_jobs{state="running"} 1' in metrics.text
        assert 'nemod_job_progress{job="1",step="render"} 0.4' in metrics.text
        assert 'nemod_job_errors{code="2001"} 1' in metrics.text
        page = client.get(f"{base}/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "clip0.mov" in page.text
        document = client.get(f"{base}/status.json").json()
        assert document["counts"]["failed"] == 1
        assert client.get(f"{base}/nope").status_code == 404
        refused = client.post(f"{base}/healthz")
        assert refused.status_code == 405
        assert client.head(f"{base}/metrics").status_code == 200


def _outside_addresses() -> list[str]:
    """This host's non-loopback IPv4 addresses: from its name, from the route out (a UDP
    socket's own address once connected; nothing is sent) and from ``ip -4 addr``. Many
    machines' names resolve to 127.x only, so the name alone would skip the test."""
    found = {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None) if info[0] == socket.AF_INET}
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 9))
        found.add(probe.getsockname()[0])
    with contextlib.suppress(OSError):
        listing = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=False)
        found.update(re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", listing.stdout))
    return sorted(a for a in found if not a.startswith(("127.", "0.")))


def test_endpoint_binds_loopback_only(server: tuple[StatusServer, dict[str, bool]]) -> None:
    status, _ = server
    outside = _outside_addresses()
    if not outside:
        pytest.skip("this host has no non-loopback IPv4 address")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{outside[0]}:{status.port}/healthz", timeout=2.0)

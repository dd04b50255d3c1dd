"""Fault suite, cloud backend: every fault ``nemod serve`` can inject, through the real daemon
(in-process :class:`~nemod.daemon.Daemon`, real watcher and SQLite store, the cloud backend
over loopback HTTP with scaled-down waits).

Each case names its expected outcome — ``done`` (recovered within the attempt or retried and
done), ``waiting`` (then done once the cause is gone) or ``failed`` with a one-line reason —
and every case checks that nothing is lost: the source is still in the watch folder (or
moved to the failed folder next to its ``.error.txt``) and no session received the
instruction twice. The backend-level behaviour behind each case is unit-tested in
tests/integration/test_cloud_flow.py; this suite proves the daemon turns it into the
right job state.
"""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.serve import FAST_CLIENT, FAST_JOB, make_backend

from nemod.cloud.backend import CloudBackend
from nemod.config import EngineSettings
from nemod.engine.local import LocalEngine
from nemod.serve.server import NemoServer
from nemod.serve.service import ServeSettings
from nemod.store import JobState

JOB = dataclasses.replace(FAST_JOB, credits_recheck_seconds=0.3, retry_delay=0.3, rate_limit_delay=0.2)


@dataclass(frozen=True)
class Case:
    faults: tuple[tuple[str, int, str], ...]
    outcome: str  # done | failed
    reason: str = ""  # a phrase of the one-line reason, for failed
    static_token: bool = False
    heartbeat_gap: float | None = None
    sessions: int = 1


CASES: dict[str, Case] = {
    "token expired (anonymous token renewed)": Case((("expire_token", 1, "/api/state"),), "done"),
    "token expired (configured NEMO_TOKEN)": Case((("expire_token", 1, ""),), "failed", "NEMO_TOKEN",
                                                   static_token=True),
    "session forgotten": Case((("forget_session", 1, "/api/state"),), "done", sessions=2),
    "HTTP 429 once (client waits)": Case((("http_429", 1, "/api/state"),), "done"),
    "HTTP 429 repeatedly (job retried)": Case((("http_429", 6, "/api/render"),), "done"),
    "HTTP 503 on reads": Case((("http_5xx", 2, "/api/state"),), "done"),
    "HTTP 503 on render start (job retried)": Case((("http_5xx", 6, "/api/render/proxy/lambda"),), "done"),
    "SSE dropped mid-edit": Case((("drop_sse", 1, ""),), "done"),
    "stream without text": Case((("no_text", 1, ""),), "done"),
    "failed render (retried with a new id)": Case((("fail_render", 1, ""),), "done"),
    "render failing twice": Case((("fail_render", 2, ""),), "failed", "export failed twice"),
    "slow heartbeats past the timeout": Case((("slow_heartbeats", 1, ""),), "done", heartbeat_gap=0.2),
    "output URL answers 404 (proxy download)": Case((("bad_output_url", 1, ""),), "done"),
    "second stage after the edit": Case((("second_stage", 1, ""),), "done"),
}


def backend_for(server_url: str, state: Path, env: dict[str, str], gap: float | None) -> CloudBackend:
    client = dataclasses.replace(FAST_CLIENT, heartbeat_gap=gap) if gap else FAST_CLIENT
    return make_backend(_Url(server_url), state, env=env, job=JOB, client=client)  # type: ignore[arg-type]


@dataclass
class _Url:
    url: str


def setup(kit: Any, url: str, *, env: dict[str, str] | None = None, gap: float | None = None) -> Any:
    config = kit.write_config(kit.tmp_path, backend="cloud", api_url=url, settle=0.1)
    backend = backend_for(url, kit.tmp_path / "state", env or {}, gap)
    daemon = kit.daemon(config, backend)
    daemon.cleanup_backend = backend
    return daemon


def assert_nothing_lost(kit: Any, source_hash: str, outcome: str) -> None:
    inbox, out = kit.tmp_path / "in", kit.tmp_path / "out"
    failed = inbox / "failed"
    if outcome == "done":
        assert kit.sha256(inbox / "talk.mp4") == source_hash
        assert kit.visible(out) == ["talk.log.json", "talk.mp4"]
    else:
        assert kit.visible(inbox) == ["failed"]
        assert kit.visible(failed) == ["talk.error.txt", "talk.mp4"]
        assert kit.sha256(failed / "talk.mp4") == source_hash
        assert kit.visible(out) == []


@pytest.mark.parametrize("name", list(CASES))
def test_serve_fault_through_the_daemon(kit: Any, serve: NemoServer, counts: Any, name: str) -> None:
    case = CASES[name]
    env = {"NEMO_TOKEN": "nmv_usr_RELIABILITY_canary_7f3e9b21c4d5a6e80f1d"} if case.static_token else {}
    daemon = setup(kit, serve.url, env=env, gap=case.heartbeat_gap)
    try:
        for fault, count, path in case.faults:
            serve.faults.arm(fault, count, path)
        kit.drop(kit.tmp_path / "in", "talk.mp4")
        daemon.drive(lambda: daemon.settled(1), 60, name)
    finally:
        daemon.cleanup_backend.close()
    job = daemon.only_job()
    fired = serve.faults.snapshot()["fired"]
    assert all(fired.get(fault) for fault, _, _ in case.faults), fired
    seen = counts(serve)
    assert all(n <= 1 for n in seen["received"].values()), seen
    if case.outcome == "done":
        assert job.state is JobState.DONE, job
        # One instruction accepted (charged) in all; a forgotten session is replaced by a new one.
        assert sum(seen["instructions"].values()) == 1 and len(seen["instructions"]) == case.sessions
    else:
        assert job.state is JobState.FAILED, job
        note = (kit.tmp_path / "in" / "failed" / "talk.error.txt").read_text()
        assert case.reason in note and note.count("\n") == 1, note
    assert_nothing_lost(kit, kit.sha256(kit.clip), case.outcome)


def test_out_of_credits_waits_then_finishes(kit: Any, serve: NemoServer, counts: Any) -> None:
    """Outcome: waiting (reason credits, not an attempt, nothing charged) → done once credits return."""
    daemon = setup(kit, serve.url)
    try:
        serve.faults.arm("no_credits", -1)
        kit.drop(kit.tmp_path / "in", "talk.mp4")
        daemon.drive(lambda: daemon.settled(1, JobState.WAITING), 30, "waiting")
        job = daemon.only_job()
        assert job.wait_reason == "credits" and job.attempts == 0
        assert sum(counts(serve)["instructions"].values()) == 0
        serve.faults.clear()
        daemon.drive(lambda: daemon.settled(1), 60, "done")
    finally:
        daemon.cleanup_backend.close()
    assert daemon.only_job().state is JobState.DONE
    assert sum(counts(serve)["instructions"].values()) == 1
    assert_nothing_lost(kit, kit.sha256(kit.clip), "done")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_server_gone_for_a_while_then_back(kit: Any, tmp_path: Path, secrets_registry: set[str]) -> None:
    """Outcome: retried (connection refused is transient) → done once the server is back."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    daemon = setup(kit, url)
    server = None
    try:
        kit.drop(kit.tmp_path / "in", "talk.mp4")
        daemon.drive(lambda: any(name == "retrying" for name, _ in daemon.events), 30, "a retry")
        job = daemon.only_job()
        assert job.state is JobState.QUEUED and job.error, job
        server = NemoServer(
            ServeSettings(data_dir=tmp_path / "serve-back", port=port, heartbeat_seconds=0.05),
            LocalEngine(EngineSettings(preset="ultrafast")),
        )
        server.start()
        daemon.drive(lambda: daemon.settled(1), 60, "done")
    finally:
        daemon.cleanup_backend.close()
        if server is not None:
            secrets_registry.update(server.service._tokens)
            server.stop()
    assert daemon.only_job().state is JobState.DONE
    assert_nothing_lost(kit, kit.sha256(kit.clip), "done")

"""Helpers for testing against ``nemod serve`` in-process.

The server runs on a real loopback socket; the client talks to it over real HTTP.
Waits in the client are scaled down with tiny policies, never skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemod.backends.base import JobContext, JobRequest, Rendition
from nemod.cloud.api import ClientPolicy
from nemod.cloud.backend import CloudBackend, JobPolicy
from nemod.config import CloudSettings, EngineSettings, Rule
from nemod.engine.local import LocalEngine
from nemod.serve.faults import Faults
from nemod.serve.server import NemoServer
from nemod.serve.service import ServeSettings
from nemod.store.base import SideEffect

FAST_JOB = JobPolicy(
    poll_seconds=0.02,
    max_polls=500,
    drop_first_wait=0.05,
    drop_interval=0.05,
    drop_unchanged_reads=5,
    confirm_interval=0.02,
    confirm_reads=3,
    credits_recheck_seconds=5.0,
    retry_delay=1.0,
    rate_limit_delay=0.5,
)
FAST_CLIENT = ClientPolicy(
    rate_limit_wait=0.03,
    backoff=(0.01, 0.01, 0.01),
    connect_timeout=5.0,
    read_timeout=20.0,
    upload_timeout=60.0,
    heartbeat_gap=5.0,
    heartbeat_only_limit=60.0,
    stream_limit=120.0,
)


@dataclass
class Sleeper:
    """A sleep that records what the client asked for and waits at most ``cap`` seconds."""

    cap: float = 0.02
    calls: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        time.sleep(min(seconds, self.cap))


class StrictLedger:
    """An in-memory ledger with the job store's rule: a remote id is never erased
    (recording None over a known id keeps the id)."""

    def __init__(self) -> None:
        self.rows: dict[str, SideEffect] = {}
        self.writes: list[tuple[str, str | None]] = []

    def get(self, key: str) -> SideEffect | None:
        """The row ``key`` or None."""
        return self.rows.get(key)

    def record(self, key: str, remote_id: str | None = None) -> None:
        """Record ``key``; None never replaces a known remote id."""
        self.writes.append((key, remote_id))
        known = self.rows.get(key)
        self.rows[key] = SideEffect(
            key, remote_id if remote_id is not None else (known.remote_id if known else None)
        )


def make_server(data_dir: Path, **overrides: Any) -> NemoServer:
    """A started server on an ephemeral loopback port."""
    settings = ServeSettings(
        data_dir=data_dir,
        port=0,
        heartbeat_seconds=0.05,
        slow_heartbeat_seconds=0.5,
        second_stage_seconds=0.05,
        admin_token="admin-secret",
        **overrides,
    )
    server = NemoServer(settings, LocalEngine(EngineSettings(preset="ultrafast")), faults=Faults())
    server.start()
    return server


def make_backend(
    server: NemoServer,
    state_dir: Path,
    *,
    env: dict[str, str] | None = None,
    job: JobPolicy = FAST_JOB,
    client: ClientPolicy = FAST_CLIENT,
    sleeper: Sleeper | None = None,
    min_credits: int = 0,
) -> CloudBackend:
    """A cloud backend pointed at ``server`` with scaled-down waits."""
    return CloudBackend(
        CloudSettings(api_url=server.url, min_credits=min_credits, poll_seconds=job.poll_seconds),
        state_dir,
        env=env or {},
        sleep=sleeper or Sleeper(),
        job_policy=job,
        client_policy=client,
    )


def request(
    clip: Path, work: Path, *, edit: str = "export 720p MP4", min_credits: int | None = 0, name: str = "job1"
) -> JobRequest:
    """A job request for ``clip`` with a rule sending ``edit``."""
    return JobRequest(name, clip, Rule(name="r", edit=edit, min_credits=min_credits), work)


def run_job(backend: CloudBackend, job: JobRequest, ledger: Any = None, **context: Any) -> Rendition:
    """Process ``job`` with a fresh (or the given) ledger."""
    return backend.process(job, JobContext(ledger=ledger or StrictLedger(), **context))

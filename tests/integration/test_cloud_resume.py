"""A crash at any point of a cloud job, then a second process on the same job-store ledger
(real SQLite): it resumes instead of paying again, and polls the render id it already has."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.clocks import ManualClock
from support.serve import make_backend, request

from nemod.backends.base import JobContext
from nemod.serve.server import NemoServer
from nemod.store import SourceRef, SQLiteStore, StoreLedger

LEASE = 60.0


pytestmark = pytest.mark.serve(render_queue_seconds=0.3)


class SimulatedCrash(Exception):
    """Stands for the daemon dying at this point."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[SQLiteStore, ManualClock]]:
    clock = ManualClock()
    opened = SQLiteStore(tmp_path / "jobs.sqlite3", clock=clock)
    yield opened, clock
    opened.close()


def _claim(store: SQLiteStore, worker: str) -> StoreLedger:
    job = store.claim(worker, lease_seconds=LEASE)
    assert job is not None
    return StoreLedger(store, job, LEASE)


def _first_attempt(store: SQLiteStore, clip: Path) -> StoreLedger:
    store.enqueue("fingerprint-1", "r", SourceRef(str(clip.parent), clip.name))
    return _claim(store, "worker-1")


def _second_attempt(store: SQLiteStore, clock: ManualClock) -> StoreLedger:
    clock.now += LEASE + 1  # the first worker's lease runs out: the job is claimable again
    return _claim(store, "worker-2")


def test_restart_during_render_polling_resumes_the_same_render_id(
    server: NemoServer, store: tuple[SQLiteStore, ManualClock], clip: Path, tmp_path: Path
) -> None:
    db, clock = store
    ledger = _first_attempt(db, clip)

    def crash_while_polling(step: str, fraction: float) -> None:
        if step == "render":
            raise SimulatedCrash

    first = make_backend(server, tmp_path / "state")
    try:
        with pytest.raises(SimulatedCrash):
            first.process(request(clip, tmp_path / "work"), JobContext(ledger=ledger, progress=crash_while_polling))
    finally:
        first.close()
    sid = ledger.get("session").remote_id  # type: ignore[union-attr]
    render_id = ledger.get(f"render@{sid}").remote_id  # type: ignore[union-attr]
    assert render_id and server.service.render_counts[sid] == 1

    second = make_backend(server, tmp_path / "state")
    statuses: list[str] = []
    real_status = second.client.render_status

    def spy(rid: str) -> Any:
        status = real_status(rid)
        statuses.append(rid)
        return status

    second.client.render_status = spy  # type: ignore[method-assign]
    try:
        result = second.process(
            request(clip, tmp_path / "work"), JobContext(ledger=_second_attempt(db, clock))
        )
    finally:
        second.close()
    assert result.details["cloud"]["render_id"] == render_id
    assert set(statuses) == {render_id}
    assert server.service.render_counts == {sid: 1}
    assert server.service.instruction_counts == {sid: 1}
    assert result.video.is_file()


def test_restart_while_the_instruction_runs_never_resends_it(
    server: NemoServer, store: tuple[SQLiteStore, ManualClock], clip: Path, tmp_path: Path
) -> None:
    db, clock = store
    ledger = _first_attempt(db, clip)
    first = make_backend(server, tmp_path / "state")
    real_run = first.client.run_sse

    def run_then_crash(*args: Any, **kwargs: Any) -> Any:
        real_run(*args, **kwargs)
        raise SimulatedCrash

    first.client.run_sse = run_then_crash  # type: ignore[method-assign]
    try:
        with pytest.raises(SimulatedCrash):
            first.process(request(clip, tmp_path / "work"), JobContext(ledger=ledger))
    finally:
        first.close()
    sid = ledger.get("session").remote_id  # type: ignore[union-attr]
    row = ledger.get(f"instruction@{sid}#1")
    assert row is not None and row.remote_id is None  # sent, outcome unknown

    second = make_backend(server, tmp_path / "state")
    try:
        result = second.process(
            request(clip, tmp_path / "work"), JobContext(ledger=_second_attempt(db, clock))
        )
    finally:
        second.close()
    assert server.service.instruction_counts == {sid: 1}
    assert server.service.received_counts == {sid: 1}
    assert result.details["cloud"]["session_id"] == sid


def test_restart_between_recording_and_starting_a_render_starts_it_once(
    server: NemoServer, store: tuple[SQLiteStore, ManualClock], clip: Path, tmp_path: Path
) -> None:
    db, clock = store
    ledger = _first_attempt(db, clip)
    first = make_backend(server, tmp_path / "state")

    def crash(*args: Any, **kwargs: Any) -> None:
        raise SimulatedCrash

    first.client.start_render = crash  # type: ignore[method-assign]
    try:
        with pytest.raises(SimulatedCrash):
            first.process(request(clip, tmp_path / "work"), JobContext(ledger=ledger))
    finally:
        first.close()
    sid = ledger.get("session").remote_id  # type: ignore[union-attr]
    never_started = ledger.get(f"render@{sid}").remote_id  # type: ignore[union-attr]

    second = make_backend(server, tmp_path / "state")
    try:
        result = second.process(
            request(clip, tmp_path / "work"), JobContext(ledger=_second_attempt(db, clock))
        )
    finally:
        second.close()
    assert result.details["cloud"]["render_id"] != never_started
    assert server.service.render_counts == {sid: 1}
    assert server.service.instruction_counts == {sid: 1}


def test_taken_over_job_sends_nothing(
    server: NemoServer, store: tuple[SQLiteStore, ManualClock], clip: Path, tmp_path: Path
) -> None:
    from nemod.errors import LeaseLostError

    db, clock = store
    ledger = _first_attempt(db, clip)
    _second_attempt(db, clock)  # another worker took the job over
    backend = make_backend(server, tmp_path / "state")
    try:
        with pytest.raises(LeaseLostError):
            backend.process(request(clip, tmp_path / "work"), JobContext(ledger=ledger))
    finally:
        backend.close()
    assert sum(server.service.instruction_counts.values()) == 0

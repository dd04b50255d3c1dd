"""The cloud client against nemod serve over loopback HTTP: happy path and every fault."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.serve import (
    FAST_CLIENT,
    FAST_JOB,
    Sleeper,
    StrictLedger,
    make_backend,
    make_server,
    request,
    run_job,
)

from nemod.backends.base import JobContext
from nemod.cloud.api import ClientPolicy
from nemod.cloud.backend import JobPolicy
from nemod.config import Config, Rule
from nemod.draft import from_draft, to_draft
from nemod.errors import PermanentJobError, RetryableJobError, WaitingError
from nemod.media.probe import probe
from nemod.pipeline import run_job as run_pipeline
from nemod.serve.server import NemoServer


def _one_each(server: NemoServer) -> None:
    """No session ever ran an instruction twice, and exactly one ran in total."""
    counts = server.service.instruction_counts
    assert all(count <= 1 for count in counts.values()), counts
    assert sum(counts.values()) == 1, counts


def test_happy_path(server: NemoServer, clip: Path, tmp_path: Path) -> None:
    backend = make_backend(server, tmp_path / "state")
    seen: list[str] = []
    real_status = backend.client.render_status

    def spy(render_id: str):  # type: ignore[no-untyped-def]
        status = real_status(render_id)
        seen.append(status.status)
        return status

    backend.client.render_status = spy  # type: ignore[method-assign]
    ledger = StrictLedger()
    try:
        result = run_job(backend, request(clip, tmp_path / "work"), ledger)
    finally:
        backend.close()
    info = probe(result.video)
    assert info.has_video and info.height == 720
    assert result.timeline.video is not None and result.timeline.video.clips
    assert result.summary.startswith("Timeline (")
    cloud = result.details["cloud"]
    assert cloud["render_id"].startswith("render_")
    assert "Export" in cloud["answer"]
    _one_each(server)
    assert list(server.service.render_counts.values()) == [1]
    render = server.service.render(cloud["render_id"], next(iter(server.service._tokens.values())).account)
    assert render.history == ["pending", "processing", "completed"]
    assert seen[-1] == "completed"
    session = cloud["session_id"]
    assert ledger.get("session").remote_id == session  # type: ignore[union-attr]
    assert ledger.get(f"render@{session}").remote_id == cloud["render_id"]  # type: ignore[union-attr]
    assert ledger.get(f"instruction@{session}#1").remote_id.startswith("done:")  # type: ignore[union-attr]
    assert server.service.balance(render_account(server))["available"] == 50


def render_account(server: NemoServer):  # type: ignore[no-untyped-def]
    return next(iter(server.service._tokens.values())).account


def test_pending_is_visible_while_queued(tmp_path: Path, clip: Path) -> None:
    srv = make_server(tmp_path / "serve", render_queue_seconds=1.0)
    backend = make_backend(srv, tmp_path / "state")
    seen: list[str] = []
    real_status = backend.client.render_status

    def spy(render_id: str):  # type: ignore[no-untyped-def]
        status = real_status(render_id)
        seen.append(status.status)
        return status

    backend.client.render_status = spy  # type: ignore[method-assign]
    try:
        run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
        srv.stop()
    ordered = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
    assert ordered[0] == "pending" and ordered[-1] == "completed"


def test_expired_token_is_reacquired_with_the_same_client_id(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    backend = make_backend(server, tmp_path / "state")
    client_id = backend.tokens.client_id()
    first = backend.tokens.current()
    server.faults.arm("expire_token", 1, path="/api/state")
    try:
        run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
    assert server.faults.fired["expire_token"] == 1
    assert backend.tokens.client_id() == client_id
    assert first is None or backend.tokens.current() != first
    _one_each(server)


def test_rejected_configured_token_stops_with_a_clear_message(
    tmp_path: Path, clip: Path
) -> None:
    srv = make_server(tmp_path / "serve", static_tokens=("nmv_static_secret_token",))
    srv.faults.arm("expire_token", 1)
    backend = make_backend(srv, tmp_path / "state", env={"NEMO_TOKEN": "nmv_static_secret_token"})
    try:
        with pytest.raises(PermanentJobError) as caught:
            run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
        srv.stop()
    assert "NEMO_TOKEN" in str(caught.value)
    assert "nmv_static_secret_token" not in str(caught.value)
    assert not (tmp_path / "state" / "cloud" / "token.json").exists()


def test_forgotten_session_gets_a_new_session_and_resend(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    server.faults.arm("forget_session", 1, path="/run_sse")
    backend = make_backend(server, tmp_path / "state")
    try:
        result = run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
    assert len(server.service.instruction_counts) == 2  # two sessions
    _one_each(server)
    assert server.service.instruction_counts[result.details["cloud"]["session_id"]] == 1


def test_credits_below_minimum_make_the_job_wait_before_spending(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    backend = make_backend(server, tmp_path / "state")
    try:
        with pytest.raises(WaitingError) as caught:
            run_job(backend, request(clip, tmp_path / "work", min_credits=500))
    finally:
        backend.close()
    assert caught.value.reason == "credits"
    assert caught.value.delay == FAST_JOB.credits_recheck_seconds
    assert server.service.instruction_counts == {}  # no session was even created


def test_config_min_credits_applies_when_the_rule_has_none(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    server.faults.arm("no_credits", -1)
    backend = make_backend(server, tmp_path / "state", min_credits=50)
    try:
        with pytest.raises(WaitingError):
            run_job(backend, request(clip, tmp_path / "work", min_credits=None))
    finally:
        backend.close()


def test_out_of_credits_mid_job_waits_then_resumes_without_double_send(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    server.faults.arm("no_credits", -1, path="/run_sse")
    backend = make_backend(server, tmp_path / "state")
    ledger = StrictLedger()
    try:
        with pytest.raises(WaitingError) as caught:
            run_job(backend, request(clip, tmp_path / "work"), ledger)
        assert caught.value.reason == "credits"
        sid = ledger.get("session").remote_id  # type: ignore[union-attr]
        assert ledger.get(f"instruction@{sid}#1").remote_id == "unsent"  # type: ignore[union-attr]
        server.faults.clear()  # credits are back
        result = run_job(backend, request(clip, tmp_path / "work"), ledger)
    finally:
        backend.close()
    assert result.details["cloud"]["session_id"] == sid
    assert server.service.received_counts[sid] == 2
    _one_each(server)


def test_rate_limit_waits_and_retries_once(server: NemoServer, clip: Path, tmp_path: Path) -> None:
    server.faults.arm("http_429", 1, path="/api/render/proxy/lambda")
    sleeper = Sleeper()
    backend = make_backend(server, tmp_path / "state", sleeper=sleeper)
    try:
        run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
    assert FAST_CLIENT.rate_limit_wait in sleeper.calls
    assert list(server.service.render_counts.values()) == [1]


def test_rate_limit_twice_is_retryable_later(server: NemoServer, clip: Path, tmp_path: Path) -> None:
    server.faults.arm("http_429", 2, path="/api/tasks")
    backend = make_backend(server, tmp_path / "state")
    try:
        with pytest.raises(RetryableJobError) as caught:
            run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
    assert caught.value.delay == FAST_JOB.rate_limit_delay


def test_server_errors_on_reads_are_retried_with_backoff(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    server.faults.arm("http_5xx", 2, path="/api/state")
    sleeper = Sleeper()
    backend = make_backend(server, tmp_path / "state", sleeper=sleeper)
    try:
        run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
    assert sleeper.calls.count(0.01) >= 2
    _one_each(server)


def test_server_error_on_render_start_is_retryable_and_resumes(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    server.faults.arm("http_5xx", 1, path="/api/render/proxy/lambda")
    backend = make_backend(server, tmp_path / "state")
    ledger = StrictLedger()
    try:
        with pytest.raises(RetryableJobError):
            run_job(backend, request(clip, tmp_path / "work"), ledger)
        result = run_job(backend, request(clip, tmp_path / "work"), ledger)
    finally:
        backend.close()
    assert result.video.is_file()
    _one_each(server)
    assert list(server.service.render_counts.values()) == [1]


def test_dropped_stream_is_recovered_by_polling_state_never_resending(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    server.faults.arm("drop_sse", 1)
    sleeper = Sleeper()
    backend = make_backend(server, tmp_path / "state", sleeper=sleeper)
    try:
        result = run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
    assert server.faults.fired["drop_sse"] == 1
    assert FAST_JOB.drop_first_wait in sleeper.calls
    assert result.details["cloud"]["answer"] == ""
    _one_each(server)


def test_stream_without_text_is_confirmed_from_state(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    server.faults.arm("no_text", 1)
    backend = make_backend(server, tmp_path / "state")
    try:
        result = run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
    assert server.faults.fired["no_text"] == 1
    assert result.video.is_file()
    _one_each(server)


def test_slow_heartbeats_beyond_the_gap_count_as_a_drop(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    server.faults.arm("slow_heartbeats", 1)
    client = ClientPolicy(**{**FAST_CLIENT.__dict__, "heartbeat_gap": 0.2})
    backend = make_backend(server, tmp_path / "state", client=client)
    try:
        result = run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
    assert result.details["cloud"]["answer"] == ""
    _one_each(server)


def test_slow_heartbeats_within_the_gap_are_waited_for(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    server.faults.arm("slow_heartbeats", 1)
    backend = make_backend(server, tmp_path / "state")
    try:
        result = run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
    assert "Export" in result.details["cloud"]["answer"]
    _one_each(server)


def test_heartbeats_only_for_too_long_is_a_timeout_then_state_polling(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    server.faults.arm("slow_heartbeats", 1)
    client = ClientPolicy(**{**FAST_CLIENT.__dict__, "heartbeat_only_limit": 0.3})
    backend = make_backend(server, tmp_path / "state", client=client)
    try:
        result = run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
    assert result.details["cloud"]["answer"] == ""
    _one_each(server)


def test_failed_render_is_retried_once_with_a_new_id(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    server.faults.arm("fail_render", 1)
    backend = make_backend(server, tmp_path / "state")
    ledger = StrictLedger()
    try:
        result = run_job(backend, request(clip, tmp_path / "work"), ledger)
    finally:
        backend.close()
    assert list(server.service.render_counts.values()) == [2]
    sid = result.details["cloud"]["session_id"]
    first = ledger.get(f"render_retry@{sid}").remote_id  # type: ignore[union-attr]
    assert first != result.details["cloud"]["render_id"]
    _one_each(server)


def test_render_failing_twice_is_permanent(server: NemoServer, clip: Path, tmp_path: Path) -> None:
    server.faults.arm("fail_render", 2)
    backend = make_backend(server, tmp_path / "state")
    try:
        with pytest.raises(PermanentJobError, match="failed twice"):
            run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
    assert list(server.service.render_counts.values()) == [2]


def test_bad_output_url_falls_back_to_the_proxy_download(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    server.faults.arm("bad_output_url", 1)
    backend = make_backend(server, tmp_path / "state")
    try:
        result = run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
    assert server.faults.fired["bad_output_url"] == 1
    assert probe(result.video).has_video


def test_second_stage_is_awaited_before_export(server: NemoServer, clip: Path, tmp_path: Path) -> None:
    server.faults.arm("second_stage", 1)
    job = JobPolicy(**{**FAST_JOB.__dict__, "confirm_interval": 0.5})
    backend = make_backend(server, tmp_path / "state", job=job, sleeper=Sleeper(cap=0.5))
    try:
        result = run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
    assert "second_stage" in result.timeline.extra
    render = server.service.render(result.details["cloud"]["render_id"], render_account(server))
    assert "second_stage" in render.draft["m"]


def test_the_services_draft_is_kept_as_it_came(server: NemoServer, clip: Path, tmp_path: Path) -> None:
    """The service may put what nemod does not model anywhere in its draft (here an ``id`` on
    each segment): the job renders and logs that draft as it came, and reads what it models
    of it for the summary."""
    backend = make_backend(server, tmp_path / "state")
    real_state = backend.client.state

    def annotated(session_id: str) -> dict[str, Any]:
        state = real_state(session_id)
        for track in (state.get("draft") or {}).get("t", []):
            for number, segment in enumerate(track.get("sg", [])):
                segment["id"] = f"seg-{number}"
        return state

    backend.client.state = annotated  # type: ignore[method-assign]
    config = Config(path=tmp_path / "nemod.yaml", state_dir=tmp_path / "state", backend="cloud")
    try:
        outcome = run_pipeline(config, backend, clip, tmp_path / "out", job_id="kept1",
                               rule=Rule(name="r", edit="export 720p MP4", min_credits=0), context=JobContext())
    finally:
        backend.close()
    log = json.loads(outcome.outputs[".log.json"].read_text(encoding="utf-8"))
    assert log["draft"]["t"][0]["sg"][0]["id"] == "seg-0"
    timeline = from_draft(log["draft"])
    assert timeline.video is not None and timeline.video.clips
    assert "id" not in to_draft(timeline)["t"][0]["sg"][0]  # nemod's own draft would say less
    render = server.service.render(log["cloud"]["render_id"], render_account(server))
    assert render.draft == log["draft"]


def test_instruction_the_engine_does_not_understand_is_a_permanent_failure(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    backend = make_backend(server, tmp_path / "state")
    try:
        with pytest.raises(PermanentJobError, match="can't do that"):
            run_job(backend, request(clip, tmp_path / "work", edit="summon a dragon"))
    finally:
        backend.close()
    assert server.service.render_counts and not any(server.service.render_counts.values())


def test_unsupported_file_type_lists_accepted_types(
    server: NemoServer, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    backend = make_backend(server, tmp_path / "state")
    try:
        with pytest.raises(PermanentJobError) as caught:
            run_job(backend, request(notes, tmp_path / "work"))
    finally:
        backend.close()
    assert "mp4" in str(caught.value) and "webm" in str(caught.value)


def test_file_too_large_is_permanent(tmp_path: Path, clip: Path) -> None:
    srv = make_server(tmp_path / "serve", max_upload_bytes=10_000)
    backend = make_backend(srv, tmp_path / "state")
    try:
        with pytest.raises(PermanentJobError, match=r"too large|larger"):
            run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
        srv.stop()
    media = list((tmp_path / "serve" / "sessions").glob("*/media/*"))
    assert media == []  # the partial upload was removed


def test_token_without_render_scope_is_permanent(tmp_path: Path, clip: Path) -> None:
    srv = make_server(tmp_path / "serve", anonymous_scopes=("read", "write", "upload"))
    backend = make_backend(srv, tmp_path / "state")
    try:
        with pytest.raises(PermanentJobError, match="403"):
            run_job(backend, request(clip, tmp_path / "work"))
    finally:
        backend.close()
        srv.stop()


def test_edit_that_never_changes_state_fails_after_five_reads(
    server: NemoServer, clip: Path, tmp_path: Path
) -> None:
    server.faults.arm("drop_sse", 1)
    backend = make_backend(server, tmp_path / "state")
    ledger = StrictLedger()
    # The edit changes nothing (the engine cannot do it) and the stream drops: the state
    # never changes, so after five unchanged reads the edit has failed; nothing is re-sent.
    reads: list[str] = []
    real_state = backend.client.state

    def spy(session_id: str):  # type: ignore[no-untyped-def]
        reads.append(session_id)
        return real_state(session_id)

    backend.client.state = spy  # type: ignore[method-assign]
    try:
        with pytest.raises(RetryableJobError, match="did not change"):
            run_job(backend, request(clip, tmp_path / "work", edit="summon a dragon"), ledger)
        sid = ledger.get("session").remote_id  # type: ignore[union-attr]
        assert ledger.get(f"instruction@{sid}#1").remote_id == "failed"  # type: ignore[union-attr]
        assert len(reads) == 1 + FAST_JOB.drop_unchanged_reads  # baseline + 5 polls
        assert server.service.instruction_counts[sid] == 1
        # The next attempt starts over in a new session instead of re-sending in the old one.
        with pytest.raises(RetryableJobError, match="new session"):
            run_job(backend, request(clip, tmp_path / "work", edit="summon a dragon"), ledger)
        assert ledger.get("session").remote_id == f"lost:{sid}"  # type: ignore[union-attr]
    finally:
        backend.close()
    assert server.service.instruction_counts[sid] == 1

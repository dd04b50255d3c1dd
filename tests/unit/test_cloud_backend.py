"""The cloud backend's pure parts and its credit gate (httpx.MockTransport)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from nemod.backends.base import JobContext, JobRequest
from nemod.cloud.backend import CloudBackend, JobPolicy, draft_ready, job_error, state_digest
from nemod.config import CloudSettings, Rule
from nemod.errors import BackendError, PermanentJobError, RetryableJobError, WaitingError

POLICY = JobPolicy(credits_recheck_seconds=600.0, retry_delay=60.0, rate_limit_delay=30.0)


@pytest.mark.parametrize(
    ("error", "kind", "words"),
    [
        (BackendError("x", code=2001), WaitingError, "credits"),
        (BackendError("token bad", code=1001), PermanentJobError, "token bad"),
        (BackendError("x", code=4001), PermanentJobError, "mp4"),
        (BackendError("x", code=4002), PermanentJobError, "500 MB"),
        (BackendError("x", status=402), PermanentJobError, "plan cannot export"),
        (BackendError("x", status=403), PermanentJobError, "scope"),
        (BackendError("x", status=429), RetryableJobError, ""),
        (BackendError("x", status=503), RetryableJobError, ""),
        (BackendError("cannot reach"), RetryableJobError, "cannot reach"),
    ],
)
def test_api_errors_map_to_the_reference_recovery(
    error: BackendError, kind: type[Exception], words: str
) -> None:
    mapped = job_error(error, POLICY)
    assert type(mapped) is kind and words in str(mapped)
    if isinstance(mapped, WaitingError):
        assert mapped.reason == "credits" and mapped.delay == 600.0
    elif isinstance(mapped, RetryableJobError):
        assert mapped.delay == (30.0 if error.status == 429 else 60.0)


def test_draft_ready_needs_a_track_with_segments() -> None:
    assert not draft_ready(None) and not draft_ready({}) and not draft_ready({"t": []})
    assert not draft_ready({"t": [{"tt": 0, "sg": []}]})
    assert draft_ready({"t": [{"tt": 7, "sg": []}, {"tt": 0, "sg": [{"src": "a"}]}]})


def test_state_digest_sees_draft_changes_only() -> None:
    base = {"draft": {"t": []}, "video_infos": [1], "generated_media": []}
    assert state_digest(base) == state_digest({**base, "video_infos": [1, 2]})
    assert state_digest(base) != state_digest({**base, "draft": {"t": [{"sg": [1]}]}})


def test_below_min_credits_the_job_waits_and_nothing_is_spent(tmp_path: Path) -> None:
    paths: list[str] = []

    def api(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path == "/api/auth/anonymous-token":
            return httpx.Response(200, json={"code": 0, "data": {"token": "nmv_usr_t"}})
        return httpx.Response(200, json={"code": 0, "data": {"available": 40, "frozen": 0, "total": 40}})

    backend = CloudBackend(
        CloudSettings(api_url="https://api.test", min_credits=50),
        tmp_path,
        env={},
        transport=httpx.MockTransport(api),
        sleep=lambda seconds: None,
        job_policy=POLICY,
    )
    source = tmp_path / "a.mp4"
    source.write_bytes(b"x")
    job = JobRequest("j", source, Rule(name="r", edit="export"), tmp_path / "work")
    try:
        with pytest.raises(WaitingError) as caught:
            backend.process(job, JobContext())
    finally:
        backend.close()
    assert caught.value.reason == "credits" and "40" in str(caught.value)
    assert paths == ["/api/auth/anonymous-token", "/api/credits/balance/simple"]


def test_render_ids_are_fresh_even_within_one_millisecond(tmp_path: Path) -> None:
    backend = CloudBackend(
        CloudSettings(api_url="https://api.test"),
        tmp_path,
        env={},
        clock=lambda: 1234.5678,
        transport=httpx.MockTransport(lambda r: httpx.Response(500)),
    )
    try:
        ids = [backend._new_render_id() for _ in range(3)]
    finally:
        backend.close()
    assert ids == ["render_1234567", "render_1234568", "render_1234569"]


@pytest.mark.parametrize(
    ("rule", "sent"),
    [
        (Rule(name="r", edit="export", language="de"), "de"),
        (Rule(name="r", edit="加字幕", language="auto"), "auto"),
        (Rule(name="r", edit="add captions"), "en"),
    ],
)
def test_the_session_is_created_in_the_rules_language(tmp_path: Path, rule: Rule, sent: str) -> None:
    bodies: list[dict[str, object]] = []

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/anonymous-token":
            return httpx.Response(200, json={"code": 0, "data": {"token": "nmv_usr_t"}})
        if request.url.path == "/api/credits/balance/simple":
            return httpx.Response(200, json={"code": 0, "data": {"available": 500, "frozen": 0, "total": 500}})
        if request.url.path == "/api/tasks/me/with-session/nemo_agent":
            bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"code": 4001, "message": "stop here"})

    backend = CloudBackend(
        CloudSettings(api_url="https://api.test"), tmp_path, env={},
        transport=httpx.MockTransport(api), sleep=lambda seconds: None, job_policy=POLICY,
    )
    source = tmp_path / "a.mp4"
    source.write_bytes(b"x")
    try:
        with pytest.raises(PermanentJobError):
            backend.process(JobRequest("j", source, rule, tmp_path / "work"), JobContext())
    finally:
        backend.close()
    assert bodies == [{"task_name": "project", "language": sent}]

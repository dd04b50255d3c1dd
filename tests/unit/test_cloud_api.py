"""The NemoVideo client over httpx.MockTransport: envelope, headers, error mapping, SSE."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nemod.cloud.api import ClientPolicy, NemoClient, safe_id
from nemod.cloud.auth import TokenStore
from nemod.errors import BackendError

API = "https://api.test"
POLICY = ClientPolicy(rate_limit_wait=30.0, backoff=(1.0, 2.0))


def ok(data: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"code": 0, "data": data})


def fail(code: int, status: int = 200, message: str = "nope") -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message, "data": None})


class Api:
    """A scripted service: ``routes`` maps "METHOD /path" to a handler or a list of answers."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []
        self.tokens_issued = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = f"{request.method} {request.url.path}"
        if key == "POST /api/auth/anonymous-token" and key not in self.routes:
            self.tokens_issued += 1
            return ok({"token": f"nmv_usr_t{self.tokens_issued}", "credits": 100})
        answer = self.routes[key]
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, Exception):
            raise answer
        return answer


def client(
    tmp_path: Path,
    api: Api,
    *,
    env: dict[str, str] | None = None,
    sleeps: list[float] | None = None,
    policy: ClientPolicy = POLICY,
    monotonic: Callable[[], float] | None = None,
) -> NemoClient:
    store = TokenStore(tmp_path, API, env=env or {"NEMO_CLIENT_ID": "client-1"})
    kwargs: dict[str, Any] = {}
    if monotonic is not None:
        kwargs["monotonic"] = monotonic
    return NemoClient(
        API,
        store,
        transport=httpx.MockTransport(api),
        policy=policy,
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
        **kwargs,
    )


def test_envelope_headers_and_token_reuse(tmp_path: Path) -> None:
    api = Api({"GET /api/credits/balance/simple": ok({"available": 80, "frozen": 20, "total": 100})})
    with client(tmp_path, api) as nemo:
        first = nemo.balance()
        nemo.balance()
    assert (first.available, first.frozen, first.total) == (80, 20, 100)
    assert api.tokens_issued == 1
    token_call, balance_call = api.requests[0], api.requests[1]
    assert token_call.headers["X-Client-Id"] == "client-1"
    assert "Authorization" not in token_call.headers
    assert balance_call.headers["Authorization"] == "Bearer nmv_usr_t1"
    assert balance_call.headers["X-Skill-Source"] == "nemod"
    assert balance_call.headers["X-Skill-Version"] and balance_call.headers["X-Skill-Platform"]
    assert all("nmv_usr" not in str(request.url) for request in api.requests)


def test_code_1001_reacquires_with_the_same_client_id(tmp_path: Path) -> None:
    api = Api({"GET /api/credits/balance/simple": [fail(1001, 401), ok({"available": 1})]})
    with client(tmp_path, api) as nemo:
        assert nemo.balance().available == 1
    token_calls = [r for r in api.requests if r.url.path == "/api/auth/anonymous-token"]
    assert [r.headers["X-Client-Id"] for r in token_calls] == ["client-1", "client-1"]
    assert api.requests[-1].headers["Authorization"] == "Bearer nmv_usr_t2"


def test_code_1001_twice_gives_up(tmp_path: Path) -> None:
    api = Api({"GET /api/credits/balance/simple": [fail(1001)]})
    with client(tmp_path, api) as nemo, pytest.raises(BackendError) as caught:
        nemo.balance()
    assert caught.value.code == 1001


def test_configured_token_rejected_stops_with_a_clear_message(tmp_path: Path) -> None:
    api = Api({"GET /api/credits/balance/simple": [fail(1001)]})
    env = {"NEMO_TOKEN": "nmv_usr_configured", "NEMO_CLIENT_ID": "c"}
    with client(tmp_path, api, env=env) as nemo, pytest.raises(BackendError) as caught:
        nemo.balance()
    assert caught.value.code == 1001 and "NEMO_TOKEN" in str(caught.value)
    assert "nmv_usr_configured" not in str(caught.value)
    assert api.tokens_issued == 0


def test_429_waits_thirty_seconds_and_retries_once(tmp_path: Path) -> None:
    sleeps: list[float] = []
    api = Api({"GET /api/credits/balance/simple": [httpx.Response(429), ok({"available": 3})]})
    with client(tmp_path, api, sleeps=sleeps) as nemo:
        assert nemo.balance().available == 3
    assert sleeps == [30.0]
    api = Api({"GET /api/credits/balance/simple": [httpx.Response(429)]})
    with client(tmp_path, api, sleeps=sleeps) as nemo, pytest.raises(BackendError) as caught:
        nemo.balance()
    assert caught.value.status == 429


def test_5xx_and_connection_errors_retry_reads_with_backoff(tmp_path: Path) -> None:
    sleeps: list[float] = []
    api = Api(
        {
            "GET /api/state/nemo_agent/me/s1/latest": [
                httpx.Response(503),
                httpx.ConnectError("refused"),
                ok({"state": {"draft": {}}}),
            ]
        }
    )
    with client(tmp_path, api, sleeps=sleeps) as nemo:
        assert nemo.state("s1") == {"draft": {}}
    assert sleeps == [1.0, 2.0]
    api = Api({"GET /api/state/nemo_agent/me/s1/latest": [httpx.Response(502)]})
    with client(tmp_path, api, sleeps=sleeps) as nemo, pytest.raises(BackendError) as caught:
        nemo.state("s1")
    assert caught.value.status == 502


def test_calls_that_cost_or_start_work_are_never_retried(tmp_path: Path) -> None:
    api = Api({"POST /api/render/proxy/lambda": [httpx.Response(503)]})
    with client(tmp_path, api) as nemo, pytest.raises(BackendError) as caught:
        nemo.start_render("render_1", "s1", {"t": []})
    assert caught.value.status == 503
    assert len([r for r in api.requests if r.url.path == "/api/render/proxy/lambda"]) == 1
    body = json.loads(api.requests[-1].content)
    assert body["sessionId"] == "s1" and body["id"] == "render_1"
    assert body["output"] == {"format": "mp4", "quality": "high"}


@pytest.mark.parametrize(
    ("answer", "code", "status"),
    [
        (fail(1002), 1002, 200),
        (fail(2001), 2001, 200),
        (fail(4001), 4001, 200),
        (fail(4002, 413), 4002, 413),
        (httpx.Response(402, json={"message": "plan"}), None, 402),
        (httpx.Response(403, text="no"), None, 403),
        (httpx.Response(400, json={}), None, 400),
    ],
)
def test_error_answers_become_typed_backend_errors(
    tmp_path: Path, answer: httpx.Response, code: int | None, status: int
) -> None:
    api = Api({"POST /api/tasks/me/with-session/nemo_agent": [answer]})
    with client(tmp_path, api) as nemo, pytest.raises(BackendError) as caught:
        nemo.create_session()
    assert caught.value.code == code and caught.value.status == status


def test_answers_that_are_not_json_or_unsafe_ids_are_errors(tmp_path: Path) -> None:
    api = Api({"POST /api/tasks/me/with-session/nemo_agent": [httpx.Response(200, text="<html>")]})
    with client(tmp_path, api) as nemo, pytest.raises(BackendError, match="not JSON"):
        nemo.create_session()
    api = Api({"POST /api/tasks/me/with-session/nemo_agent": [ok({"session_id": "../../x"})]})
    with client(tmp_path, api) as nemo, pytest.raises(BackendError, match="session id"):
        nemo.create_session()
    with pytest.raises(BackendError):
        safe_id("a/b", "render id")


class StreamingReceiver(httpx.BaseTransport):
    """A transport that consumes the request body chunk by chunk, as a socket would
    (MockTransport reads the whole body first, which would hide buffering)."""

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/anonymous-token":
            return ok({"token": "nmv_usr_t"})
        sizes = [len(chunk) for chunk in request.stream]  # type: ignore[union-attr]
        self.seen = {
            "largest": max(sizes),
            "total": sum(sizes),
            "length": int(request.headers["Content-Length"]),
            "type": request.headers["Content-Type"],
        }
        return ok({"files": []})


def test_upload_streams_the_file_in_chunks(tmp_path: Path) -> None:
    source = tmp_path / "big.mp4"
    source.write_bytes(b"\0" * 3_000_000)
    receiver = StreamingReceiver()
    store = TokenStore(tmp_path, API, env={"NEMO_CLIENT_ID": "c"})
    with NemoClient(API, store, transport=receiver, policy=POLICY) as nemo:
        nemo.upload("s1", source)
    seen = receiver.seen
    assert seen["largest"] <= 64 * 1024
    assert seen["total"] == seen["length"] > 3_000_000
    assert seen["type"].startswith("multipart/form-data; boundary=")


def sse_body(*lines: str) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def adk_text(text: str) -> str:
    return "data: " + json.dumps({"content": {"parts": [{"text": text}]}, "partial": False}) + "\n"


def test_run_sse_parses_the_event_stream(tmp_path: Path) -> None:
    body = sse_body(
        "event: heartbeat",
        "data: {}",
        "",
        "data: ",
        "",
        'data: {"content": {"parts": [{"functionCall": {"name": "edit"}}]}}',
        "",
        adk_text("Done, click Export."),
    )
    api = Api(
        {"POST /run_sse": httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)}
    )
    with client(tmp_path, api) as nemo:
        result = nemo.run_sse("s1", "trim the pauses")
    assert result.ended == "closed" and result.answer == "Done, click Export."
    assert result.function_calls == ["edit"] and result.heartbeats == 2
    sent = json.loads(api.requests[-1].content)
    assert sent == {
        "app_name": "nemo_agent",
        "user_id": "me",
        "session_id": "s1",
        "new_message": {"parts": [{"text": "trim the pauses"}]},
    }
    assert api.requests[-1].headers["Accept"] == "text/event-stream"


class Broken(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        yield b"event: heartbeat\ndata: {}\n\n"
        raise httpx.RemoteProtocolError("peer closed connection")


def test_run_sse_reports_a_dropped_connection_without_retrying(tmp_path: Path) -> None:
    api = Api(
        {
            "POST /run_sse": lambda request: httpx.Response(
                200, headers={"content-type": "text/event-stream"}, stream=Broken()
            )
        }
    )
    with client(tmp_path, api) as nemo:
        result = nemo.run_sse("s1", "edit")
    assert result.ended == "dropped" and not result.has_text
    assert len([r for r in api.requests if r.url.path == "/run_sse"]) == 1


def test_run_sse_heartbeats_only_for_too_long_is_a_timeout(tmp_path: Path) -> None:
    ticks = iter(range(0, 10_000, 100))
    body = sse_body(*(["event: heartbeat", "data: {}", ""] * 20))
    api = Api(
        {"POST /run_sse": httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)}
    )
    policy = ClientPolicy(heartbeat_only_limit=600.0)
    with client(tmp_path, api, policy=policy, monotonic=lambda: float(next(ticks))) as nemo:
        result = nemo.run_sse("s1", "edit")
    assert result.ended == "timeout" and result.heartbeats < 20


def test_run_sse_refusals_raise(tmp_path: Path) -> None:
    api = Api({"POST /run_sse": [fail(2001)]})
    with client(tmp_path, api) as nemo, pytest.raises(BackendError) as caught:
        nemo.run_sse("s1", "edit")
    assert caught.value.code == 2001


def test_render_status_reads_top_level_or_data(tmp_path: Path) -> None:
    api = Api(
        {
            "GET /api/render/proxy/lambda/render_1": httpx.Response(
                200, json={"status": "completed", "output": {"url": "https://cdn.test/v.mp4"}}
            ),
            "GET /api/render/proxy/lambda/render_2": ok({"status": "processing"}),
        }
    )
    with client(tmp_path, api) as nemo:
        done = nemo.render_status("render_1")
        running = nemo.render_status("render_2")
    assert (done.status, done.url) == ("completed", "https://cdn.test/v.mp4")
    assert (running.status, running.url) == ("processing", None)


def test_download_sends_the_token_only_to_the_api_host(tmp_path: Path) -> None:
    def video(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"video-bytes")

    api = Api(
        {
            "GET /v.mp4": video,
            "GET /api/render/proxy/render_1/download": video,
            "GET /api/credits/balance/simple": ok({}),
        }
    )
    with client(tmp_path, api) as nemo:
        nemo.balance()
        assert nemo.download("https://cdn.test/v.mp4", tmp_path / "a.mp4") == 11
        nemo.download("/api/render/proxy/render_1/download", tmp_path / "b.mp4")
    cdn = next(r for r in api.requests if r.url.host == "cdn.test")
    proxy = next(r for r in api.requests if r.url.path.endswith("/download"))
    assert "Authorization" not in cdn.headers
    assert proxy.headers["Authorization"].startswith("Bearer ")
    assert (tmp_path / "a.mp4").read_bytes() == b"video-bytes"


def test_failed_download_removes_the_partial_file(tmp_path: Path) -> None:
    api = Api({"GET /v.mp4": httpx.Response(404)})
    with client(tmp_path, api) as nemo, pytest.raises(BackendError):
        nemo.download("/v.mp4", tmp_path / "a.mp4")
    assert not (tmp_path / "a.mp4").exists()


def test_run_sse_without_any_answer_counts_as_dropped_but_unsent_raises(tmp_path: Path) -> None:
    api = Api({"POST /run_sse": [httpx.RemoteProtocolError("server vanished")]})
    with client(tmp_path, api) as nemo:
        assert nemo.run_sse("s1", "edit").ended == "dropped"  # it may be running: never resend
    api = Api({"POST /run_sse": [httpx.ConnectError("refused")]})
    with client(tmp_path, api) as nemo, pytest.raises(BackendError):
        nemo.run_sse("s1", "edit")  # never reached the service: safe to send later
    assert len([r for r in api.requests if r.url.path == "/run_sse"]) == 1


def test_a_token_renewed_by_another_thread_is_not_renewed_again(tmp_path: Path) -> None:
    api = Api({"GET /api/credits/balance/simple": ok({})})
    with client(tmp_path, api) as nemo:
        nemo.balance()
        nemo._token_rejected("nmv_usr_an_older_token")  # someone else already renewed
        nemo.balance()
    assert api.tokens_issued == 1

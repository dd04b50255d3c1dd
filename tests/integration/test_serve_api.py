"""nemod serve's API over loopback HTTP: tokens, sessions, uploads, SSE, renders, admin —
and that no request reaches the file system unchecked."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nemod.cloud.sse import StreamResult, decode
from nemod.serve.server import NemoServer
from nemod.serve.service import ServeSettings

ATTRIBUTION = {"X-Skill-Source": "test", "X-Skill-Version": "1", "X-Skill-Platform": "test"}


pytestmark = pytest.mark.serve(max_upload_bytes=2_000_000)


@pytest.fixture
def http(server: NemoServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=20) as client:
        yield client


def token(http: httpx.Client, client_id: str = "client-1") -> dict[str, str]:
    answer = http.post("/api/auth/anonymous-token", headers={"X-Client-Id": client_id}).json()
    assert answer["code"] == 0 and answer["data"]["token"].startswith("nmv_usr_")
    return {"Authorization": f"Bearer {answer['data']['token']}", **ATTRIBUTION}


def session(http: httpx.Client, auth: dict[str, str]) -> str:
    answer = http.post("/api/tasks/me/with-session/nemo_agent", headers=auth,
                       json={"task_name": "project", "language": "en"}).json()
    assert answer["code"] == 0
    return str(answer["data"]["session_id"])


def upload(http: httpx.Client, auth: dict[str, str], sid: str, name: str, data: bytes) -> Any:
    return http.post(f"/api/upload-video/nemo_agent/me/{sid}", headers=auth,
                     files={"files": (name, data, "video/mp4")})


def sse(http: httpx.Client, auth: dict[str, str], sid: str, text: str) -> tuple[StreamResult, str]:
    body = {"app_name": "nemo_agent", "user_id": "me", "session_id": sid,
            "new_message": {"parts": [{"text": text}]}}
    result, raw = StreamResult(), []
    with http.stream("POST", "/run_sse", headers={**auth, "Accept": "text/event-stream"},
                     json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        from httpx_sse import EventSource
        for event in EventSource(response).iter_sse():
            raw.append(event.event + ":" + event.data)
            for decoded in decode(event.event, event.data):
                result.add(decoded)
    return result, "\n".join(raw)


def test_loopback_is_the_default() -> None:
    assert ServeSettings(data_dir=Path("x")).host == "127.0.0.1"


def test_token_needs_a_client_id_and_is_reused(http: httpx.Client) -> None:
    missing = http.post("/api/auth/anonymous-token")
    assert missing.status_code == 400
    first = http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "a"}).json()["data"]
    again = http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "a"}).json()["data"]
    assert first["token"] == again["token"] and first["credits"] == 100


def test_requests_need_a_valid_token(http: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer nmv_usr_forged"}):
        answer = http.get("/api/credits/balance/simple", headers=headers)
        assert answer.status_code == 401 and answer.json()["code"] == 1001


def test_sessions_are_private_to_their_account(http: httpx.Client) -> None:
    mine, theirs = token(http, "me"), token(http, "them")
    sid = session(http, mine)
    assert http.get(f"/api/state/nemo_agent/me/{sid}/latest", headers=mine).json()["code"] == 0
    stolen = http.get(f"/api/state/nemo_agent/me/{sid}/latest", headers=theirs).json()
    assert stolen["code"] == 1002
    assert upload(http, theirs, sid, "x.mp4", b"data").json()["code"] == 1002


def test_upload_names_cannot_leave_the_session_folder(
    http: httpx.Client, server: NemoServer, tmp_path: Path
) -> None:
    auth = token(http)
    sid = session(http, auth)
    for name in ("../../../escape.mp4", "..\\..\\escape.mp4", "/etc/escape.mp4", ".hidden.mp4"):
        answer = upload(http, auth, sid, name, b"not really a video").json()
        assert answer["code"] == 0, answer
    media = server.settings.data_dir / "sessions" / sid / "media"
    names = sorted(path.name for path in media.iterdir())
    assert names == ["escape-2.mp4", "escape-3.mp4", "escape.mp4", "hidden.mp4"]
    everything = {path.name for path in tmp_path.rglob("*")}
    assert everything & {"escape.mp4"} and not (tmp_path / "escape.mp4").exists()
    assert not list(server.settings.data_dir.glob("escape*"))


def test_unsupported_type_and_url_upload_are_4001(http: httpx.Client, server: NemoServer) -> None:
    auth = token(http)
    sid = session(http, auth)
    answer = upload(http, auth, sid, "notes.txt", b"hello").json()
    assert answer["code"] == 4001 and "mp4" in answer["message"]
    by_url = http.post(f"/api/upload-video/nemo_agent/me/{sid}", headers=auth,
                       json={"urls": ["http://example.invalid/a.mp4"], "source_type": "url"}).json()
    assert by_url["code"] == 4001
    assert not list((server.settings.data_dir / "sessions" / sid / "media").iterdir())


def test_upload_size_is_limited_and_partial_files_removed(
    http: httpx.Client, server: NemoServer
) -> None:
    auth = token(http)
    sid = session(http, auth)
    answer = upload(http, auth, sid, "big.mp4", b"x" * 2_500_000).json()
    assert answer["code"] == 4002
    assert not list((server.settings.data_dir / "sessions" / sid / "media").iterdir())
    # the connection is still usable afterwards
    assert http.get("/api/credits/balance/simple", headers=auth).json()["code"] == 0


def test_oversized_json_is_refused(http: httpx.Client) -> None:
    auth = token(http)
    answer = http.post("/api/tasks/me/with-session/nemo_agent", headers=auth,
                       content=b"{" + b" " * (5 * 1024 * 1024) + b"}")
    assert answer.status_code == 413


def test_edit_stream_state_credits_and_render(
    http: httpx.Client, server: NemoServer, clip: Path
) -> None:
    auth = token(http)
    sid = session(http, auth)
    assert upload(http, auth, sid, "talk.mp4", clip.read_bytes()).json()["code"] == 0
    state = http.get(f"/api/state/nemo_agent/me/{sid}/latest", headers=auth).json()["data"]["state"]
    assert state["draft"] == {} and state["video_infos"][0]["name"] == "talk.mp4"

    result, raw = sse(http, auth, sid, "export 720p MP4")
    assert result.function_calls == ["edit_timeline"] and result.function_responses
    assert result.heartbeats >= 0 and "Export" in result.answer
    assert '"invocationId"' in raw and '"functionCall"' in raw
    state = http.get(f"/api/state/nemo_agent/me/{sid}/latest", headers=auth).json()["data"]["state"]
    draft = state["draft"]
    assert draft["t"][0]["sg"][0]["src"] == "talk.mp4"
    balance = http.get("/api/credits/balance/simple", headers=auth).json()["data"]
    assert balance == {"available": 50, "frozen": 0, "total": 50}

    not_understood, _ = sse(http, auth, sid, "summon a dragon")
    assert "can't do that" in not_understood.answer
    assert http.get("/api/credits/balance/simple", headers=auth).json()["data"]["available"] == 50

    no_attribution = {"Authorization": auth["Authorization"]}
    body = {"id": "render_1", "sessionId": sid, "draft": draft,
            "output": {"format": "mp4", "quality": "high"}}
    assert http.post("/api/render/proxy/lambda", headers=no_attribution, json=body).status_code == 402
    passwd = {"tt": 0, "sg": [{"src": "../../../etc/passwd", "s": 0, "e": 1000}]}
    as_text = {"tt": 0, "sg": [{"src": "talk.mp4", "s": "0", "e": 1000}]}
    for bad, said in (({**body, "id": "../../x"}, "render id"), ({**body, "draft": {"t": []}}, "no video track"),
                      ({**body, "draft": {**draft, "t": [passwd]}}, "not in this session"),
                      ({**body, "draft": {**draft, "t": [as_text]}}, "track 1's s is not a number"),
                      ({**body, "draft": {**draft, "d": float("nan")}}, "length (d) is not a finite number"),
                      ({**body, "draft": [draft]}, "not a JSON object")):
        refused = http.post("/api/render/proxy/lambda", headers={**auth, "Content-Type": "application/json"},
                            content=json.dumps(bad))  # as any client may send it, NaN too
        assert refused.status_code == 400 and said in refused.json()["message"], (said, refused.text)
    assert http.post("/api/render/proxy/lambda", headers=auth, json=body).json()["code"] == 0
    assert http.post("/api/render/proxy/lambda", headers=auth, json=body).json()["code"] == 0
    assert server.service.render_counts[sid] == 1  # the same id twice is one render

    deadline = 200
    status: dict[str, Any] = {}
    while deadline and status.get("status") != "completed":
        status = http.get("/api/render/proxy/lambda/render_1", headers=auth).json()
        assert status["status"] in ("pending", "processing", "completed")
        threading.Event().wait(0.05)
        deadline -= 1
    assert status["status"] == "completed"
    url = status["output"]["url"]
    assert url.startswith(server.url + "/files/render_1/")
    assert http.get(url).content[4:8] == b"ftyp"
    proxied = http.get("/api/render/proxy/render_1/download", headers=auth)
    assert proxied.status_code == 200 and proxied.content[4:8] == b"ftyp"
    assert http.get("/api/render/proxy/render_1/download").status_code == 401
    assert http.get("/files/render_1/wrongkeywrongkey.mp4").status_code == 404
    other = token(http, "someone-else")
    assert http.get("/api/render/proxy/lambda/render_1", headers=other).status_code == 404


def test_out_of_credits_is_2001(http: httpx.Client, server: NemoServer, clip: Path) -> None:
    auth = token(http)
    sid = session(http, auth)
    upload(http, auth, sid, "talk.mp4", clip.read_bytes())
    sse(http, auth, sid, "export 720p MP4")
    sse(http, auth, sid, "export 480p MP4")
    body = {"app_name": "nemo_agent", "user_id": "me", "session_id": sid,
            "new_message": {"parts": [{"text": "export"}]}}
    third = http.post("/run_sse", headers=auth, json=body).json()
    assert third["code"] == 2001
    assert server.service.instruction_counts[sid] == 2
    assert server.service.received_counts[sid] == 3


def test_admin_needs_its_token_and_controls_faults(http: httpx.Client, server: NemoServer) -> None:
    assert http.get("/admin/stats").status_code == 403
    assert http.get("/admin/stats", headers={"Authorization": "Bearer wrong"}).status_code == 403
    admin = {"Authorization": "Bearer admin-secret"}
    assert http.post("/admin/faults", headers=admin, json={"name": "nonsense"}).status_code == 400
    armed = http.post("/admin/faults", headers=admin,
                      json={"name": "http_5xx", "count": 1, "path": "/api/credits"}).json()
    assert armed["data"]["armed"]["http_5xx"]["count"] == 1
    auth = token(http)
    assert http.get("/api/credits/balance/simple", headers=auth).status_code == 503
    assert http.get("/api/credits/balance/simple", headers=auth).status_code == 200
    http.post("/admin/credits", headers=admin, json={"available": 7})
    assert http.get("/api/credits/balance/simple", headers=auth).json()["data"]["available"] == 7
    stats = http.get("/admin/stats", headers=admin).json()["data"]
    assert set(stats) == {"instructions", "received", "renders", "work"}
    known = http.get("/admin/faults", headers=admin).json()["data"]["known"]
    assert "drop_sse" in known and "slow_heartbeats" in known
    assert http.delete("/admin/faults", headers=admin).json()["data"]["armed"] == {}


def test_unknown_routes_and_methods(http: httpx.Client) -> None:
    auth = token(http)
    assert http.get("/nothing/here", headers=auth).status_code == 404
    assert http.get("/api/state/nemo_agent/me/../../etc/latest", headers=auth).status_code == 404
    assert http.get("/api/tasks/me/with-session/nemo_agent", headers=auth).status_code == 405
    assert json.loads(http.get("/health").content)["data"]["ok"] is True

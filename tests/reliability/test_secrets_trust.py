"""Secrets and trust: the NemoVideo token never leaves its file, nemod serve keeps requests
inside its data folder and within bounds, output names cannot leave their folder.

The token is grepped for in everything the daemon produced — its log (at debug level),
sidecars and job logs, ``.error.txt`` notes, ``nemod status --json``, the job store
(database and WAL, as bytes) and a ``--debug`` traceback — with a distinctive configured
``NEMO_TOKEN`` and with an anonymous token issued by ``nemod serve``. The last test greps
every file every reliability suite wrote in this run for every token their servers issued.

Already proven elsewhere (referenced in docs/reliability.md, not repeated here): requests
without a valid token are refused (tests/integration/test_serve_api.py::
test_requests_need_a_valid_token), upload names cannot leave the session folder
(::test_upload_names_cannot_leave_the_session_folder), upload and JSON sizes are bounded
(::test_upload_size_is_limited_and_partial_files_removed, ::test_oversized_json_is_refused),
sessions are private (::test_sessions_are_private_to_their_account), render_name refuses
'..' and absolute results (tests/integration/test_outputs.py).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from nemod.config import EngineSettings, load
from nemod.engine.local import LocalBackend, LocalEngine
from nemod.errors import PermanentJobError
from nemod.pipeline import run_job
from nemod.serve.server import NemoServer
from nemod.store import DATABASE_NAME, JobState

STATIC_TOKEN = "nmv_usr_RELIABILITY_canary_7f3e9b21c4d5a6e80f1d"  # the conftest's canary


def everything_under(folder: Path, skip: tuple[str, ...] = ("token.json",)) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and p.name not in skip]


def leaks(folder: Path, tokens: set[str]) -> list[str]:
    found = []
    needles = [token.encode() for token in tokens if token]
    for path in everything_under(folder):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        found += [f"{path}: {needle[:12]!r}…" for needle in needles if needle in data]
    return found


def nemod(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEMO_")}
    return subprocess.run([sys.executable, "-m", "nemod", *args], cwd=cwd, env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=60, check=False)


def cloud_run(kit: Any, serve: NemoServer, env: dict[str, str]) -> Path:
    """A daemon process (debug log) doing one good and one failing cloud job, then
    ``nemod status --json`` and a ``--debug`` traceback, each saved under the run folder."""
    root = kit.tmp_path
    config = kit.write_config(root, backend="cloud", api_url=serve.url, settle=0.1,
                              extra="log_level: debug\n")
    daemon = kit.process(config, "child", env)
    process = daemon.start()
    kit.drop(root / "in", "good.mp4")
    done = lambda: [j.state for j in kit.all_jobs(root / "state")] == [JobState.DONE]  # noqa: E731
    kit.wait_until(done, 60, "good.mp4 done", daemon.logs)
    serve.faults.arm("fail_render", 2)
    kit.drop(root / "in", "bad.mp4", data=(root / "in" / "good.mp4").read_bytes() + b"\0" * 10)
    kit.wait_until((root / "in" / "failed" / "bad.error.txt").exists, 60, "bad.mp4 failed",
                   daemon.logs)
    status = nemod("status", "--json", "-c", str(config), cwd=root, env=env)
    (root / "status.json").write_text(status.stdout + status.stderr)
    assert json.loads(status.stdout)
    daemon.kill(process)  # a crash on top, for good measure
    serve.faults.arm("expire_token", 1)
    trace = nemod("--debug", "credits", "-c", str(config), cwd=root, env=env)
    (root / "trace.txt").write_text(trace.stdout + trace.stderr)
    logs = daemon.logs()
    assert "render_" in logs and "cloud_instruction_sent" in logs  # the haystack is real
    assert "failed twice" in (root / "in" / "failed" / "bad.error.txt").read_text()
    return root


def test_configured_token_never_leaks(kit: Any, serve: NemoServer) -> None:
    root = cloud_run(kit, serve, {"NEMO_TOKEN": STATIC_TOKEN})
    assert "Traceback" in (root / "trace.txt").read_text()  # --debug did print a trace
    assert leaks(root, {STATIC_TOKEN}) == []
    assert not (root / "state" / "cloud" / "token.json").exists()  # NEMO_TOKEN is never stored


def test_anonymous_token_never_leaks_and_its_files_are_private(kit: Any, serve: NemoServer) -> None:
    root = cloud_run(kit, serve, {})
    cloud = root / "state" / "cloud"
    assert stat.S_IMODE(cloud.stat().st_mode) == 0o700
    for name in ("token.json", "client_id"):
        assert stat.S_IMODE((cloud / name).stat().st_mode) == 0o600, name
    issued = {token for token in serve.service._tokens if token != STATIC_TOKEN}
    stored = json.loads((cloud / "token.json").read_text())
    assert {entry["token"] for entry in stored.values()} <= issued and issued
    assert leaks(root, issued) == []


# --- nemod serve: paths and bounds ---------------------------------------------------------


@pytest.fixture
def client(serve: NemoServer) -> Any:
    with httpx.Client(base_url=serve.url, timeout=10) as http:
        token = http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "trust"}).json()
        yield http, {"Authorization": f"Bearer {token['data']['token']}"}


def test_serve_ids_cannot_reach_outside_the_data_folder(client: Any, serve: NemoServer, tmp_path: Path) -> None:
    http, auth = client
    canary = tmp_path / "outside.mp4"
    canary.write_bytes(b"CANARY-OUTSIDE-DATA-DIR")
    (serve.settings.data_dir / "admin_token").write_text("CANARY-ADMIN\n")
    sid = http.post("/api/tasks/me/with-session/nemo_agent", headers=auth, json={}).json()["data"]["session_id"]
    answers = []
    for path in ("/api/state/nemo_agent/me/..%2F..%2F..%2Foutside/latest",
                 "/api/state/nemo_agent/me/../../../outside/latest",
                 f"/api/upload-video/nemo_agent/me/{sid}/../../x",
                 "/api/render/proxy/lambda/render_..%2F..%2Foutside",
                 "/api/render/proxy/render_../../../outside.mp4/download",
                 "/files/render_x/..%2F..%2F..%2Foutside.mp4",
                 "/files/render_x/../../admin_token.mp4",
                 "/files/render_..%2F..%2F/aaaaaaaaaaaa.mp4"):
        answer = http.get(path, headers=auth)
        answers.append(answer)
        assert answer.status_code in (400, 404, 405), (path, answer.status_code)
    for body in ({"session_id": "../../outside", "new_message": {"parts": [{"text": "export 720p"}]}},
                 {"session_id": f"{sid}/../../x", "new_message": {"parts": [{"text": "export 720p"}]}}):
        answer = http.post("/run_sse", headers=auth, json=body)
        answers.append(answer)
        assert answer.json()["code"] == 1002
    render = http.post("/api/render/proxy/lambda", headers={**auth, "X-Skill-Source": "t"},
                       json={"id": "render_../../../outside", "sessionId": sid,
                             "draft": {"t": [{"sg": [{"src": "../../outside.mp4"}]}]}})
    answers.append(render)
    assert render.status_code == 400
    draft = http.post("/api/render/proxy/lambda", headers={**auth, "X-Skill-Source": "t"},
                      json={"id": "render_1", "sessionId": sid,
                            "draft": {"t": [{"sg": [{"src": str(canary)}]}]}})
    answers.append(draft)
    assert draft.status_code == 400 and "not in this session" in draft.json()["message"]
    for answer in answers:
        assert b"CANARY" not in answer.content
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("outside")) == ["outside.mp4"]


def test_serve_refuses_an_oversized_upload_before_reading_it(client: Any, serve: NemoServer) -> None:
    """A declared 10 GB body is refused at once (413); nothing is written."""
    http, auth = client
    sid = http.post("/api/tasks/me/with-session/nemo_agent", headers=auth, json={}).json()["data"]["session_id"]
    host, port = serve.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            f"POST /api/upload-video/nemo_agent/me/{sid} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: {auth['Authorization']}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {10 * 1000 ** 3}\r\n\r\n--b\r\n".encode()
        )
        reply = raw.recv(4096).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413"), reply
    assert not list((serve.settings.data_dir / "sessions" / sid / "media").iterdir())


def test_serve_refuses_requests_with_a_wrong_or_missing_token(serve: NemoServer) -> None:
    with httpx.Client(base_url=serve.url, timeout=10) as http:
        for headers in ({}, {"Authorization": "Bearer " + STATIC_TOKEN[:-1]}, {"Authorization": STATIC_TOKEN}):
            for method, path in (("POST", "/api/tasks/me/with-session/nemo_agent"), ("POST", "/run_sse"),
                                 ("POST", "/api/render/proxy/lambda"), ("GET", "/admin/stats")):
                answer = http.request(method, path, headers=headers, json={})
                assert answer.status_code in (401, 403), (headers, path, answer.status_code)


# --- output names --------------------------------------------------------------------------


def test_output_template_cannot_escape_its_folder(kit: Any) -> None:
    """``{stem}`` is '..' only for a file named '...mp4': the daemon ignores it (dot file),
    and the pipeline refuses it with a one-line reason; nothing is written outside the
    output folder. Templates that leave the folder are refused by ``nemod check``."""
    config = kit.write_config(kit.tmp_path, edit="copy", settle=0.1,
                              rule_extra="    output: \"{stem}/{stem}.mp4\"\n")
    daemon = kit.daemon(config, LocalBackend(LocalEngine(EngineSettings(preset="ultrafast"))))
    sneaky = kit.drop(kit.tmp_path / "in", "...mp4")
    kit.drop(kit.tmp_path / "in", "fine.mp4", data=kit.clip.read_bytes() + b"\0")
    daemon.drive(lambda: daemon.settled(1), 60, "fine.mp4 done")
    assert [(j.source.relative, j.state) for j in daemon.jobs()] == [("fine.mp4", JobState.DONE)]
    loaded = load(config)
    with pytest.raises(PermanentJobError, match="would leave the output folder"):
        run_job(loaded, daemon.backend, sneaky, loaded.watches[0].output, job_id="x",
                rule=loaded.rules[0])
    outside = sorted(p.name for p in kit.tmp_path.iterdir())
    assert outside == [".drops", "in", "nemod.yaml", "out", "state"], outside
    assert sorted(str(p.relative_to(kit.tmp_path / "out")) for p in (kit.tmp_path / "out").rglob("*.mp4")) == [
        "fine/fine.mp4"]
    for template in ("../{stem}.mp4", "/tmp/{stem}.mp4", "a/../../{stem}.mp4"):
        bad = kit.write_config(kit.tmp_path / "check", rule_extra=f"    output: \"{template}\"\n")
        checked = nemod("check", "-c", str(bad), cwd=kit.tmp_path)
        assert checked.returncode == 2 and "output" in checked.stderr, (template, checked.stderr)


# --- last: everything the suites wrote -----------------------------------------------------


def test_no_file_written_by_the_suites_contains_a_token(
    kit: Any, serve: NemoServer, tmp_path_factory: pytest.TempPathFactory, secrets_registry: set[str]
) -> None:
    """Every file under this run's temporary root (every suite's logs, outputs, notes,
    stores, status dumps and traces), against every token the suites' servers issued and
    the configured canary; the token files themselves excepted. The test makes its own
    haystack first (a cloud run with an anonymous token), so run alone it still scans a
    daemon's log, job store, outputs, notes, status and a traceback."""
    own = cloud_run(kit, serve, {})
    root = tmp_path_factory.getbasetemp()
    scanned = everything_under(root)
    for made in (own / "state" / DATABASE_NAME, own / "status.json", own / "trace.txt",
                 own / "in" / "failed" / "bad.error.txt", own / "out" / "good.log.json"):
        assert made in scanned, made
    tokens = secrets_registry | set(serve.service._tokens)  # this test's server is not torn down yet
    assert STATIC_TOKEN in tokens and len(tokens) > 1
    assert leaks(root, tokens) == []

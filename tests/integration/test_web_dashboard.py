"""The dashboard over real HTTP on loopback, on an in-process daemon with real SQLite and
real observers (a gated copying backend stands in for the engine, which is not what is
tested here): actions, CSRF, login, headers, downloads, paging, the bind rule."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.backends import GatedBackend
from support.daemon_loop import run_until

from nemod.config import Config, load
from nemod.daemon import Daemon, DaemonOptions
from nemod.daemon.cancels import CANCELLED
from nemod.errors import ConfigError
from nemod.store import JobState, SourceRef
from nemod.store.postgres import PostgresStore
from nemod.store.sqlite import SQLiteStore
from nemod.web import views
from nemod.web.auth import hash_password, verify_password
from nemod.web.data import DashboardData, JobFilter, status_source
from nemod.web.server import DashboardServer

FAST = DaemonOptions(lease_seconds=5.0, heartbeat_seconds=0.1, stop_timeout=2.0, cancel_timeout=5.0,
                     tick_seconds=0.05, retry_base_seconds=0.1, retry_max_seconds=1.0,
                     paused_retry_seconds=0.2)
HOSTILE = "<img src=x onerror=alert(1)>.mp4"




def _config(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "in").mkdir(exist_ok=True)
    path = tmp_path / "nemod.yaml"
    path.write_text(f"state_dir: state\nsettle_seconds: 0.2\nstatus_port: 0\n{extra}\n"
                    "watch:\n  - path: in\n    output: out\n    poll_interval: 0.2\n"
                    "rules:\n  - name: all\n    match: {glob: '*'}\n    edit: copy\n", encoding="utf-8")
    return path


class Site:
    """A daemon, its dashboard on a free loopback port and an HTTP client with a cookie jar."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = SQLiteStore(config.state_dir / "jobs.sqlite3")
        self.backend = GatedBackend()
        self.daemon = Daemon(config, self.store, self.backend, options=FAST)
        self.server = DashboardServer(config, status_source(config), port=0)
        self.server.attach(self.daemon)
        self.server.start()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.server.port}", timeout=10)
        self.inbox = config.watches[0].path

    def drive(self, until: Any, timeout: float = 10.0) -> None:
        run_until(self.daemon, until, timeout=timeout, detail=lambda: f"jobs: {self.store.jobs()}")

    def csrf(self, path: str = "/") -> str:
        page = self.http.get(path)
        found = re.search(r'name=csrf content="([0-9a-f]+)"', page.text)
        assert found, page.text
        return found.group(1)

    def post(self, path: str, **form: str) -> httpx.Response:
        return self.http.post(path, data={"csrf": self.csrf(), **form})

    def job(self, job_id: int) -> Any:
        job = self.store.get(job_id)
        assert job is not None
        return job

    def close(self) -> None:
        self.backend.gate.set()
        self.daemon.stop(2.0)
        self.http.close()
        self.server.close()
        self.store.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    running = Site(load(_config(tmp_path)))
    yield running
    running.close()


def test_every_answer_carries_the_security_headers(site: Site) -> None:
    for path in ("/", "/jobs", "/jobs/999", "/static/app.js", "/nowhere"):
        answer = site.http.get(path)
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in site.http.get("/").text  # the only script is /static/app.js


def test_cancel_a_running_job_fails_it_as_cancelled_and_retry_runs_it_again(site: Site) -> None:
    (site.inbox / HOSTILE).write_bytes(b"clip")
    site.drive(lambda: site.store.counts()[JobState.RUNNING] == 1)
    job_id = site.store.jobs()[0].id
    page = site.http.get(f"/jobs/{job_id}").text
    assert "&lt;img src=x onerror=alert(1)&gt;.mp4" in page and "<img src=x" not in page
    answer = site.post(f"/jobs/{job_id}/cancel")
    assert answer.status_code == 303 and "being+stopped" in answer.headers["Location"]
    site.drive(lambda: site.job(job_id).state is JobState.FAILED)
    assert site.job(job_id).error == CANCELLED
    site.drive((site.inbox / "failed" / HOSTILE).is_file)  # parked like any failure
    site.backend.gate.set()
    assert site.post(f"/jobs/{job_id}/retry").status_code == 303
    assert (site.inbox / HOSTILE).is_file()  # moved back, as `nemod retry` does
    site.drive(lambda: site.job(job_id).state is JobState.DONE)


def test_cancel_a_queued_job_means_it_never_starts(site: Site) -> None:
    (site.inbox / "first.mp4").write_bytes(b"one")
    site.drive(lambda: site.store.counts()[JobState.RUNNING] == 1)
    (site.inbox / "second.mp4").write_bytes(b"two")
    site.drive(lambda: site.store.counts()[JobState.QUEUED] == 1)
    queued = site.store.jobs(JobState.QUEUED)[0]
    answer = site.post(f"/jobs/{queued.id}/cancel")
    assert "will+not+start" in answer.headers["Location"]
    cancelled = site.job(queued.id)  # failed in the store at once, before any worker reaches it
    assert cancelled.state is JobState.FAILED and cancelled.error == CANCELLED
    assert cancelled.error_code == "cancelled"
    assert (site.inbox / "failed" / "second.mp4").is_file()  # parked like any failure
    assert "Someone cancelled this job" in site.http.get(f"/jobs/{queued.id}").text
    site.backend.gate.set()
    site.drive(lambda: site.store.counts()[JobState.DONE] == 1)
    assert site.job(queued.id).state is JobState.FAILED
    assert site.backend.calls == ["first.mp4"]


def test_cancel_a_waiting_job_fails_it_at_once(site: Site) -> None:
    assert site.post("/folders/pause", folder=site.config.watches[0].key).status_code == 303
    (site.inbox / "held.mp4").write_bytes(b"held")
    site.drive(lambda: site.store.counts()[JobState.WAITING] == 1)
    waiting = site.store.jobs(JobState.WAITING)[0]
    answer = site.post(f"/jobs/{waiting.id}/cancel")
    assert answer.status_code == 303 and "will+not+start" in answer.headers["Location"]
    cancelled = site.job(waiting.id)
    assert cancelled.state is JobState.FAILED and cancelled.wait_reason is None
    assert site.post(f"/jobs/{waiting.id}/cancel").status_code == 409  # finished: nothing to cancel


def test_a_paused_folder_queues_but_does_not_start_until_resumed(site: Site) -> None:
    folder = site.config.watches[0].key
    assert site.post("/folders/pause", folder=folder).status_code == 303
    assert "paused" in site.http.get("/").text
    (site.inbox / "held.mp4").write_bytes(b"held")
    site.drive(lambda: site.store.counts()[JobState.WAITING] == 1)
    deadline = time.monotonic() + 0.8  # several re-checks (paused_retry_seconds is 0.2 here)
    while time.monotonic() < deadline:
        site.daemon.run_once()
        site.daemon.wakeup.wait(0.05)
    assert site.backend.calls == []
    assert "waits because its folder is paused" in site.http.get(f"/jobs/{site.store.jobs()[0].id}").text
    site.backend.gate.set()
    assert site.post("/folders/resume", folder=folder).status_code == 303
    site.drive(lambda: site.store.counts()[JobState.DONE] == 1)
    assert site.post("/folders/pause", folder="/not/configured").status_code == 409


def test_nemod_pause_and_resume_use_the_same_record(tmp_path: Path) -> None:
    path = _config(tmp_path)
    nemod = str(Path(sys.executable).parent / "nemod")
    record = tmp_path / "state" / "paused.json"
    paused = subprocess.run([nemod, "pause", "-c", str(path), str(tmp_path / "in")], capture_output=True,
                            text=True, timeout=60, check=True)
    assert "is paused" in paused.stdout
    assert json.loads(record.read_text())["paused"] == [str((tmp_path / "in").resolve())]
    subprocess.run([nemod, "resume", "-c", str(path), str(tmp_path / "in")], timeout=60, check=True,
                   capture_output=True)
    assert json.loads(record.read_text())["paused"] == []
    unknown = subprocess.run([nemod, "pause", "-c", str(path), "nowhere"], capture_output=True, text=True,
                             timeout=60, check=False)
    assert unknown.returncode == 1 and "no watch folder 'nowhere'" in unknown.stderr


def test_forget_and_explain_use_the_cli_code(site: Site) -> None:
    site.backend.gate.set()
    (site.inbox / "talk.mp4").write_bytes(b"talk")
    site.drive(lambda: site.store.counts()[JobState.DONE] == 1)
    job_id = site.store.jobs()[0].id
    answer = site.post(f"/jobs/{job_id}/forget")
    assert answer.status_code == 303 and "processed+again" in answer.headers["Location"]
    assert site.store.get(job_id) is None
    explained = site.post("/explain", name=HOSTILE)
    assert "all: matches" in explained.text
    assert "&lt;img src=x onerror=alert(1)&gt;.mp4" in explained.text and "<img src=x" not in explained.text


def test_posts_without_the_right_csrf_token_change_nothing(site: Site) -> None:
    site.backend.gate.set()
    (site.inbox / "a.mp4").write_bytes(b"a")
    site.drive(lambda: site.store.counts()[JobState.DONE] == 1)
    job_id = site.store.jobs()[0].id
    site.csrf()  # the client now holds a session cookie
    assert site.http.post(f"/jobs/{job_id}/forget").status_code == 403
    assert site.http.post(f"/jobs/{job_id}/forget", data={"csrf": "0" * 64}).status_code == 403
    with httpx.Client(base_url=str(site.http.base_url)) as stranger:  # another browser's token
        assert stranger.post(f"/jobs/{job_id}/forget", data={"csrf": site.csrf()}).status_code == 403
    other_site = {"csrf": site.csrf(), "Origin": "http://evil.example"}
    assert site.http.post(f"/jobs/{job_id}/forget", data={"csrf": other_site["csrf"]},
                          headers={"Origin": other_site["Origin"]}).status_code == 403
    assert site.http.get(f"/jobs/{job_id}/forget").status_code == 404  # GET never acts
    assert site.store.get(job_id) is not None


def test_an_open_dashboard_answers_only_to_loopback_names(site: Site) -> None:
    """DNS rebinding: a page from evil.example whose name now resolves to 127.0.0.1 sends
    ``Host: evil.example``; with no login configured it gets nothing and can do nothing."""
    site.backend.gate.set()
    (site.inbox / "a.mp4").write_bytes(b"a")
    site.drive(lambda: site.store.counts()[JobState.DONE] == 1)
    job_id = site.store.jobs()[0].id
    token = site.csrf()
    for path in ("/", f"/jobs/{job_id}", f"/jobs/{job_id}/files/.mp4", "/api/overview"):
        answer = site.http.get(path, headers={"Host": f"evil.example:{site.server.port}"})
        assert answer.status_code == 421 and answer.text.startswith("refused"), path
    refused = site.http.post(f"/jobs/{job_id}/forget", data={"csrf": token},
                             headers={"Host": f"evil.example:{site.server.port}"})
    assert refused.status_code == 421 and site.store.get(job_id) is not None
    assert site.http.get("/", headers={"Host": f"localhost:{site.server.port}"}).status_code == 200
    with socket.create_connection(("127.0.0.1", site.server.port), timeout=5) as raw:  # httpx won't send it
        raw.sendall(f"POST /jobs/{job_id}/forget HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n".encode())
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    assert site.store.get(job_id) is not None


def test_downloads_serve_only_the_outputs_recorded_for_the_job(site: Site) -> None:
    site.backend.gate.set()
    (site.inbox / "clip.mp4").write_bytes(b"0123456789" * 100)
    site.drive(lambda: site.store.counts()[JobState.DONE] == 1)
    job = site.store.jobs()[0]
    whole = site.http.get(f"/jobs/{job.id}/files/.mp4")
    assert whole.status_code == 200 and whole.content == b"0123456789" * 100
    part = site.http.get(f"/jobs/{job.id}/files/.mp4", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == b"0123456789"
    assert part.headers["Content-Range"] == "bytes 10-19/1000"
    drawn = site.http.get(f"/jobs/{job.id}/picture.svg")  # no picture: svg, so drawn from the log
    assert drawn.status_code == 200 and drawn.headers["Content-Type"] == "image/svg+xml"
    assert drawn.text.lstrip().startswith("<svg") and "<script" not in drawn.text
    assert f"/jobs/{job.id}/picture.svg" in site.http.get(f"/jobs/{job.id}").text
    for path in (f"/jobs/{job.id}/files/.srt", f"/jobs/{job.id}/files/..%2F..%2Fnemod.yaml",
                 f"/jobs/{job.id}/files/../../nemod.yaml", f"/jobs/{job.id + 1}/files/.mp4",
                 "/static/../../config.py"):
        assert site.http.get(path).status_code == 404, path


def test_jobs_list_pages_filters_and_searches(site: Site) -> None:
    for n in range(120):
        rule = "all" if n % 2 else "other"
        site.store.enqueue(f"fp{n}", rule, SourceRef(site.config.watches[0].key, f"clip {n}%.mp4"))
    first = site.http.get("/jobs").text
    assert first.count('<a href="/jobs/') == 50 and "Older jobs" in first
    second_link = re.search(r'href="(/jobs\?[^"]*before=\d+)"', first)
    assert second_link
    second = site.http.get(second_link.group(1).replace("&amp;", "&")).text
    ids = [int(i) for i in re.findall(r"<tr><td>(\d+)</td>", second)]
    assert len(ids) == 50 and max(ids) == 70
    assert site.http.get("/jobs?rule=other").text.count("<tr><td>") == 50
    assert site.http.get("/jobs?q=clip+11%25").text.count("<tr><td>") == 1  # % is a letter, not a wildcard
    assert site.http.get("/jobs?state=done").text.count("<tr><td>") == 0
    assert site.http.get("/jobs?since=2000-01-01").text.count("<tr><td>") == 50
    assert site.http.get("/jobs?since=2999-01-01").text.count("<tr><td>") == 0


def test_nemod_password_prints_a_hash_that_verifies() -> None:
    nemod = str(Path(sys.executable).parent / "nemod")
    done = subprocess.run([nemod, "password"], input="horse battery\n", capture_output=True, text=True,
                          timeout=60, check=True)
    stored = re.search(r'password_hash: "(scrypt\$[^"]+)"', done.stdout)
    assert stored and verify_password("horse battery", stored.group(1))
    assert "horse" not in done.stdout


def test_login_is_required_when_status_auth_is_set(tmp_path: Path) -> None:
    token = tmp_path / "state" / "dashboard.token"
    token.parent.mkdir(parents=True)
    token.write_text("t" * 32)
    token.chmod(0o600)
    config = load(_config(tmp_path, f'status_auth: {{password_hash: "{hash_password("s3cret")}", '
                                     "token_file: dashboard.token}"))
    site = Site(config)
    try:
        assert site.http.get("/").status_code == 303  # to /login
        assert site.http.get("/api/overview").status_code == 401
        csrf = site.csrf("/login")
        assert "failed" in site.http.post("/login", data={"csrf": csrf, "secret": "wrong"}).headers["Location"]
        assert site.http.post("/jobs/1/retry", data={"csrf": csrf}).status_code == 401
        assert site.http.post("/login", data={"csrf": csrf, "secret": "s3cret"}).headers["Location"] == "/"
        assert site.http.get("/").status_code == 200
        assert 'action="/logout"' in site.http.get("/").text
        assert site.http.post("/logout", data={"csrf": site.csrf()}).headers["Location"] == "/login"
        assert site.http.get("/").status_code == 303  # logged out
        site.http.post("/login", data={"csrf": site.csrf("/login"), "secret": "t" * 32})  # the token logs in too
        assert site.http.get("/").status_code == 200
        with httpx.Client(base_url=str(site.http.base_url)) as script:
            assert script.get("/api/overview", headers={"Authorization": "Bearer " + "t" * 32}).status_code == 200
            assert script.get("/api/overview", headers={"Authorization": "Bearer nope"}).status_code == 401
    finally:
        site.close()


def test_a_non_loopback_bind_without_auth_refuses_to_start(tmp_path: Path) -> None:
    path = _config(tmp_path, "status_host: 0.0.0.0")
    with pytest.raises(ConfigError, match=r"status_host: binding the dashboard to 0\.0\.0\.0 needs status_auth"):
        load(path)
    nemod = str(Path(sys.executable).parent / "nemod")
    for command in ("check", "run"):
        done = subprocess.run([nemod, command, "-c", str(path)], capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 2, done
        assert "needs status_auth" in done.stderr
    allowed = _config(tmp_path, f'status_host: 0.0.0.0\nstatus_auth: {{password_hash: "{hash_password("pw")}"}}')
    assert load(allowed).status_auth.configured
    # Even a config that bypassed the check (built by hand) cannot serve it.
    config = load(_config(tmp_path))
    with pytest.raises(ConfigError, match="without status_auth"):
        DashboardServer(replace(config, status_host="0.0.0.0"), status_source(config), port=0)


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "state" / "dashboard.token"
    token.parent.mkdir(parents=True)
    token.write_text("t" * 32)
    token.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load(_config(tmp_path, "status_host: 0.0.0.0\nstatus_auth: {token_file: dashboard.token}"))


def test_jobs_list_pages_a_postgresql_store(tmp_path: Path, pg_url: str) -> None:
    config = load(_config(tmp_path))
    store = PostgresStore(pg_url)
    key = config.watches[0].key
    try:
        for n in range(60):
            store.enqueue(f"fp{n}", "all" if n % 2 else "other", SourceRef(key, f"Clip_{n}.mp4"))
        data = DashboardData(lambda: config, store, status_source(config, lambda: PostgresStore(pg_url, migrate=False)),
                             snapshot_seconds=0.0)
        first = data.page_jobs(JobFilter())
        assert len(first.jobs) == 50 and first.next_before is not None
        rest = data.page_jobs(JobFilter(before=first.next_before))
        ids = [int(line.id) for line in first.jobs + rest.jobs]
        assert rest.next_before is None and ids == sorted(ids, reverse=True) and len(set(ids)) == 60
        assert [line.source for line in data.page_jobs(JobFilter(search="clip_5")).jobs] == [
            "Clip_59.mp4", "Clip_58.mp4", "Clip_57.mp4", "Clip_56.mp4", "Clip_55.mp4", "Clip_54.mp4",
            "Clip_53.mp4", "Clip_52.mp4", "Clip_51.mp4", "Clip_50.mp4", "Clip_5.mp4"]
        other = data.page_jobs(JobFilter(rule="other", state="queued", folder=key), size=10)
        assert len(other.jobs) == 10 and {line.rule for line in other.jobs} == {"other"}
        assert data.page_jobs(JobFilter(state="done")).jobs == ()
    finally:
        store.close()


def test_overview_lists_processing_windows_and_when_they_open(tmp_path: Path) -> None:
    path = _config(tmp_path)
    path.write_text(path.read_text().replace("    poll_interval: 0.2\n",
                                             "    poll_interval: 0.2\n    schedule: mon-fri 22:00-06:00\n"))
    config = load(path)
    wednesday_noon = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC).timestamp()
    store = SQLiteStore(config.state_dir / "jobs.sqlite3")
    try:
        data = DashboardData(lambda: config, store, status_source(config), clock=lambda: wednesday_noon,
                             zone=dt.UTC)
        (window,) = data.overview().windows
        assert window.text == "mon-fri 22:00-06:00" and not window.open_now
        assert window.next_open == dt.datetime(2026, 12, 2, 22, 0, tzinfo=dt.UTC).timestamp()
        page = views.overview(data.overview(), "tok")
        assert "mon-fri 22:00-06:00" in page and "2026-12-02 22:00:00 UTC" in page and "shut" in page
    finally:
        store.close()

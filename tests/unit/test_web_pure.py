"""The dashboard's pure parts: pages escape everything, errors read as one sentence,
passwords and CSRF tokens check out."""

from __future__ import annotations

from pathlib import Path

from nemod.config import AuthSettings, is_loopback
from nemod.service.beacon import DaemonState
from nemod.service.status import FolderCounts, JobLine, StatusSnapshot
from nemod.store.base import Job, JobState, SourceRef
from nemod.web import views
from nemod.web.advice import advise
from nemod.web.auth import Gate, hash_password, verify_password
from nemod.web.data import DashboardData, JobDetail, JobFilter, JobPage, OutputFile, Overview

HOSTILE = "<img src=x onerror=alert(1)>.mp4"
SHOWN = "&lt;img src=x onerror=alert(1)&gt;.mp4"


def _daemon() -> DaemonState:
    return DaemonState(up=True, detail="running <b>", status=None)


def _line(**changes: object) -> JobLine:
    fields: dict[str, object] = {"id": "7", "source": HOSTILE, "rule": "<rule>", "state": "running",
                                 "folder": "<folder>", "step": "render", "progress": 0.42,
                                 "reason": "<script>alert(2)</script>"}
    fields.update(changes)
    return JobLine(**fields)  # type: ignore[arg-type]


def test_overview_escapes_names_rules_folders_and_reasons() -> None:
    snapshot = StatusSnapshot(
        taken_at=0.0, daemon=_daemon(), counts={"running": 1},
        folders=(FolderCounts("<folder>", {"running": 1}),),
        running=(_line(),), queue=(_line(state="queued"),), failures=(_line(state="failed"),),
    )
    page = views.overview(Overview(snapshot, paused=frozenset({"<folder>"})), "tok", message="<i>hi</i>")
    assert HOSTILE not in page and SHOWN in page
    assert "<script>alert" not in page and "running &lt;b&gt;" in page
    assert "&lt;i&gt;hi&lt;/i&gt;" in page
    assert "<script" not in page.replace('<script src="/static/app.js" defer></script>', "")
    assert 'value="42"' in page and "42%" in page
    assert "Resume" in page  # the folder is paused


def test_overview_names_this_host_and_the_hosts_running_jobs() -> None:
    snapshot = StatusSnapshot(
        taken_at=0.0, daemon=_daemon(), counts={"running": 2}, folders=(),
        running=(_line(host="rig-1"), _line(id="8", host="<worker>")), queue=(), failures=(),
        host_id="rig-1", store_name="postgresql://nemod:***@nas/nemod",
    )
    page = views.overview(Overview(snapshot), "tok")
    assert "This page: host rig-1 (store postgresql://nemod:***@nas/nemod)" in page
    assert "jobs running on &lt;worker&gt;, rig-1" in page and "<worker>" not in page
    assert [line["host"] for line in views.overview_json(Overview(snapshot))["running"]] == ["rig-1", "<worker>"]


def test_jobs_list_and_job_page_escape_and_offer_the_right_actions() -> None:
    listing = views.jobs_list(JobPage((_line(state="failed"),), 7), JobFilter(search='"><x>'), ["<folder>"],
                              ["<rule>"], "tok")
    assert SHOWN in listing and '"><x>' not in listing and "before=7" in listing
    job = Job(id=7, fingerprint="f", rule="<rule>", source=SourceRef("<folder>", HOSTILE),
              state=JobState.FAILED, attempts=2,
              error="[Errno 1094995529] Invalid data found when processing input")
    detail = JobDetail(job, HOSTILE, (OutputFile(".mp4", Path("/out/x.mp4"), 1_500_000, 12.5),), None,
                       "export <b>720p</b>", "local")
    page = views.job_page(detail, "tok")
    assert SHOWN in page and "export &lt;b&gt;720p&lt;/b&gt;" in page and "<img src=x" not in page
    assert "could not be read as video" in page and "/jobs/7/retry" in page and "/jobs/7/cancel" not in page
    assert "/jobs/7/files/.mp4" in page and "<video" in page and "1.5 MB" in page and "12.50 s" in page
    running = views.job_page(JobDetail(Job(id=8, fingerprint="f", rule="r", source=SourceRef("a", "b"),
                                           state=JobState.RUNNING), "b", (), None, None, None), "tok")
    assert "/jobs/8/cancel" in running and "/jobs/8/retry" not in running and "/jobs/8/forget" not in running


def test_errors_read_as_a_sentence_with_what_to_do() -> None:
    raw = "talk.mp4 is not a readable video ([Errno 1094995529] Invalid data found when processing input)."
    advice = advise(raw)
    assert advice is not None
    assert "Errno" not in advice.sentence and "retry" in advice.action and advice.detail == raw
    assert advise("paused") is not None and "paused" in advise("paused").sentence  # type: ignore[union-attr]
    other = advise("something odd happened\nsecond line")
    assert other is not None and other.sentence == "The job failed: something odd happened."
    assert advise(None) is None and advise("  ") is None


def test_password_hashes_verify_only_the_right_password() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert not verify_password("x", "scrypt$broken")
    assert hash_password("a") != hash_password("a")  # salted


def test_csrf_tokens_belong_to_one_session_and_one_server() -> None:
    gate = Gate(AuthSettings(password_hash=hash_password("pw")))
    assert gate.required and not gate.allowed("made-up")
    assert gate.login("nope") is None
    session = gate.login("pw")
    assert session is not None and gate.allowed(session)
    token = gate.csrf(session)
    assert gate.csrf_ok(session, token)
    assert not gate.csrf_ok("other", token) and not gate.csrf_ok(session, None)
    assert not Gate(None).csrf_ok(session, token)  # another server's secret
    gate.logout(session)
    assert not gate.allowed(session)
    assert Gate(None).allowed(None)  # no auth configured (loopback only)


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "::", "example.com"))


def test_downloads_come_only_from_this_hosts_output_folders(tmp_path: Path) -> None:
    """With a shared store another host (or anyone who can write to the database) records
    the output paths: a path outside this host's output folders is never served."""
    from typing import Any, cast

    from nemod.config import load

    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "nemod.yaml").write_text("watch:\n  - path: in\n    output: out\nrules:\n"
                                         "  - name: all\n    edit: export 1080p MP4\n")
    config = load(tmp_path / "nemod.yaml")
    inside, outside = tmp_path / "out" / "talk.mp4", tmp_path / "secret.txt"
    inside.write_bytes(b"video")
    outside.write_text("secret")
    job = Job(id=1, fingerprint="f", rule="all", source=SourceRef("in", "talk.mp4"), state=JobState.DONE,
              outputs={".mp4": str(inside), ".srt": str(outside), ".vtt": str(tmp_path / "out" / ".." / "secret.txt")})

    class OneJob:
        def get(self, job_id: int) -> Job | None:
            return job if job_id == 1 else None

    data = DashboardData(lambda: config, cast(Any, OneJob()), cast(Any, None))
    assert data.output(1, ".mp4") == inside.resolve()
    assert data.output(1, ".srt") is None and data.output(1, ".vtt") is None and data.output(2, ".mp4") is None


def test_the_player_labels_captions_with_the_language_they_are_written_in() -> None:
    job = Job(id=3, fingerprint="f", rule="r", source=SourceRef("a", "talk.mp4"), state=JobState.DONE)
    log = {"draft": {"t": [{"tt": 0, "sg": []}, {"tt": 7, "sg": [], "m": {"kind": "captions", "language": "zh-Hant"}}]}}
    files = (OutputFile(".mp4", Path("/out/talk.mp4"), 10, 1.0), OutputFile(".vtt", Path("/out/talk.vtt"), 10, None))
    page = views.job_page(JobDetail(job, "talk.mp4", files, log, None, "local"), "tok")
    assert 'srclang="zh-Hant"' in page
    assert 'srclang="en"' in views.job_page(JobDetail(job, "talk.mp4", files, None, None, "local"), "tok")

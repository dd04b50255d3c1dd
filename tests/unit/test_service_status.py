"""The status snapshot: beacon judgement, text/JSON rendering, Prometheus text, HTML."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from nemod.errors import BackendError, RetryableJobError, code_from_text, error_code_for
from nemod.service import metrics
from nemod.service.beacon import DaemonBeacon, DaemonState, daemon_state, read_beacon
from nemod.service.http import health_checks, render_html
from nemod.service.status import (
    FolderCounts,
    JobLine,
    StatusSnapshot,
    Totals,
    one_line,
    render_text,
    to_json,
)

NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC


def up_daemon(**extra: object) -> DaemonState:
    fields: dict[str, object] = {
        "pid": 42,
        "host": "nas",
        "version": "0.1.0",
        "started_at": NOW - 3600,
        "heartbeat_at": NOW - 2,
        "status": "1 running; 2 queued",
        "health": {"watchers": True},
        "credits": None,
    }
    fields.update(extra)
    return DaemonState(True, "running (pid 42, heartbeat 2s ago)", **fields)  # type: ignore[arg-type]


def sample_snapshot(**extra: object) -> StatusSnapshot:
    fields: dict[str, object] = {
        "taken_at": NOW,
        "daemon": up_daemon(credits={"balance": 12, "minimum": 50, "checked_at": NOW - 60}),
        "counts": {"queued": 2, "waiting": 1, "running": 1, "done": 5, "failed": 1},
        "folders": (
            FolderCounts("/srv/in", {"queued": 2, "running": 1, "done": 5}),
            FolderCounts('/srv/odd "name"', {"failed": 1, "waiting": 1}),
        ),
        "running": (
            JobLine(
                "7",
                "talk.mov",
                "talks",
                "running",
                folder="/srv/in",
                step="render",
                progress=0.45,
                attempts=1,
            ),
        ),
        "queue": (
            JobLine("8", "b.mov", "talks", "queued", not_before=NOW - 10),
            JobLine(
                "9",
                "c.mov",
                "talks",
                "waiting",
                not_before=NOW + 3600,
                reason="outside processing window",
            ),
        ),
        "failures": (
            JobLine(
                "3",
                "bad.mov",
                "talks",
                "failed",
                finished_at=NOW - 300,
                reason="NemoVideo error code 2001: out of credits",
            ),
        ),
        "totals": Totals(
            finished={"done": (5, 500.0), "failed": (1, 12.5)},
            bytes_done=123456,
            errors_by_code={"2001": 1},
        ),
    }
    fields.update(extra)
    return StatusSnapshot(**fields)  # type: ignore[arg-type]


# --- the beacon ---------------------------------------------------------------------------


def test_beacon_written_atomically_and_paced(tmp_path: Path) -> None:
    path = tmp_path / "state" / "daemon.json"
    beacon = DaemonBeacon(path, started_at=NOW, every=10.0, pid=42, host="nas", status_port=8686)
    beacon.update(status="idle; 0 queued", health={"watchers": True, "store": True})
    assert beacon.beat(NOW)
    assert not beacon.beat(NOW + 5)
    assert beacon.beat(NOW + 10)
    data = read_beacon(path)
    assert data is not None
    assert data["pid"] == 42
    assert data["heartbeat_at"] == NOW + 10
    assert data["status"] == "idle; 0 queued"
    assert data["status_port"] == 8686
    assert [p.name for p in path.parent.iterdir()] == ["daemon.json"]  # no temp files left
    assert beacon.stopped(NOW + 11)
    assert read_beacon(path)["stopped_at"] == NOW + 11  # type: ignore[index]


def test_beacon_unwritable_folder_is_not_fatal(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    beacon = DaemonBeacon(blocker / "daemon.json", started_at=NOW)
    assert beacon.beat(NOW) is False


def test_read_beacon_tolerates_garbage(tmp_path: Path) -> None:
    assert read_beacon(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert read_beacon(tmp_path / "bad.json") is None
    (tmp_path / "list.json").write_text("[1]")
    assert read_beacon(tmp_path / "list.json") is None


def test_daemon_state_judgements() -> None:
    beacon = {"pid": 42, "host": "nas", "heartbeat_at": NOW - 5, "heartbeat_every": 10.0}
    alive = lambda pid: True  # noqa: E731
    dead = lambda pid: False  # noqa: E731
    assert daemon_state(None, NOW).up is False
    state = daemon_state(beacon, NOW, host="nas", alive=alive)
    assert state.up
    assert "pid 42" in state.detail
    gone = daemon_state(beacon, NOW, host="nas", alive=dead)
    assert not gone.up
    assert "gone" in gone.detail
    # Another host: the pid cannot be checked; only the heartbeat counts.
    assert daemon_state(beacon, NOW, host="laptop", alive=dead).up
    stale = daemon_state({**beacon, "heartbeat_at": NOW - 31}, NOW, host="nas", alive=alive)
    assert not stale.up
    assert "not responding" in stale.detail
    stopped = daemon_state({**beacon, "stopped_at": NOW - 60}, NOW, host="nas", alive=alive)
    assert not stopped.up
    assert stopped.detail.startswith("stopped")


# --- rendering ----------------------------------------------------------------------------


def test_error_codes_and_one_line() -> None:
    assert code_from_text("NemoVideo error code 2001: out of credits") == "2001"
    assert code_from_text("upload refused: HTTP 503") == "http_503"
    assert code_from_text("the file is not a video") == "other"
    assert code_from_text(None) == "other"
    wrapped = RetryableJobError("the render could not start")
    wrapped.__cause__ = BackendError("refused", code=4002)
    assert error_code_for(wrapped) == "4002"  # from the cause, not the text
    assert error_code_for(BackendError("bad gateway", status=502)) == "http_502"
    assert one_line("first\nsecond") == "first"
    assert one_line("x" * 200, width=10) == "x" * 9 + "…"
    assert one_line("") is None


def test_text_shows_everything_a_person_asks_about() -> None:
    text = render_text(sample_snapshot(), zone=dt.UTC)
    assert "daemon:   running (pid 42" in text
    assert "status:   1 running; 2 queued" in text
    assert "credits:  12 (below minimum)" in text
    assert "jobs:     2 queued, 1 waiting, 1 running, 5 done, 1 failed" in text
    assert re.search(r"/srv/in\s+2\s+0\s+1\s+5\s+0", text)
    assert re.search(r"7\s+talk\.mov\s+talks\s+render 45%\s+1", text)
    assert re.search(r"8\s+b\.mov\s+talks\s+queued\s+now", text)
    assert re.search(r"9\s+c\.mov\s+talks\s+waiting\s+Fri 09:00\s+outside processing window", text)
    assert "NemoVideo error code 2001: out of credits" in text


def test_text_for_an_empty_stopped_system() -> None:
    snapshot = StatusSnapshot(
        taken_at=NOW,
        daemon=DaemonState(False, "not running (no daemon has used this state folder)"),
        store_ok=False,
        store_error="no job store yet at /x/jobs.sqlite",
    )
    text = render_text(snapshot)
    assert "daemon:   not running" in text
    assert "store:    no job store yet" in text
    assert "running:  nothing" in text
    assert "queue:    empty" in text
    assert "recent failures: none" in text


def test_queue_list_is_capped() -> None:
    queue = tuple(JobLine(str(i), f"{i}.mov", "r", "queued") for i in range(15))
    text = render_text(sample_snapshot(queue=queue), limit=10)
    assert "… and 5 more" in text


def test_json_document() -> None:
    data = to_json(sample_snapshot())
    json.dumps(data)  # serialisable
    assert data["daemon"]["up"] is True
    assert data["daemon"]["heartbeat_at"] == "2027-01-15T07:59:58Z"
    assert data["counts"] == {"queued": 2, "waiting": 1, "running": 1, "done": 5, "failed": 1}
    assert data["folders"][0] == {
        "folder": "/srv/in",
        "counts": {"queued": 2, "waiting": 0, "running": 1, "done": 5, "failed": 0},
    }
    assert data["running"][0]["step"] == "render"
    assert data["running"][0]["progress"] == 0.45
    assert data["queue"][1]["not_before"] == "2027-01-15T09:00:00Z"
    assert data["recent_failures"][0]["reason"].startswith("NemoVideo error code 2001")
    assert data["credits"]["balance"] == 12
    assert data["store"] == {"ok": True, "error": None, "name": None}


_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r'(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*)\})?'
    r" (?P<value>-?(?:[0-9.]+(?:e[+-]?[0-9]+)?|NaN|[+-]Inf))$"
)


def parse_prometheus(text: str) -> dict[str, list[tuple[str, float]]]:
    """A strict reader of the text format: every sample belongs to a declared family."""
    assert text.endswith("\n")
    families: dict[str, str] = {}
    samples: dict[str, list[tuple[str, float]]] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter", "summary", "histogram", "untyped")
            assert name not in families, f"family {name} declared twice"
            families[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, f"bad sample line: {line!r}"
        name = match["name"]
        family = re.sub(r"_(sum|count|bucket)$", "", name) if name not in families else name
        assert family in families, f"sample {name} has no TYPE"
        samples.setdefault(name, []).append((match["labels"] or "", float(match["value"])))
    return samples


def test_metrics_are_valid_prometheus_text() -> None:
    samples = parse_prometheus(metrics.render(sample_snapshot()))
    assert samples["nemod_up"] == [("", 1.0)]
    assert ('state="queued"', 2.0) in samples["nemod_jobs"]
    assert ('folder="/srv/odd \\"name\\"",state="failed"', 1.0) in samples["nemod_folder_jobs"]
    assert samples["nemod_job_progress"] == [('job="7",step="render"', 0.45)]
    assert ('outcome="done"', 500.0) in samples["nemod_job_turnaround_seconds_sum"]
    assert ('outcome="done"', 5.0) in samples["nemod_job_turnaround_seconds_count"]
    assert samples["nemod_source_bytes_done"] == [("", 123456.0)]
    assert samples["nemod_job_errors"] == [('code="2001"', 1.0)]
    assert samples["nemod_credits"] == [("", 12.0)]
    assert ('check="watchers"', 1.0) in samples["nemod_healthy"]
    assert ('check="store"', 1.0) in samples["nemod_healthy"]


def test_metrics_for_a_down_daemon_without_store() -> None:
    snapshot = StatusSnapshot(
        taken_at=NOW, daemon=DaemonState(False, "not running"), store_ok=False
    )
    samples = parse_prometheus(metrics.render(snapshot))
    assert samples["nemod_up"] == [("", 0.0)]
    assert samples["nemod_healthy"] == [('check="store"', 0.0)]
    assert "nemod_credits" not in samples


def test_label_escaping() -> None:
    assert metrics.escape_label('a\\b"c\nd') == 'a\\\\b\\"c\\nd'


def test_health_checks_combine_store_and_live_checks() -> None:
    snapshot = sample_snapshot()
    assert health_checks(snapshot, {"watchers": False}) == {"store": True, "watchers": False}
    assert health_checks(snapshot, None) == {"store": True, "watchers": True}
    broken = sample_snapshot(store_ok=False)
    assert health_checks(broken, {"watchers": True}) == {"store": False, "watchers": True}


def test_html_page_escapes_everything() -> None:
    evil = JobLine("1", "<script>alert(1)</script>.mov", "r", "failed", reason="<b>x</b>")
    page = render_html(sample_snapshot(failures=(evil,)))
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.mov" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "talk.mov" in page
    assert page.startswith("<!doctype html>")


def test_the_host_running_each_job_is_shown() -> None:
    from dataclasses import replace

    snapshot = sample_snapshot()
    snapshot = replace(snapshot, host_id="rig-1", store_name="postgresql://nemod:***@db/nemod",
                       running=tuple(replace(job, host="rig-2") for job in snapshot.running))
    text = render_text(snapshot, zone=dt.UTC)
    assert "host:     rig-1  (store postgresql://nemod:***@db/nemod)" in text
    assert next(line for line in text.splitlines() if "render" in line).endswith("rig-2")
    page = render_html(snapshot)
    assert "<b>Host:</b> rig-1" in page and "<td>rig-2</td>" in page
    assert to_json(snapshot)["running"][0]["host"] == "rig-2"

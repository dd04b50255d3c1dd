"""``nemod jobs``, ``nemod retry``, ``nemod forget`` against a real job store, and the
publish step's idempotence (a resumed job is never published twice)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.backends import CopyBackend

from nemod.backends.base import JobContext, MemoryLedger, SideEffect
from nemod.cli import main
from nemod.config import load
from nemod.pipeline import PUBLISHED, run_job
from nemod.store import JobState, SourceRef, fingerprint, open_store


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    (tmp_path / "in").mkdir()
    path = tmp_path / "nemod.yaml"
    path.write_text("state_dir: state\nwatch:\n  - path: in\n    output: out\nrules:\n  - name: all\n")
    return path


def seed(config_path: Path) -> tuple[int, int, Path]:
    config = load(config_path)
    root = str(config.watches[0].path)
    source = Path(root) / "a.mp4"
    source.write_bytes(b"a" * 100)
    store = open_store(config.state_dir)
    try:
        done = store.enqueue(fingerprint(source), "all", SourceRef(root, "a.mp4"))
        failed = store.enqueue("other", "all", SourceRef(root, "b.mp4"))
        assert done and failed
        first = store.claim("w", lease_seconds=60)
        second = store.claim("w", lease_seconds=60)
        assert first and second
        store.complete(first.id, first.lease_token, {".mp4": "/out/a.mp4"})
        store.fail(second.id, second.lease_token, "b.mp4 is corrupt.")
    finally:
        store.close()
    return done.id, failed.id, source


def test_jobs_lists_and_filters(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "-c", str(config_path)]) == 0
    assert capsys.readouterr().out.strip() == "no jobs"
    _, failed_id, _ = seed(config_path)
    assert main(["jobs", "-c", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "a.mp4" in out and "b.mp4 is corrupt." in out
    assert main(["jobs", "-c", str(config_path), "--state", "failed", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in rows] == [failed_id] and rows[0]["state"] == "failed"


def test_retry_one_or_all(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done_id, failed_id, _ = seed(config_path)
    assert main(["retry", "-c", str(config_path), str(done_id)]) == 1
    assert "only failed jobs" in capsys.readouterr().err
    config = load(config_path)
    parked = config.watches[0].failed / "b.mp4"
    parked.parent.mkdir(parents=True)
    parked.write_bytes(b"b")
    parked.with_name("b.error.txt").write_text("b.mp4 is corrupt.\n")
    assert main(["retry", "-c", str(config_path), f"job-{failed_id}"]) == 0
    assert (config.watches[0].path / "b.mp4").read_bytes() == b"b"  # moved back
    assert not parked.exists() and not parked.with_name("b.error.txt").exists()
    assert main(["retry", "-c", str(config_path), "--failed"]) == 0
    assert "queued 0 failed jobs" in capsys.readouterr().out.splitlines()[-1]
    store = open_store(load(config_path).state_dir)
    try:
        job = store.get(failed_id)
        assert job is not None and job.state is JobState.QUEUED
    finally:
        store.close()


def test_forget_makes_a_file_new_again(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done_id, _, source = seed(config_path)
    assert main(["forget", "-c", str(config_path), str(source)]) == 0
    assert "forgot 1 job" in capsys.readouterr().out
    assert main(["forget", "-c", str(config_path), str(source)]) == 1
    store = open_store(load(config_path).state_dir)
    try:
        assert store.get(done_id) is None
    finally:
        store.close()


def test_run_with_a_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("watch: 3\n")
    assert main(["run", "-c", str(bad)]) == 2




def test_a_finished_publication_is_not_redone(config_path: Path, tmp_path: Path) -> None:
    config = load(config_path)
    source = tmp_path / "in" / "x.mp4"
    source.write_bytes(b"x")
    ledger, backend = MemoryLedger(), CopyBackend(captions=True)
    rule = config.rule("all")
    first = run_job(config, backend, source, tmp_path / "out", job_id="job-7", rule=rule,
                    context=JobContext(ledger=ledger))
    entry = ledger.get(PUBLISHED)
    assert entry is not None and entry.remote_id is not None
    again = run_job(config, backend, source, tmp_path / "out", job_id="job-7", rule=rule,
                    context=JobContext(ledger=ledger))
    assert again.outputs == first.outputs and backend.total == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.log.json", "x.mp4", "x.srt"]


def test_a_publication_cut_short_is_found_by_its_log(config_path: Path, tmp_path: Path) -> None:
    config = load(config_path)
    source = tmp_path / "in" / "y.mp4"
    source.write_bytes(b"y")
    rule = config.rule("all")
    ledger, backend = MemoryLedger(), CopyBackend(captions=True)
    run_job(config, backend, source, tmp_path / "out", job_id="job-8", rule=rule,
            context=JobContext(ledger=ledger))
    ledger.record(PUBLISHED)  # as if the crash came before the remote id was written …
    assert ledger.get(PUBLISHED) == SideEffect(PUBLISHED, None)
    again = run_job(config, backend, source, tmp_path / "out", job_id="job-8", rule=rule,
                    context=JobContext(ledger=ledger))
    assert backend.total == 1 and again.outputs[".mp4"] == tmp_path / "out" / "y.mp4"
    # … and a half publication (no MP4 yet) is removed and redone under the same name
    (tmp_path / "out" / "y.mp4").unlink()
    third = run_job(config, backend, source, tmp_path / "out", job_id="job-8", rule=rule,
                    context=JobContext(ledger=ledger))
    assert backend.total == 2 and third.outputs[".mp4"] == tmp_path / "out" / "y.mp4"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["y.log.json", "y.mp4", "y.srt"]

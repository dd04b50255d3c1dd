"""The job-store contract, run against every implementation: SQLite, and PostgreSQL on a
real cluster made by ``initdb`` for the session (see ``tests/pgcluster.py``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.clocks import ManualClock

from nemod.errors import LeaseLostError
from nemod.store import JobState, SourceRef, StoreLedger
from nemod.store.base import CANCELLED_CODE, Job, JobStore, SideEffect
from nemod.store.postgres import PostgresStore
from nemod.store.sqlite import SQLiteStore

StoreFactory = Callable[[ManualClock | None], JobStore]


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    stores: list[JobStore] = []
    database: list[str] = []

    def factory(clock: ManualClock | None = None) -> JobStore:
        if request.param == "sqlite":
            store: JobStore = SQLiteStore(tmp_path / "jobs.sqlite3", clock=clock)
        else:
            if not database:  # every store of one test shares one fresh database
                database.append(request.getfixturevalue("pg_url"))
            store = PostgresStore(database[0], clock=clock)
        stores.append(store)
        return store

    yield factory
    for store in stores:
        store.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(make_store: StoreFactory, clock: ManualClock) -> JobStore:
    return make_store(clock)


SRC = SourceRef("/watch", "a.mp4")


def test_enqueue_once_per_fingerprint_and_rule(store: JobStore) -> None:
    job = store.enqueue("fp1", "cut", SRC, size=10, mtime=5.0)
    assert job is not None and job.state is JobState.QUEUED
    assert store.enqueue("fp1", "cut", SourceRef("/watch", "renamed.mp4")) is None
    assert store.enqueue("fp1", "other-rule", SRC) is not None
    assert store.enqueue("fp2", "cut", SRC) is not None
    assert store.counts()[JobState.QUEUED] == 3


def test_known_by_path_size_and_mtime(store: JobStore) -> None:
    store.enqueue("fp1", "cut", SRC, size=10, mtime=5.0)
    assert store.known(SRC, 10, 5.0)
    assert not store.known(SRC, 11, 5.0)
    assert not store.known(SourceRef("/watch", "b.mp4"), 10, 5.0)


def test_claim_is_fifo_and_exclusive(store: JobStore, clock: ManualClock) -> None:
    first = store.enqueue("fp1", "cut", SRC)
    clock.advance(1)
    second = store.enqueue("fp2", "cut", SourceRef("/watch", "b.mp4"))
    assert first and second
    claimed = store.claim("w1", lease_seconds=30)
    assert claimed is not None and claimed.id == first.id
    assert claimed.state is JobState.RUNNING and claimed.attempts == 1
    assert claimed.lease_owner == "w1" and claimed.lease_token > first.lease_token
    other = store.claim("w2", lease_seconds=30)
    assert other is not None and other.id == second.id
    assert store.claim("w3", lease_seconds=30) is None


def test_concurrent_claims_never_share_a_job(make_store: StoreFactory) -> None:
    setup = make_store(None)
    for index in range(60):
        setup.enqueue(f"fp{index}", "cut", SourceRef("/w", f"{index}.mp4"))
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        store = make_store(None)
        while (job := store.claim(name, lease_seconds=60)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 60


def test_expired_lease_is_claimable_and_fences_the_old_owner(
    store: JobStore, clock: ManualClock
) -> None:
    store.enqueue("fp1", "cut", SRC)
    old = store.claim("w1", lease_seconds=30)
    assert old is not None
    clock.advance(10)
    assert store.claim("w2", lease_seconds=30) is None  # lease still valid
    assert store.heartbeat(old.id, old.lease_token, lease_seconds=30, step="render")
    clock.advance(29)
    assert store.claim("w2", lease_seconds=30) is None  # renewed by the heartbeat
    clock.advance(2)
    new = store.claim("w2", lease_seconds=30)
    assert new is not None and new.id == old.id and new.lease_token > old.lease_token
    assert new.attempts == 2 and new.step == "render"
    # the old owner is fenced out of every write
    assert not store.heartbeat(old.id, old.lease_token, lease_seconds=30)
    assert not store.complete(old.id, old.lease_token, {".mp4": "/out/a.mp4"})
    assert not store.fail(old.id, old.lease_token, "boom")
    assert not store.release(old.id, old.lease_token)
    assert store.complete(new.id, new.lease_token, {".mp4": "/out/a.mp4"})
    done = store.get(new.id)
    assert done is not None and done.state is JobState.DONE
    assert done.outputs == {".mp4": "/out/a.mp4"}


def test_fail_with_retry_requeues_after_the_delay(store: JobStore, clock: ManualClock) -> None:
    store.enqueue("fp1", "cut", SRC)
    job = store.claim("w", lease_seconds=30)
    assert job is not None
    assert store.fail(job.id, job.lease_token, "ffmpeg crashed", retry_after=60)
    again = store.get(job.id)
    assert again is not None and again.state is JobState.QUEUED and again.error == "ffmpeg crashed"
    assert store.claim("w", lease_seconds=30) is None
    clock.advance(61)
    retried = store.claim("w", lease_seconds=30)
    assert retried is not None and retried.attempts == 2


def test_permanent_failure_and_retry_command(store: JobStore) -> None:
    store.enqueue("fp1", "cut", SRC)
    job = store.claim("w", lease_seconds=30)
    assert job is not None
    assert store.fail(job.id, job.lease_token, "corrupt file.")
    failed = store.jobs(JobState.FAILED)
    assert [j.id for j in failed] == [job.id] and failed[0].error == "corrupt file."
    assert store.claim("w", lease_seconds=30) is None
    assert store.retry(job.id) == 1
    queued = store.get(job.id)
    assert queued is not None and queued.state is JobState.QUEUED and queued.attempts == 0
    assert store.retry(None) == 0


def test_waiting_does_not_count_an_attempt(store: JobStore, clock: ManualClock) -> None:
    store.enqueue("fp1", "cut", SRC)
    job = store.claim("w", lease_seconds=30)
    assert job is not None
    assert store.wait(job.id, job.lease_token, "credits", 600)
    waiting = store.get(job.id)
    assert waiting is not None and waiting.state is JobState.WAITING and waiting.attempts == 0
    assert store.claim("w", lease_seconds=30) is None
    clock.advance(601)
    resumed = store.claim("w", lease_seconds=30)
    assert resumed is not None and resumed.attempts == 1


def test_release_and_expire_lease(store: JobStore) -> None:
    store.enqueue("fp1", "cut", SRC)
    job = store.claim("w", lease_seconds=300)
    assert job is not None
    assert store.release(job.id, job.lease_token)
    again = store.claim("w", lease_seconds=300)
    assert again is not None and again.attempts == 1
    assert store.claim("w2", lease_seconds=300) is None
    assert store.expire_lease(again.id, again.lease_token)
    taken = store.claim("w2", lease_seconds=300)
    assert taken is not None and taken.lease_owner == "w2"


def test_side_effect_ledger_survives_reclaims(store: JobStore, clock: ManualClock) -> None:
    store.enqueue("fp1", "cut", SRC)
    job = store.claim("w", lease_seconds=30)
    assert job is not None
    assert store.side_effect(job, "render") is None
    store.record_side_effect(job, "render")
    entry = store.side_effect(job, "render")
    assert entry is not None and entry.remote_id is None
    store.record_side_effect(job, "render", "r-42")
    store.record_side_effect(job, "render")  # a later "before" record keeps the remote id
    clock.advance(31)
    again = store.claim("w2", lease_seconds=30)
    assert again is not None
    entry = store.side_effect(again, "render")
    assert entry is not None and entry.remote_id == "r-42"


def test_side_effects_lists_one_jobs_ledger_by_key(store: JobStore) -> None:
    store.enqueue("fp1", "cut", SRC)
    store.enqueue("fp2", "cut", SourceRef("inbox", "other.mp4"))
    job = store.claim("w", lease_seconds=30)
    other = store.claim("w", lease_seconds=30)
    assert job is not None and other is not None
    store.record_side_effect(job, "upload@s1", "u1")
    store.record_side_effect(job, "render@s1")
    store.record_side_effect(other, "upload@s2", "u2")
    assert store.side_effects(job) == [SideEffect("render@s1", None), SideEffect("upload@s1", "u1")]
    assert store.side_effects(other) == [SideEffect("upload@s2", "u2")]


def test_store_ledger_fences_calls_before_they_happen(store: JobStore, clock: ManualClock) -> None:
    store.enqueue("fp1", "cut", SRC)
    job = store.claim("w", lease_seconds=30)
    assert job is not None
    ledger = StoreLedger(store, job, 30)
    ledger.record("session")
    ledger.record("session", "s-1")
    clock.advance(31)
    assert store.claim("w2", lease_seconds=30) is not None
    with pytest.raises(LeaseLostError):
        ledger.record("instruction")
    assert ledger.get("instruction") is None
    ledger.record("render", "r-9")  # a remote id is kept even after losing the lease
    entry = ledger.get("render")
    assert entry is not None and entry.remote_id == "r-9"


def test_forget_lets_a_file_be_processed_again(store: JobStore) -> None:
    store.enqueue("fp1", "cut", SRC)
    job = store.claim("w", lease_seconds=30)
    assert job is not None
    store.record_side_effect(job, "render", "r1")
    assert store.forget(fingerprint="fp1") == 0  # running jobs are not forgotten
    assert store.complete(job.id, job.lease_token, {})
    assert store.forget(source=SRC) == 1
    again = store.enqueue("fp1", "cut", SRC)
    assert again is not None and store.side_effect(again, "render") is None


def test_rename_folder_moves_a_folders_jobs_to_its_id(store: JobStore) -> None:
    store.enqueue("fp1", "cut", SourceRef("/mnt/nas/in", "a.mp4"), size=5, mtime=1.0)
    store.enqueue("fp2", "cut", SourceRef("/mnt/nas/in", "b.mp4"), size=5, mtime=1.0)
    store.enqueue("fp3", "cut", SourceRef("/elsewhere", "a.mp4"), size=5, mtime=1.0)
    assert store.rename_folder("/mnt/nas/in", "studio") == 2
    assert store.known(SourceRef("studio", "a.mp4"), 5, 1.0)
    assert not store.known(SourceRef("/mnt/nas/in", "a.mp4"), 5, 1.0)
    assert store.known(SourceRef("/elsewhere", "a.mp4"), 5, 1.0)
    assert store.rename_folder("/mnt/nas/in", "studio") == 0


def test_counts_jobs_and_running_step(store: JobStore) -> None:
    for index in range(3):
        store.enqueue(f"fp{index}", "cut", SourceRef("/w", f"{index}.mp4"))
    job = store.claim("w", lease_seconds=30)
    assert job is not None
    store.heartbeat(job.id, job.lease_token, lease_seconds=30, step="render", progress=0.5)
    counts = store.counts()
    assert counts[JobState.QUEUED] == 2 and counts[JobState.RUNNING] == 1
    assert counts[JobState.DONE] == 0
    running = store.jobs(JobState.RUNNING)
    assert running[0].label == "running:render" and running[0].progress == 0.5


def test_database_clock_is_used_by_default(make_store: StoreFactory) -> None:
    import time

    store = make_store(None)
    assert abs(store.now() - time.time()) < 5
    store.enqueue("fp1", "cut", SRC)
    job = store.claim("w", lease_seconds=30)
    assert job is not None and job.lease_expires_at is not None
    assert 25 < job.lease_expires_at - time.time() < 35


def test_prune_keeps_done_fingerprints_and_drops_old_failures(store: JobStore, clock: ManualClock) -> None:
    day = 86_400.0
    done = store.enqueue("fp-done", "r", SourceRef("/in", "a.mov"))
    failed = store.enqueue("fp-failed", "r", SourceRef("/in", "b.mov"))
    assert done is not None and failed is not None
    first = store.claim("w", lease_seconds=60)
    assert first is not None and first.id == done.id
    store.record_side_effect(first, "render@s1", "render_1")
    assert store.complete(first.id, first.lease_token, {".mp4": "/out/a.mp4"})
    second = store.claim("w", lease_seconds=60)
    assert second is not None and second.id == failed.id
    store.record_side_effect(second, "session", "s2")
    assert store.fail(second.id, second.lease_token, "b.mov is not a readable video file.")
    recent = store.enqueue("fp-recent", "r", SourceRef("/in", "c.mov"))
    assert recent is not None

    clock.advance(29 * day)
    assert store.prune(30 * day) == 0
    assert store.side_effect(first, "render@s1") is not None

    clock.advance(2 * day)
    assert store.prune(30 * day) == 3  # two ledger rows and the failed job
    assert store.get(failed.id) is None
    kept = store.get(done.id)
    assert kept is not None and kept.state == JobState.DONE
    assert store.side_effect(first, "render@s1") is None
    assert store.enqueue("fp-done", "r", SourceRef("/in", "a-renamed.mov")) is None, "done stays done"
    assert store.get(recent.id) is not None, "unfinished jobs are never pruned"


def test_error_codes_and_wait_reasons_are_columns(store: JobStore, clock: ManualClock) -> None:
    store.enqueue("fp1", "cut", SRC)
    store.enqueue("fp2", "cut", SourceRef("/watch", "b.mp4"))
    first = store.claim("w", lease_seconds=30)
    assert first is not None
    assert store.wait(first.id, first.lease_token, "credits", 60, message="balance 10 is below 50")
    waiting = store.get(first.id)
    assert waiting is not None and waiting.wait_reason == "credits"
    assert waiting.error == "balance 10 is below 50" and waiting.error_code is None
    second = store.claim("w", lease_seconds=30)
    assert second is not None and second.id != first.id
    assert store.fail(second.id, second.lease_token, "the render was refused", code="2001")
    failed = store.get(second.id)
    assert failed is not None and failed.error_code == "2001" and failed.wait_reason is None
    summary = store.summary()
    assert summary.errors_by_code == {"2001": 1}
    assert [job.id for job in summary.queue] == [first.id]
    assert [job.id for job in summary.failures] == [second.id]
    assert summary.counts()[JobState.WAITING] == 1 and summary.counts()[JobState.FAILED] == 1
    assert store.retry(second.id) == 1
    retried = store.get(second.id)
    assert retried is not None and retried.error_code is None


def test_summary_counts_folders_running_and_totals(store: JobStore, clock: ManualClock) -> None:
    store.enqueue("fp1", "cut", SourceRef("studio", "a.mp4"), size=100)
    store.enqueue("fp2", "cut", SourceRef("studio", "b.mp4"), size=7)
    store.enqueue("fp3", "cut", SourceRef("/other", "c.mp4"), size=1)
    done = store.claim("w", lease_seconds=30)
    assert done is not None
    clock.advance(10)
    assert store.complete(done.id, done.lease_token, {".mp4": "/out/a.mp4"})
    running = store.claim("w", lease_seconds=30)
    assert running is not None
    summary = store.summary(queue_limit=5, failure_limit=5)
    assert summary.folders["studio"][JobState.DONE] == 1
    assert summary.folders["studio"][JobState.RUNNING] == 1
    assert summary.folders["/other"][JobState.QUEUED] == 1
    assert [job.id for job in summary.running] == [running.id]
    assert summary.finished[JobState.DONE] == (1, pytest.approx(10.0))
    assert summary.bytes_done == 100 and summary.errors_by_code == {}


def test_claim_can_be_limited_to_some_folders(store: JobStore, clock: ManualClock) -> None:
    store.enqueue("fp1", "cut", SourceRef("studio", "a.mp4"))
    clock.advance(1)
    store.enqueue("fp2", "cut", SourceRef("rig-2-only", "b.mp4"))
    assert store.claim("w", lease_seconds=30, roots=[]) is None
    taken = store.claim("w", lease_seconds=30, roots=["rig-2-only"])
    assert taken is not None and taken.source.root == "rig-2-only"
    assert store.claim("w", lease_seconds=30, roots=["rig-2-only"]) is None
    rest = store.claim("w", lease_seconds=30, roots=None)
    assert rest is not None and rest.source.root == "studio"


def _ids(jobs: list[Job]) -> list[int]:
    return [job.id for job in jobs]


def test_page_filters_by_state_folder_rule_and_time(store: JobStore, clock: ManualClock) -> None:
    made = []
    for index, (root, rule) in enumerate([("studio", "cut"), ("studio", "captions"), ("/other", "cut"),
                                          ("/other", "captions"), ("studio", "cut")]):
        job = store.enqueue(f"fp{index}", rule, SourceRef(root, f"{index}.mp4"))
        assert job is not None
        made.append(job.id)
        clock.advance(10)
    running = store.claim("w", lease_seconds=30)
    assert running is not None and running.id == made[0]
    failed = store.claim("w", lease_seconds=30)
    assert failed is not None and store.fail(failed.id, failed.lease_token, "corrupt file.")
    newest_first = sorted(made, reverse=True)
    assert _ids(store.page()) == newest_first
    assert _ids(store.page(state=JobState.QUEUED)) == [made[4], made[3], made[2]]
    assert _ids(store.page(state=JobState.FAILED)) == [made[1]]
    assert _ids(store.page(state=JobState.DONE)) == []
    assert _ids(store.page(root="studio")) == [made[4], made[1], made[0]]
    assert _ids(store.page(rule="captions")) == [made[3], made[1]]
    assert _ids(store.page(root="studio", rule="cut", state=JobState.QUEUED)) == [made[4]]
    assert _ids(store.page(root="nowhere")) == []
    found = {job.id: job.created_at for job in store.page()}
    assert _ids(store.page(since=found[made[2]])) == [made[4], made[3], made[2]]  # at or after
    assert _ids(store.page(limit=2)) == newest_first[:2]
    page = store.page(state=JobState.RUNNING)
    assert _ids(page) == [running.id] and page[0].lease_owner == "w" and page[0].source.root == "studio"


def test_page_search_is_a_case_insensitive_substring_with_wildcards_escaped(store: JobStore) -> None:
    names = ["Talk_1.mp4", "talkx1.mp4", "sub/Interview TALK.mov", "100%.mp4", "1000.mp4",
             "back\\slash.mp4", "plain.mp4"]
    ids = {}
    for index, name in enumerate(names):
        job = store.enqueue(f"fp{index}", "cut", SourceRef("studio", name))
        assert job is not None
        ids[name] = job.id

    def found(search: str) -> list[str]:
        return [job.source.relative for job in store.page(search=search)]

    assert found("talk") == ["sub/Interview TALK.mov", "talkx1.mp4", "Talk_1.mp4"]
    assert found("k_1") == ["Talk_1.mp4"]  # "_" is not "any one character"
    assert found("0%") == ["100%.mp4"]  # "%" is not "anything"
    assert found("%") == ["100%.mp4"]
    assert found("\\") == ["back\\slash.mp4"]
    assert found("sub/") == ["sub/Interview TALK.mov"]  # the relative path, folders included
    assert found("missing") == []
    assert _ids(store.page(search="talk", before_id=ids["talkx1.mp4"])) == [ids["Talk_1.mp4"]]


def test_keyset_paging_returns_every_job_once_newest_first(store: JobStore, clock: ManualClock) -> None:
    for index in range(23):
        store.enqueue(f"fp{index}", "cut" if index % 3 else "captions", SourceRef("studio", f"{index}.mp4"))
        clock.advance(1)
    every = _ids(store.page(limit=1000))
    assert len(every) == 23 and every == sorted(every, reverse=True)

    def walk(size: int, **filters: object) -> list[list[int]]:
        pages: list[list[int]] = []
        before: int | None = None
        while True:
            page = _ids(store.page(before_id=before, limit=size, **filters))  # type: ignore[arg-type]
            if not page:
                return pages
            pages.append(page)
            before = page[-1]

    pages = walk(5)
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    assert [job_id for page in pages for job_id in page] == every
    captions = _ids(store.page(rule="captions", limit=1000))
    assert len(captions) == 8
    assert [job_id for page in walk(3, rule="captions") for job_id in page] == captions
    first = store.page(limit=5)
    newer = store.enqueue("fp-new", "cut", SourceRef("studio", "new.mp4"))
    assert newer is not None and newer.id > every[0]
    assert _ids(store.page(before_id=first[-1].id, limit=5)) == every[5:10]  # a new job shifts nothing


def test_cancel_fails_queued_and_waiting_jobs_only(store: JobStore, clock: ManualClock) -> None:
    for name in ("waiting", "running", "done"):
        store.enqueue(f"fp-{name}", "cut", SourceRef("studio", f"{name}.mp4"))
        clock.advance(1)
    waiting = store.claim("w", lease_seconds=30)
    assert waiting is not None and store.wait(waiting.id, waiting.lease_token, "credits", 600)
    running = store.claim("w", lease_seconds=3600)
    done = store.claim("w", lease_seconds=30)
    assert running is not None and done is not None and store.complete(done.id, done.lease_token, {})
    queued = store.enqueue("fp-queued", "cut", SourceRef("studio", "queued.mp4"))
    assert queued is not None
    clock.advance(5)

    assert store.cancel(queued.id, "cancelled by a person")
    assert store.cancel(waiting.id, "cancelled by a person")
    for job_id in (queued.id, waiting.id):
        job = store.get(job_id)
        assert job is not None and job.state is JobState.FAILED
        assert job.error == "cancelled by a person" and job.error_code == CANCELLED_CODE == "cancelled"
        assert job.wait_reason is None and job.lease_owner is None and job.finished_at == clock.now
    assert store.claim("w2", lease_seconds=30) is None  # neither is claimable, even when due
    clock.advance(601)
    assert store.claim("w2", lease_seconds=30) is None

    assert not store.cancel(running.id, "cancelled by a person")  # stopped through its daemon instead
    still = store.get(running.id)
    assert still is not None and still.state is JobState.RUNNING and still.lease_token == running.lease_token
    assert store.heartbeat(running.id, running.lease_token, lease_seconds=30)
    assert not store.cancel(done.id, "cancelled by a person")
    assert store.get(done.id) is not None and store.get(done.id).state is JobState.DONE  # type: ignore[union-attr]
    assert not store.cancel(queued.id, "again")  # already failed: unchanged
    assert store.get(queued.id).error == "cancelled by a person"  # type: ignore[union-attr]
    assert not store.cancel(999_999, "no such job")
    assert store.summary().errors_by_code == {"cancelled": 2}
    assert store.retry(queued.id) == 1
    again = store.claim("w2", lease_seconds=30)
    assert again is not None and again.id == queued.id and again.error_code is None


def test_cancel_and_claim_racing_never_both_win(make_store: StoreFactory) -> None:
    setup = make_store(None)
    ids = []
    for index in range(40):
        job = setup.enqueue(f"fp{index}", "cut", SourceRef("/w", f"{index}.mp4"))
        assert job is not None
        ids.append(job.id)
    claimed: list[int] = []
    cancelled: list[int] = []
    start = threading.Barrier(2)

    def claimer() -> None:
        store = make_store(None)
        start.wait()
        while (job := store.claim("w", lease_seconds=60)) is not None:
            claimed.append(job.id)

    def canceller() -> None:
        store = make_store(None)
        start.wait()
        cancelled.extend(job_id for job_id in reversed(ids) if store.cancel(job_id, "cancelled"))

    threads = [threading.Thread(target=claimer), threading.Thread(target=canceller)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not set(claimed) & set(cancelled)
    assert sorted(claimed + cancelled) == sorted(ids)
    states = {job.id: job.state for job in setup.page(limit=100)}
    assert all(states[job_id] is JobState.RUNNING for job_id in claimed)
    assert all(states[job_id] is JobState.FAILED for job_id in cancelled)

"""A state dir written by the schema-1 SQLite store keeps working: status reads it as it
is (read-only), and the daemon's store upgrades it (schema 2: error codes and wait
reasons moved into their columns; 3: the jobs page's indexes)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from nemod.store import JobState
from nemod.store.sqlite import SCHEMA_VERSION, SQLiteStore

SCHEMA_1 = """
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, fingerprint TEXT NOT NULL, rule TEXT NOT NULL,
    root TEXT NOT NULL, relative TEXT NOT NULL, size INTEGER NOT NULL DEFAULT 0,
    mtime REAL NOT NULL DEFAULT 0, state TEXT NOT NULL, step TEXT, progress REAL,
    attempts INTEGER NOT NULL DEFAULT 0, lease_owner TEXT, lease_token INTEGER NOT NULL DEFAULT 0,
    lease_expires_at REAL, not_before REAL NOT NULL, created_at REAL NOT NULL,
    updated_at REAL NOT NULL, finished_at REAL, outputs TEXT NOT NULL DEFAULT '{}', error TEXT,
    UNIQUE (fingerprint, rule));
CREATE TABLE side_effects (fingerprint TEXT NOT NULL, rule TEXT NOT NULL, key TEXT NOT NULL,
    remote_id TEXT, recorded_at REAL NOT NULL, PRIMARY KEY (fingerprint, rule, key));
INSERT INTO jobs (fingerprint, rule, root, relative, state, not_before, created_at, updated_at,
                  finished_at, error)
VALUES ('f1', 'r', 'studio', 'a.mov', 'failed', 0, 0, 5, 5, 'NemoVideo error code 2001: no credits'),
       ('f2', 'r', 'studio', 'b.mov', 'waiting', 9e9, 0, 6, NULL, 'credits'),
       ('f3', 'r', 'studio', 'c.mov', 'done', 0, 0, 7, 7, NULL);
PRAGMA user_version = 1;
"""


def make_schema_1(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_1)


def test_status_reads_an_old_file_without_changing_it(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    make_schema_1(path)
    before = path.read_bytes()
    reader = SQLiteStore(path, read_only=True)
    try:
        summary = reader.summary()
    finally:
        reader.close()
    assert summary.errors_by_code == {"2001": 1}
    assert summary.counts()[JobState.DONE] == 1
    assert path.read_bytes() == before


def test_the_store_upgrades_an_old_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    make_schema_1(path)
    store = SQLiteStore(path)
    try:
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
            indexes = {row[1] for row in conn.execute("PRAGMA index_list(jobs)")}
        assert {"jobs_page_state", "jobs_page_root", "jobs_page_rule"} <= indexes  # schema 3
        failed = store.find("f1", "r")
        waiting = store.find("f2", "r")
        assert failed is not None and failed.error_code == "2001"
        assert waiting is not None and waiting.wait_reason == "credits"
        assert [job.id for job in store.page(state=JobState.WAITING)] == [waiting.id]
        assert store.summary().errors_by_code == {"2001": 1}
        assert store.enqueue("f3", "r", failed.source) is None  # done stays done
    finally:
        store.close()
    SQLiteStore(path).close()  # opening an upgraded file again changes nothing

"""``JobStore.page`` (the dashboard's jobs list) over N jobs (default 100,000), on SQLite and
on PostgreSQL, with the ``jobs_page_*`` indexes (SQLite schema 3, PostgreSQL migration 2)
and again after dropping them, side by side in one run.

Makes its own PostgreSQL cluster with Debian's ``initdb`` (``tests/support/pgcluster.py``;
as root the server runs as ``postgres``). Rows are written in one statement per store
(``done``/``failed`` jobs, one ``queued``; two rules; 100 folders, and ``archive`` holding only the 500 oldest jobs), then each page is read
``--runs`` times in process and its median printed in milliseconds. SQLite is not
``ANALYZE``d (nemod never does, so its planner sees what a real file gives it); PostgreSQL
is (autovacuum does that on a real database).

    .venv/bin/python bench/store_page.py [--jobs 100000] [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.pgcluster import PgCluster, find_binaries

from nemod.store import JobState, SourceRef
from nemod.store.base import Job, JobStore
from nemod.store.postgres import PostgresStore
from nemod.store.sqlite import SQLiteStore

INDEXES = ("jobs_page_state", "jobs_page_root", "jobs_page_rule")

#: name → the page read (the first page of each filter, and one deep in the list).
PAGES: dict[str, Callable[[JobStore, int], list[Job]]] = {
    "first page": lambda store, n: store.page(),
    "deep page (before id n/100)": lambda store, n: store.page(before_id=n // 100),
    "state=failed (a quarter)": lambda store, n: store.page(state=JobState.FAILED),
    "state=queued (one job)": lambda store, n: store.page(state=JobState.QUEUED),
    "folder day-7 (1 %)": lambda store, n: store.page(root="day-7"),
    "folder archive (500 oldest jobs)": lambda store, n: store.page(root="archive"),
    "rule=other, page 2": lambda store, n: store.page(rule="other", before_id=n // 2),
    "search 'clip4242' (a scan)": lambda store, n: store.page(search="clip4242"),
}


def fill_sqlite(store: SQLiteStore, jobs: int) -> None:
    with store._tx() as (conn, _):
        conn.executemany(
            "INSERT INTO jobs (fingerprint, rule, root, relative, state, created_at, updated_at, not_before)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
            [(f"fp{n}", "talks" if n % 3 else "other", "archive" if n < 500 else f"day-{n % 100}", f"clip{n}.mp4",
              ("done", "done", "done", "failed")[n % 4], 1.7e9 + n, 1.7e9 + n) for n in range(jobs)])


def fill_postgres(store: PostgresStore, jobs: int) -> None:
    with store._tx() as (cursor, _):
        cursor.execute(
            """INSERT INTO jobs (fingerprint, rule, root, relative, state, created_at, updated_at, not_before)
               SELECT 'fp' || n, CASE WHEN n %% 3 = 0 THEN 'other' ELSE 'talks' END, CASE WHEN n < 500 THEN 'archive' ELSE 'day-' || (n %% 100) END,
                      'clip' || n || '.mp4', CASE WHEN n %% 4 = 3 THEN 'failed' ELSE 'done' END,
                      1.7e9 + n, 1.7e9 + n, 0
               FROM generate_series(0, %s - 1) AS n""",
            (jobs,),
        )
        cursor.execute("ANALYZE jobs")


def measure(store: JobStore, jobs: int, runs: int) -> dict[str, float]:
    medians = {}
    for name, read in PAGES.items():
        times = []
        for _ in range(runs):
            begin = time.perf_counter()
            read(store, jobs)
            times.append((time.perf_counter() - begin) * 1000)
        medians[name] = statistics.median(times)
    return medians


def report(label: str, with_indexes: dict[str, float], without: dict[str, float]) -> None:
    print(f"{label}: median ms with the page indexes / without them")
    for name in PAGES:
        print(f"  {name:<34} {with_indexes[name]:8.2f} / {without[name]:8.2f}")


def main() -> None:
    """Print, per store and page, the median milliseconds with and without the indexes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        sqlite = SQLiteStore(Path(folder) / "jobs.sqlite3")
        try:
            fill_sqlite(sqlite, args.jobs)
            sqlite.enqueue("last", "talks", SourceRef("day-0", "inbox/last.mp4"))
            indexed = measure(sqlite, args.jobs, args.runs)
            with sqlite._tx() as (conn, _):
                for index in INDEXES:
                    conn.execute(f"DROP INDEX {index}")
            report(f"SQLite, {args.jobs} jobs", indexed, measure(sqlite, args.jobs, args.runs))
        finally:
            sqlite.close()
    binaries = find_binaries()
    if binaries is None:
        print("PostgreSQL: no initdb found (install Debian's postgresql)")
        return
    cluster = PgCluster(binaries)
    cluster.start()
    try:
        postgres = PostgresStore(cluster.new_database())
        try:
            fill_postgres(postgres, args.jobs)
            postgres.enqueue("last", "talks", SourceRef("day-0", "inbox/last.mp4"))
            indexed = measure(postgres, args.jobs, args.runs)
            with postgres._tx() as (cursor, _):
                cursor.execute(f"DROP INDEX {', '.join(INDEXES)}")
            report(f"PostgreSQL, {args.jobs} jobs", indexed, measure(postgres, args.jobs, args.runs))
        finally:
            postgres.close()
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()

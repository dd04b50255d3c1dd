"""The dashboard's pages over a job store of N jobs (default 100,000), over real HTTP.

Fills a SQLite store (one transaction, real ``jobs`` rows through ``JobStore.enqueue``),
serves it with :class:`nemod.web.server.DashboardServer` on loopback and times GETs of:
the overview (its one-second snapshot cache off, so each GET reads the store), the first page of jobs, a page deep in the list (keyset cursor), a state
filter (a common state and a rare one: the one queued job), a rule filter and a name search
(a scan); then the jobs-list reads again in process, without HTTP (the store's part).
Medians of ``--runs`` requests each.

    .venv/bin/python bench/dashboard_paging.py [--jobs 100000] [--runs 9]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from nemod.config import load
from nemod.logs import configure
from nemod.store import SourceRef
from nemod.store.sqlite import SQLiteStore
from nemod.web.data import DashboardData, JobFilter, status_source
from nemod.web.server import DashboardServer


def main() -> None:
    """Print one line per page: median and worst milliseconds."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    configure("warning")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "in").mkdir()
        (root / "nemod.yaml").write_text(
            "state_dir: state\nstatus_port: 0\nwatch:\n  - path: in\n    output: out\n"
            "rules:\n  - {name: talks, match: {glob: '*'}, edit: copy}\n  - {name: other, match: {glob: '*'}, edit: copy}\n")
        config = load(root / "nemod.yaml")
        store = SQLiteStore(config.state_dir / "jobs.sqlite3")
        key = config.watches[0].key
        started = time.monotonic()
        with store._tx() as (conn, _):
            conn.executemany(
                "INSERT INTO jobs (fingerprint, rule, root, relative, state, created_at, updated_at, not_before)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                [(f"fp{n}", "talks" if n % 3 else "other", key, f"day{n // 1000}/clip{n}.mp4",
                  ("done", "done", "done", "failed")[n % 4], 1.7e9 + n, 1.7e9 + n) for n in range(args.jobs)])
        store.enqueue("last", "talks", SourceRef(key, "inbox/last.mp4"))
        filled = time.monotonic() - started
        source = status_source(config)
        data = DashboardData(lambda: config, store, source, snapshot_seconds=0.0)
        server = DashboardServer(config, source, port=0, data=data)
        server.start()
        pages = {
            "overview (snapshot cache off)": "/",
            "jobs, first page": "/jobs",
            "jobs, deep page (before=id 1,000)": "/jobs?before=1000",
            "jobs, state=failed": "/jobs?state=failed",
            "jobs, state=queued (1 job of N)": "/jobs?state=queued",
            "jobs, rule=other, page 2": f"/jobs?rule=other&before={args.jobs // 2}",
            "jobs, name search 'clip4242'": "/jobs?q=clip4242",
        }
        queries = {
            "jobs, first page": JobFilter(),
            "jobs, state=failed": JobFilter(state="failed"),
            "jobs, state=queued (1 job of N)": JobFilter(state="queued"),
            "jobs, rule=other, page 2": JobFilter(rule="other", before=args.jobs // 2),
            "jobs, name search 'clip4242'": JobFilter(search="clip4242"),
        }
        print(f"{args.jobs} jobs (filled in {filled:.1f} s), {args.runs} GETs each:")
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as http:
                for name, path in pages.items():
                    times = []
                    for _ in range(args.runs):
                        begin = time.perf_counter()
                        answer = http.get(path)
                        times.append((time.perf_counter() - begin) * 1000)
                        answer.raise_for_status()
                    print(f"  {name:<40} median {statistics.median(times):7.1f} ms, worst {max(times):7.1f} ms")
            print("in process (DashboardData.page_jobs, no HTTP):")
            for name, query in queries.items():
                times = []
                for _ in range(args.runs):
                    begin = time.perf_counter()
                    data.page_jobs(query)
                    times.append((time.perf_counter() - begin) * 1000)
                print(f"  {name:<40} median {statistics.median(times):7.1f} ms, worst {max(times):7.1f} ms")
        finally:
            server.close()
            store.close()


if __name__ == "__main__":
    main()

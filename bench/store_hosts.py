"""Many hosts on one job store: claims, store overhead per job, re-claim after a kill.

Makes its own PostgreSQL cluster with Debian's ``initdb`` (``tests/pgcluster.py``; as
root the server runs as the ``postgres`` user), unless ``--url`` names a database.

- ``claims``: ``--hosts`` processes (4) claim and complete ``--jobs`` no-op jobs (10,000)
  from one PostgreSQL store; prints the wall time, claims per second and how many jobs
  were claimed more than once (must be 0).
- ``overhead``: the store calls of one job (enqueue, claim, two checkpoints, complete),
  timed per job for PostgreSQL and SQLite side by side in one run; median and p99.
- ``reclaim``: a host process holding a job (lease ``--lease`` s, heartbeat every fifth of
  it) is SIGKILLed; another host claims in a loop; prints the time from the kill to its
  claim (median, max over ``--trials``).

    .venv/bin/python bench/store_hosts.py [claims|overhead|reclaim|all] [--jobs 10000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.pgcluster import PgCluster, find_binaries

from nemod.store import JobState, SourceRef
from nemod.store.base import JobStore
from nemod.store.postgres import PostgresStore
from nemod.store.sqlite import SQLiteStore


def _claimer(url: str, name: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    store = PostgresStore(url, pool_size=1)
    claimed = []
    while (job := store.claim(name, lease_seconds=300)) is not None:
        store.complete(job.id, job.lease_token, {})
        claimed.append(job.id)
    store.close()
    out.put(claimed)


def claims(url: str, jobs: int, hosts: int) -> None:
    setup = PostgresStore(url)
    for index in range(jobs):
        setup.enqueue(f"claims-{index}", "noop", SourceRef("studio", f"{index}.mp4"))
    out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    workers = [multiprocessing.Process(target=_claimer, args=(url, f"host-{i}", out)) for i in range(hosts)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    results = [out.get() for _ in workers]
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join()
    every = [job for result in results for job in result]
    twice = len(every) - len(set(every))
    counts = setup.counts()
    setup.close()
    print(f"claims: {hosts} hosts, {len(every)} jobs claimed in {elapsed:.1f} s "
          f"({len(every) / elapsed:.0f} claims/s; per host {[len(r) for r in results]}); "
          f"claimed twice: {twice}; done in store: {counts[JobState.DONE]}")


def _one_job(store: JobStore, index: int, prefix: str) -> float:
    started = time.perf_counter()
    store.enqueue(f"{prefix}-{index}", "noop", SourceRef("studio", f"{index}.mp4"))
    job = store.claim("bench", lease_seconds=60)
    assert job is not None
    store.heartbeat(job.id, job.lease_token, lease_seconds=60, step="render", progress=0.0)
    store.heartbeat(job.id, job.lease_token, lease_seconds=60, step="publish", progress=0.0)
    store.complete(job.id, job.lease_token, {".mp4": f"/out/{index}.mp4"})
    return time.perf_counter() - started


def overhead(url: str, jobs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        stores: dict[str, Callable[[], JobStore]] = {
            "postgresql": lambda: PostgresStore(url),
            "sqlite": lambda: SQLiteStore(Path(folder) / "jobs.sqlite3"),
        }
        opened = {name: make() for name, make in stores.items()}
        times: dict[str, list[float]] = {name: [] for name in opened}
        for index in range(jobs):  # interleaved, so both see the same machine load
            for name, store in opened.items():
                times[name].append(_one_job(store, index, f"overhead-{name}"))
        for name, store in opened.items():
            store.close()
            ordered = sorted(times[name])
            p99 = ordered[int(len(ordered) * 0.99) - 1]
            print(f"overhead {name}: {jobs} jobs, per job median {statistics.median(ordered) * 1000:.2f} ms, "
                  f"p99 {p99 * 1000:.2f} ms (enqueue + claim + 2 checkpoints + complete)")


def _holder(url: str, lease: float, ready: multiprocessing.Event) -> None:  # type: ignore[type-arg]
    store = PostgresStore(url, pool_size=1)
    job = store.claim("dead-host:1:1", lease_seconds=lease)
    assert job is not None
    ready.set()
    while True:
        time.sleep(lease / 5)
        store.heartbeat(job.id, job.lease_token, lease_seconds=lease)


def reclaim(url: str, lease: float, trials: int) -> None:
    store = PostgresStore(url)
    waits = []
    for trial in range(trials):
        store.enqueue(f"reclaim-{trial}", "noop", SourceRef("studio", f"r{trial}.mp4"))
        ready = multiprocessing.Event()
        holder = multiprocessing.Process(target=_holder, args=(url, lease, ready))
        holder.start()
        assert ready.wait(30)
        time.sleep(lease * 0.6)  # somewhere inside a heartbeat period
        os.kill(holder.pid or 0, signal.SIGKILL)
        killed = time.perf_counter()
        holder.join()
        while (job := store.claim("survivor:1:1", lease_seconds=60)) is None:
            time.sleep(0.05)
        waits.append(time.perf_counter() - killed)
        store.complete(job.id, job.lease_token, {})
    store.close()
    print(f"reclaim: lease {lease:.0f} s, {trials} kills: kill → re-claim median {statistics.median(waits):.2f} s, "
          f"max {max(waits):.2f} s (bound: the lease)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", default="all", choices=["claims", "overhead", "reclaim", "all"])
    parser.add_argument("--url", help="a PostgreSQL database to use (default: a throwaway cluster)")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--overhead-jobs", type=int, default=2_000)
    parser.add_argument("--lease", type=float, default=10.0)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    cluster = None
    if args.url is None:
        binaries = find_binaries()
        if binaries is None:
            raise SystemExit("no PostgreSQL binaries: install Debian's postgresql or pass --url")
        cluster = PgCluster(binaries)
        cluster.start()
    try:
        def database() -> str:
            return args.url if cluster is None else cluster.new_database()

        if args.what in ("claims", "all"):
            claims(database(), args.jobs, args.hosts)
        if args.what in ("overhead", "all"):
            overhead(database(), args.overhead_jobs)
        if args.what in ("reclaim", "all"):
            reclaim(database(), args.lease, args.trials)
    finally:
        if cluster is not None:
            cluster.destroy()


if __name__ == "__main__":
    main()

"""A full cloud job against ``nemod serve``: how much of its wall time is the client's.

Run: .venv/bin/python bench/cloud_job.py [--seconds 30] [--runs 3]

The server runs in its own process. For each job (credits → session → upload → edit
over SSE → state confirm → render → polling → download) this measures:

* wall: the job's wall time in the client;
* server work: the engine's edit and render seconds, from the server's own log;
* transfer: upload and download time (both ends busy);
* client CPU: the client process's CPU time during the job;
* client-added latency: wall − server work − transfer (polling granularity, state
  confirmation, HTTP round trips).

Target: client-side overhead ≤ 5 % of wall. Both the CPU share and the added-latency share
are printed. Poll interval here is 0.25 s; with the production default of 30 s the polling
granularity alone adds up to 30 s per render (15 s on average).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cloud_common import ServeProcess

from nemod import logs
from nemod.backends.base import JobContext, JobRequest
from nemod.cloud.backend import CloudBackend, JobPolicy
from nemod.config import CloudSettings, Rule
from nemod.samples import make_clip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--poll", type=float, default=0.25)
    args = parser.parse_args()
    logs.configure("warning")
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="nemod-bench-") as folder:
        root = Path(folder)
        clip = make_clip(root / "talk.mp4", width=1280, height=720, seconds=args.seconds)
        server = ServeProcess(root / "serve", "--heartbeat", "0.5")
        policy = JobPolicy(
            poll_seconds=args.poll,
            max_polls=100_000,
            confirm_interval=args.poll,
            confirm_reads=3,
            drop_first_wait=args.poll,
            drop_interval=args.poll,
        )
        backend = CloudBackend(
            CloudSettings(api_url=server.url, min_credits=0),
            root / "state",
            env={},
            job_policy=policy,
            sleep=time.sleep,
        )
        transfer = {"seconds": 0.0}

        def timed(function: Any) -> Any:
            def wrapper(*a: Any, **k: Any) -> Any:
                started = time.perf_counter()
                try:
                    return function(*a, **k)
                finally:
                    transfer["seconds"] += time.perf_counter() - started

            return wrapper

        backend.client.upload = timed(backend.client.upload)  # type: ignore[method-assign]
        backend.client.download = timed(backend.client.download)  # type: ignore[method-assign]
        try:
            backend.balance()  # warm up
            for index in range(args.runs):
                work_before = len(server.stats()["work"])
                transfer["seconds"] = 0.0
                cpu, wall = time.process_time(), time.perf_counter()
                job = JobRequest(
                    f"bench{index}",
                    clip,
                    Rule(name="r", edit="export 720p MP4", min_credits=0),
                    root / f"work{index}",
                )
                result = backend.process(job, JobContext())
                wall = time.perf_counter() - wall
                cpu = time.process_time() - cpu
                work = server.stats()["work"][work_before:]
                server_seconds = sum(item["seconds"] for item in work)
                rows.append(
                    {
                        "wall": wall,
                        "server": server_seconds,
                        "transfer": transfer["seconds"],
                        "cpu": cpu,
                        "latency": wall - server_seconds - transfer["seconds"],
                    }
                )
                assert result.video.stat().st_size > 0
        finally:
            backend.close()
            server.stop()

    def median(key: str) -> float:
        return statistics.median(row[key] for row in rows)

    print(f"full cloud job on a {args.seconds:.0f} s 720p clip, {args.runs} runs, poll {args.poll} s")
    for key, label in (
        ("wall", "wall"),
        ("server", "server work (edit + render)"),
        ("transfer", "upload + download"),
        ("cpu", "client CPU"),
        ("latency", "client-added latency"),
    ):
        print(f"  {label:<28} median {median(key):7.3f} s")
    print(f"  client CPU / wall            {100 * median('cpu') / median('wall'):6.2f} %  (target <= 5 %)")
    print(
        f"  client-added latency / wall  {100 * median('latency') / median('wall'):6.2f} %  (target <= 5 %)"
    )


if __name__ == "__main__":
    main()

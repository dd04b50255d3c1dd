"""Upload a 500 MB file to ``nemod serve``: the client's peak memory growth (target ≤ 64 MB).

Run: .venv/bin/python bench/cloud_upload.py [--mb 500] [--runs 3]

The server runs in its own process; the client's resident memory is sampled every
2 ms during each upload and compared with its level just before. For contrast, the
same file is also sent with httpx as a *non-streamed* body (read into memory first),
side by side in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from cloud_common import ServeProcess

from nemod.cloud.api import ClientPolicy, NemoClient
from nemod.cloud.auth import TokenStore


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakSampler:
    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> PeakSampler:
        self.peak = rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def make_file(path: Path, megabytes: int) -> None:
    block = bytes(range(256)) * 4096  # 1 MiB of non-zero data
    total = megabytes * 1_000_000
    with path.open("wb") as handle:
        while total > 0:
            handle.write(block[: min(len(block), total)])
            total -= min(len(block), total)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nemod-bench-") as folder:
        root = Path(folder)
        source = root / "big.mp4"
        make_file(source, args.mb)
        server = ServeProcess(root / "serve")
        try:
            store = TokenStore(root / "state", server.url, env={})
            policy = ClientPolicy(upload_timeout=900.0)
            growth, seconds = [], []
            with NemoClient(server.url, store, policy=policy) as client:
                client.balance()  # warm up: token, connection pool, imports
                for _ in range(args.runs):
                    session = client.create_session().session_id
                    before = rss_mb()
                    started = time.perf_counter()
                    with PeakSampler() as sampler:
                        client.upload(session, source)
                    seconds.append(time.perf_counter() - started)
                    growth.append(sampler.peak - before)
                # Contrast: the same upload with the file read into memory first.
                session = client.create_session().session_id
                before = rss_mb()
                with PeakSampler() as sampler:
                    data = source.read_bytes()
                    token = store.current()
                    assert token is not None
                    httpx.post(
                        f"{server.url}/api/upload-video/nemo_agent/me/{session}",
                        headers={"Authorization": f"Bearer {token.value}"},
                        files={"files": ("big.mp4", data, "video/mp4")},
                        timeout=900,
                    )
                    del data
                buffered_growth = sampler.peak - before
            server_peak = server.peak_rss_mb()
        finally:
            server.stop()
    size_mb = args.mb
    median_seconds = statistics.median(seconds)
    print(f"upload of {size_mb} MB to nemod serve, {args.runs} runs")
    print(
        f"  streamed (nemod client): peak RSS growth median {statistics.median(growth):.1f} MB "
        f"(runs: {', '.join(f'{g:.1f}' for g in growth)}), target <= 64 MB"
    )
    print(f"  read-into-memory contrast: peak RSS growth {buffered_growth:.1f} MB")
    print(f"  ratio streamed/buffered: {statistics.median(growth) / buffered_growth:.3f}")
    print(f"  throughput median {size_mb / median_seconds:.0f} MB/s ({median_seconds:.2f} s)")
    print(f"  server process peak RSS: {server_peak:.1f} MB")


if __name__ == "__main__":
    main()

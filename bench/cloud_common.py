"""Shared by the cloud benchmarks: run ``nemod serve`` in its own process (so the client's
memory and CPU are measured alone) and read its admin statistics."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx


class ServeProcess:
    """``nemod serve`` on an ephemeral loopback port, in a child process."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nemod",
                "serve",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
                "--log-level",
                "warning",
                "--balance",
                "100000",
                *extra,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"nemod serve did not start: {line!r}")
        self.url = match.group(1)
        self.admin = (data_dir / "admin_token").read_text().strip()

    def stats(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/admin/stats", headers={"Authorization": f"Bearer {self.admin}"})
        return dict(answer.json()["data"])

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()

"""``nemod run`` as systemd starts it: a child process with ``$NOTIFY_SOCKET``, reloaded
with SIGHUP, stopped with SIGTERM (graceful: STOPPING=1, exit 0) — the unit file's contract."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nemod.service.beacon import read_beacon

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and sockets")


def receive_until(sock: socket.socket, key: str, timeout: float = 60.0) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(4096).decode()
        except TimeoutError:
            continue
        messages.append(dict(line.split("=", 1) for line in data.split("\n")))
        if key in messages[-1]:
            return messages
    raise AssertionError(f"no {key} within {timeout} s; got {messages}")


def test_run_notifies_systemd_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    notify_path = str(tmp_path / "notify")
    if len(notify_path) > 100:
        pytest.skip("temporary folder path too long for an AF_UNIX socket")
    (tmp_path / "in").mkdir()
    config = tmp_path / "nemod.yaml"
    config.write_text(
        "state_dir: state\nwatch:\n  - path: in\n    output: out\nrules:\n  - name: all\n"
    )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    sock.settimeout(0.5)
    env = {
        **os.environ,
        "NOTIFY_SOCKET": notify_path,
        "WATCHDOG_USEC": "1000000",
        "WATCHDOG_PID": "",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "nemod", "run", "-c", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        ready = receive_until(sock, "READY")
        assert ready[-1]["STATUS"] == "idle; 0 queued"
        receive_until(sock, "WATCHDOG", timeout=10)
        beacon = read_beacon(tmp_path / "state" / "daemon.json")
        assert beacon is not None and beacon["pid"] == process.pid
        # `systemctl reload` (ExecReload sends SIGHUP): RELOADING=1, then READY=1 again.
        process.send_signal(signal.SIGHUP)
        reloading = receive_until(sock, "RELOADING", timeout=30)
        assert int(reloading[-1]["MONOTONIC_USEC"]) > 0
        assert receive_until(sock, "READY", timeout=30)[-1]["STATUS"] == "idle; 0 queued"
        process.send_signal(signal.SIGTERM)
        receive_until(sock, "STOPPING", timeout=30)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        sock.close()
    assert process.returncode == 0, output.decode(errors="replace")[-2000:]
    beacon = read_beacon(tmp_path / "state" / "daemon.json")
    assert beacon is not None and beacon.get("stopped_at")

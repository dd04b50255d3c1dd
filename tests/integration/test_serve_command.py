"""``nemod serve`` as a process: it prints its URL, answers, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from nemod.commands.serve import _faults, _is_loopback
from nemod.errors import NemodError


def test_serve_process_starts_answers_and_stops(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "nemod", "serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
         "--balance", "42", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        url = match.group(1)
        token = httpx.post(f"{url}/api/auth/anonymous-token", headers={"X-Client-Id": "c"}).json()
        assert token["data"]["credits"] == 42
        admin = (tmp_path / "d" / "admin_token").read_text().strip()
        assert (tmp_path / "d" / "admin_token").stat().st_mode & 0o077 == 0
        stats = httpx.get(f"{url}/admin/stats", headers={"Authorization": f"Bearer {admin}"})
        assert stats.json()["code"] == 0
        assert admin not in line
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=20)
    assert process.returncode == 0, errors


def test_fault_options_and_loopback_check() -> None:
    assert _faults(["drop_sse", "http_429=2"]) == {"drop_sse": -1, "http_429": 2}
    with pytest.raises(NemodError):
        _faults(["bogus"])
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("localhost")
    assert not _is_loopback("0.0.0.0")

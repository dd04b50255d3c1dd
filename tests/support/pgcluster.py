"""A throwaway PostgreSQL cluster for tests: ``initdb`` into a temporary folder, ``pg_ctl``
on a free port on 127.0.0.1, dropped afterwards.

PostgreSQL refuses to run as root, and CI runs as root: then the cluster's folder is
given to the ``postgres`` user Debian's package creates and every server command runs as
that user through ``runuser``. The clients (the tests, nemod) connect over TCP as the
database user ``postgres`` with ``trust`` authentication on loopback only.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

#: Where Debian's ``postgresql`` package puts the server binaries.
DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"
SERVER_USER = "postgres"


def find_binaries() -> Path | None:
    """The newest folder holding ``initdb`` and ``pg_ctl``, or None."""
    for folder in sorted(glob.glob(DEBIAN_BINARIES), key=lambda p: int(Path(p).parent.name), reverse=True):
        if Path(folder, "initdb").is_file() and Path(folder, "pg_ctl").is_file():
            return Path(folder)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    """One cluster; :meth:`start` / :meth:`stop` may be called again (outage tests)."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.as_root = os.geteuid() == 0
        # As root the server user must reach the folder: /tmp, whatever TMPDIR says.
        self.root = Path(tempfile.mkdtemp(prefix="nemod-pg-", dir="/tmp" if self.as_root else None))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        if self.as_root:
            shutil.chown(self.root, SERVER_USER, SERVER_USER)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        self._counter = 0

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.binaries / tool), *args]
        if self.as_root:
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=self.root)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed: {result.stderr.strip()}\n{log}")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
                   " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        self._counter += 1
        name = f"nemod_test_{os.getpid()}_{self._counter}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

"""Fixtures shared by every suite: the thread-leak check (as in watchdog's tests), one short
test clip, a running ``nemod serve`` and the PostgreSQL cluster (``support/pgcluster.py``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import missing_tool
from support.pgcluster import PgCluster, find_binaries
from support.serve import make_server

from nemod.samples import make_clip
from nemod.serve.server import NemoServer

#: How long a thread a test started may take to finish after the test (a stopped observer
#: or server joins its threads well within this).
THREAD_GRACE_SECONDS = 5.0

#: Threads a library starts once per process and keeps by design, not leaks: tqdm's monitor
#: (created by faster-whisper's progress bars, even disabled ones).
PROCESS_THREADS = frozenset({"tqdm_monitor"})


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    """Fail a test that leaves a thread running: daemons, watchers, servers and pools must be
    stopped and joined by whoever started them. Threads of longer-scoped fixtures started
    before the test are not counted."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + THREAD_GRACE_SECONDS
    while True:
        left = [t for t in threading.enumerate()
                if t not in before and t.is_alive() and t.name not in PROCESS_THREADS]
        if not left or time.monotonic() > deadline:
            break
        left[0].join(0.1)
    assert not left, f"threads left running after the test: {sorted(t.name for t in left)}"


@pytest.fixture(autouse=True, scope="session")
def private_user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point ``$XDG_CACHE_HOME`` (where a config-less engine reassembles the Whisper base
    model) at a folder of the test session, for this process and the commands it starts:
    the suite never writes to the user's own cache."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-second 320×240 test clip with sound (H.264/AAC MP4)."""
    return make_clip(tmp_path_factory.mktemp("media") / "talk.mp4", width=320, height=240, seconds=1.0)


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NemoServer]:
    """A running ``nemod serve`` on loopback, its session files in ``tmp_path/serve``;
    ``@pytest.mark.serve(**settings)`` on the test or module overrides its settings."""
    marker = request.node.get_closest_marker("serve")
    started = make_server(tmp_path / "serve", **(marker.kwargs if marker else {}))
    yield started
    started.stop()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A running PostgreSQL cluster for the whole session.

    Skipped only when PostgreSQL's binaries are missing *and* we are not root (a
    developer's machine without the package); as root (CI) ``scripts/setup`` installs
    Debian's ``postgresql``, so missing binaries are a failure there, never a skip."""
    binaries = find_binaries()
    if binaries is None:
        missing_tool("no PostgreSQL server binaries under /usr/lib/postgresql (Debian's postgresql)")
    cluster = PgCluster(binaries)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """The URL of a fresh, empty database in the session's cluster."""
    return pg_cluster.new_database()

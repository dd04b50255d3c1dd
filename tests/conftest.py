"""Fixtures shared by every test folder: the PostgreSQL cluster (see ``pgcluster.py``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pgcluster import PgCluster, find_binaries


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A running PostgreSQL cluster for the whole session.

    Skipped only when PostgreSQL's binaries are missing *and* we are not root (a
    developer's machine without the package); as root (CI) ``scripts/setup`` installs
    Debian's ``postgresql``, so missing binaries are a failure there, never a skip."""
    binaries = find_binaries()
    if binaries is None:
        if os.geteuid() != 0:
            pytest.skip("no PostgreSQL binaries (install Debian's postgresql, or run scripts/setup as root)")
        pytest.fail("no PostgreSQL binaries under /usr/lib/postgresql: run scripts/setup (as root it installs them)")
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

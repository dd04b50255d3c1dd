"""The composition root: builds nemod's parts from a :class:`~nemod.config.Config`.

Nothing else constructs backends, stores or watchers; everything downstream gets
its dependencies passed in.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

import httpx

from nemod.backends.base import Backend
from nemod.cloud.backend import CloudBackend
from nemod.config import Config, EngineSettings
from nemod.engine.local import LocalBackend, LocalEngine
from nemod.errors import NemodError
from nemod.store.base import SQLITE_NAME, JobStore
from nemod.store.sqlite import SQLiteStore


def build_store(config: Config, *, read_only: bool = False) -> JobStore:
    """The job store ``config`` names: PostgreSQL at ``store:`` (migrated at open, pool sized
    for ``concurrency`` plus the loop), else SQLite in ``state_dir``.

    ``read_only`` is for readers (status): SQLite is opened without writing (raises
    FileNotFoundError before the daemon made it) and PostgreSQL without migrating.
    Raises StoreUnavailableError when the database cannot be reached, StoreError when its
    schema is newer than this nemod.
    """
    if config.store is None:
        return SQLiteStore(config.state_dir / SQLITE_NAME, read_only=read_only)
    from nemod.store.postgres import PostgresStore  # psycopg is only loaded when used

    return PostgresStore(config.store, pool_size=config.concurrency + 2, migrate=not read_only)


def build_engine(settings: EngineSettings) -> LocalEngine:
    """The local engine (Silero VAD, faster-whisper, ffmpeg) with ``settings``; used by the
    local backend, ``nemod explain`` and ``nemod serve``. Loads no model until first used."""
    return LocalEngine(settings)


def build_cloud_backend(
    config: Config,
    *,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> CloudBackend:
    """The NemoVideo cloud backend for ``config`` (token and client id in ``state_dir``).

    Raises NemodError when hosts share a store (``store:``) without one NemoVideo account:
    see :func:`check_shared_account`."""
    check_shared_account(config, os.environ)
    return CloudBackend(
        config.cloud, config.state_dir, transport=transport, sleep=sleep, clock=clock
    )


def check_shared_account(config: Config, env: Mapping[str, str]) -> None:
    """Cloud jobs on a shared store need every host on one NemoVideo account (``NEMO_TOKEN``).

    An anonymous token lives in one host's ``state_dir`` and sees only that host's
    sessions: a job re-claimed by another host would find its session "gone" and pay
    for a new one. Raises NemodError (one line) when ``NEMO_TOKEN`` is not set."""
    if config.store is not None and not env.get("NEMO_TOKEN", "").strip():
        raise NemodError(
            "cloud jobs on a shared job store need one NemoVideo account on every host: set NEMO_TOKEN "
            "(an anonymous token sees only its own host's sessions, so a re-claimed job would be paid twice)"
        )


def build_backend(config: Config) -> Backend:
    """The backend named by ``config.backend``."""
    if config.backend == "local":
        return LocalBackend(build_engine(config.engine))
    if config.backend == "cloud":
        return build_cloud_backend(config)
    raise NemodError(f"the {config.backend} backend is not available in this build")

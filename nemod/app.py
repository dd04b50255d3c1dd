"""The composition root: builds nemod's parts from a :class:`~nemod.config.Config`.

Nothing else constructs backends, stores or watchers; everything downstream gets
its dependencies passed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from nemod.backends.base import Backend
from nemod.cloud.backend import CloudBackend
from nemod.config import Config, EngineSettings
from nemod.engine.local import LocalBackend, LocalEngine
from nemod.errors import NemodError


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
    """The NemoVideo cloud backend for ``config`` (token and client id in ``state_dir``)."""
    return CloudBackend(
        config.cloud, config.state_dir, transport=transport, sleep=sleep, clock=clock
    )


def build_backend(config: Config) -> Backend:
    """The backend named by ``config.backend``."""
    if config.backend == "local":
        return LocalBackend(build_engine(config.engine))
    if config.backend == "cloud":
        return build_cloud_backend(config)
    raise NemodError(f"the {config.backend} backend is not available in this build")

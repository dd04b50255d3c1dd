"""The composition root: builds nemod's parts from a :class:`~nemod.config.Config`.

Nothing else constructs backends, stores or watchers; everything downstream gets
its dependencies passed in.
"""

from __future__ import annotations

from nemod.backends.base import Backend
from nemod.config import Config
from nemod.engine.local import LocalBackend, LocalEngine
from nemod.errors import NemodError


def build_backend(config: Config) -> Backend:
    """The backend named by ``config.backend``."""
    if config.backend == "local":
        return LocalBackend(LocalEngine(config.engine))
    raise NemodError(f"the {config.backend} backend is not available in this build")

"""Keeping nemod's native heap small: a long-running daemon's from spreading over many
malloc arenas, and a finished encoder's buffers from staying resident.

glibc gives threads that allocate at the same time separate malloc arenas (up to eight
per core) and rarely hands their freed fragments back; nemod's threads (workers, ffmpeg
log readers, observers, the scheduler) allocate side by side all day. ``nemod run`` caps
the arenas at two, the setting long-running Python services commonly use
(``MALLOC_ARENA_MAX=2``). In side-by-side hour-long soaks it kept the daemon's RSS about
2 MiB lower throughout, at no measurable cost to a captions job (docs/reliability.md).
A ``MALLOC_ARENA_MAX`` already in the environment wins, and on a system without glibc
(macOS, musl) nothing is changed.

Smart cutting opens one libx264 session (and one decoder) per run of re-encoded frames,
~100 MB at 1080p; glibc keeps their freed buffers, so each closed session's peak stayed
resident and an hour's splice peaked tens of MB higher. :func:`release_free_memory`
hands them back (``malloc_trim``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

#: glibc's ``mallopt`` parameter number for the arena cap (malloc.h: M_ARENA_MAX).
M_ARENA_MAX = -8
#: The cap nemod sets.
DEFAULT_ARENAS = 2


def limit_arenas(count: int = DEFAULT_ARENAS, environ: dict[str, str] | None = None) -> bool:
    """Cap glibc's malloc arenas at ``count``; True when the cap was set.

    False (nothing done) when ``MALLOC_ARENA_MAX`` is set in ``environ`` (default: this
    process's environment; glibc read it at start-up) or when the C library has no
    ``mallopt`` (not glibc). Call it before the daemon starts its threads.
    """
    if "MALLOC_ARENA_MAX" in (os.environ if environ is None else environ):
        return False
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(M_ARENA_MAX, count))


def release_free_memory() -> bool:
    """Give the C heap's free pages back to the system; True when glibc's ``malloc_trim``
    released any (False, nothing done, without glibc). Python objects are not collected
    here: what their owner dropped is already freed."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (has ``mallopt`` and ``malloc_trim``), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not all(hasattr(libc, symbol) for symbol in ("mallopt", "malloc_trim", "gnu_get_libc_version")):
        return None
    return libc

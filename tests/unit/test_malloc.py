"""The malloc arena cap ``nemod run`` sets, checked against the real glibc in a child."""

from __future__ import annotations

import ctypes.util
import os
import platform
import subprocess
import sys

import pytest

from nemod.malloc import limit_arenas

GLIBC = platform.libc_ver()[0] == "glibc" and ctypes.util.find_library("c") is not None

#: Eight threads allocate at the same time, then glibc's malloc_stats() lists the arenas.
CHILD = """
import ctypes, ctypes.util, os, sys, threading
from nemod.malloc import limit_arenas
if sys.argv[1] == "cap":
    assert limit_arenas()
barrier = threading.Barrier(8)
keep = []
def work():
    barrier.wait()
    keep.append([bytearray(4096) for _ in range(2000)])
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(ctypes.util.find_library("c")).malloc_stats()
"""


def arenas(mode: str) -> int:
    """How many arenas glibc reports after the child's threads ran (``cap``: capped)."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    result = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True,
                            env=env, check=True, timeout=60)
    return sum(line.startswith("Arena ") for line in result.stderr.splitlines())


@pytest.mark.skipif(not GLIBC, reason="the arena cap is a glibc setting")
def test_cap_keeps_concurrent_threads_in_two_arenas() -> None:
    assert arenas("default") > 2  # the contrast: without the cap the threads spread out
    assert arenas("cap") <= 2


def test_an_arena_count_from_the_environment_is_left_alone() -> None:
    assert limit_arenas(environ={"MALLOC_ARENA_MAX": "4"}) is False


#: 200 MB of 1 KB blocks from the C heap, all freed but the last (so the heap's top
#: stays and glibc's own trimming at free() cannot give the pages back), then the RSS
#: before and after release_free_memory().
TRIM_CHILD = """
import ctypes, ctypes.util
from nemod.malloc import release_free_memory
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")) // 1024
blocks = [libc.malloc(1024) for _ in range(200_000)]
for block in blocks:
    ctypes.memset(block, 1, 1024)
for block in blocks[:-1]:
    libc.free(block)
before = rss()
released = release_free_memory()
print(before, rss(), released)
"""


@pytest.mark.skipif(not GLIBC or not os.path.exists("/proc/self/status"), reason="malloc_trim is glibc's")
def test_release_free_memory_gives_freed_heap_pages_back() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    result = subprocess.run([sys.executable, "-c", TRIM_CHILD], capture_output=True, text=True,
                            env=env, check=True, timeout=60)
    before, after, released = result.stdout.split()
    assert released == "True"
    assert int(before) - int(after) > 150  # MB: the freed blocks' pages left the process

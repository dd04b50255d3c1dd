"""Driving a :class:`~nemod.daemon.Daemon` one iteration at a time, for the suites that run
it in-process (``pytest`` puts this folder on ``sys.path``; see ``pythonpath`` in
pyproject.toml).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from nemod.daemon import Daemon


def run_until(
    daemon: Daemon,
    until: Callable[[], bool],
    *,
    timeout: float = 10.0,
    what: str = "condition",
    detail: Callable[[], object] = lambda: "",
) -> None:
    """Call ``daemon.run_once()`` until ``until()`` is true, sleeping on the daemon's wakeup
    event (at most 50 ms) between iterations.

    Raises AssertionError naming ``what`` and showing ``detail()`` (e.g. the store's jobs)
    when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        daemon.run_once()
        if until():
            return
        daemon.wakeup.wait(0.05)
        daemon.wakeup.clear()
    raise AssertionError(f"{what} not met in {timeout} s; {detail()}")

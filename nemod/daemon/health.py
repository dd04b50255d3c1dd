"""The daemon's health snapshot (pure): what ``/healthz``, the beacon and ``nemod status``
report about one daemon."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nemod.daemon.leases import Active


def health_report(folders: Sequence[Mapping[str, Any]], active: Sequence[Active], counts: Mapping[str, int],
                  store_error: str | None, stopping: bool) -> dict[str, Any]:
    """``ok`` (not ``stopping``, no ``store_error`` and every folder reachable), the
    ``folders`` as given, the running ones of ``active`` with step and progress, job
    ``counts`` by state, and ``store`` (``ok``, ``error``)."""
    running = [{"job": a.job.key, "file": a.job.source.relative, "step": a.step, "progress": a.progress}
               for a in active if not a.done.is_set()]
    store = {"ok": store_error is None, "error": store_error}
    ok = not stopping and store_error is None and all(folder["reachable"] for folder in folders)
    return {"ok": ok, "folders": list(folders), "running": running, "jobs": dict(counts), "store": store}

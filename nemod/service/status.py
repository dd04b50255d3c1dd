"""What nemod is doing, as one snapshot: read by ``nemod status``, ``/metrics`` and the
status page.

A :class:`StatusSource` produces a :class:`StatusSnapshot` at a given time; the
snapshot is plain data and renders as JSON (:func:`to_json`) or as a table for a
person (:func:`render_text`). The real source over the job store lives in
:mod:`nemod.service.storeview`; tests build snapshots by hand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from nemod.service.beacon import DaemonState

#: Job states in display order (the store's ``JobState`` values).
STATES = ("queued", "waiting", "running", "done", "failed")


@dataclass(frozen=True)
class JobLine:
    """One job as status shows it. ``reason`` is the one-line error or waiting reason;
    times are seconds since the epoch."""

    id: str
    source: str
    rule: str
    state: str
    folder: str | None = None
    step: str | None = None
    progress: float | None = None
    attempts: int = 0
    updated_at: float | None = None
    not_before: float | None = None
    finished_at: float | None = None
    reason: str | None = None
    #: The host running the job (its ``host_id``), for running jobs.
    host: str | None = None
    #: The stored error code of a failed (or retrying) job.
    code: str | None = None


@dataclass(frozen=True)
class FolderCounts:
    """Jobs per state for one watched folder."""

    folder: str
    counts: Mapping[str, int]


@dataclass(frozen=True)
class Totals:
    """Aggregates for metrics: per final state (``done``/``failed``) the number of jobs
    and the sum of their turnaround (detection → finish) in seconds; bytes of the
    sources of done jobs; failed jobs per error code (the store's ``error_code`` column)."""

    finished: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    bytes_done: int = 0
    errors_by_code: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusSnapshot:
    """Everything status reports, taken at ``taken_at`` (seconds since the epoch)."""

    taken_at: float
    daemon: DaemonState
    counts: Mapping[str, int] = field(default_factory=dict)
    folders: tuple[FolderCounts, ...] = ()
    running: tuple[JobLine, ...] = ()
    queue: tuple[JobLine, ...] = ()
    failures: tuple[JobLine, ...] = ()
    totals: Totals = field(default_factory=Totals)
    store_ok: bool = True
    store_error: str | None = None
    #: This host's ``host_id`` and the store as shown to people (no password).
    host_id: str | None = None
    store_name: str | None = None


class StatusSource(Protocol):
    """Anything that can describe nemod's state at a moment."""

    def snapshot(self, now: float) -> StatusSnapshot:
        """The state at wall-clock ``now``; a broken store shows as ``store_ok=False``
        rather than an exception."""


def one_line(message: str | None, width: int = 160) -> str | None:
    """The first line of ``message``, cut to ``width`` characters."""
    if not message:
        return None
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def to_json(snapshot: StatusSnapshot) -> dict[str, Any]:
    """The snapshot as a JSON-ready dict (the ``nemod status --json`` format)."""
    daemon = asdict(snapshot.daemon)
    return {
        "taken_at": _iso(snapshot.taken_at),
        "daemon": {
            **daemon,
            "started_at": _iso(snapshot.daemon.started_at),
            "heartbeat_at": _iso(snapshot.daemon.heartbeat_at),
        },
        "host_id": snapshot.host_id,
        "store": {"ok": snapshot.store_ok, "error": snapshot.store_error, "name": snapshot.store_name},
        "counts": {state: snapshot.counts.get(state, 0) for state in STATES},
        "folders": [
            {"folder": folder.folder, "counts": {s: folder.counts.get(s, 0) for s in STATES}}
            for folder in snapshot.folders
        ],
        "running": [_job_json(job) for job in snapshot.running],
        "queue": [_job_json(job) for job in snapshot.queue],
        "recent_failures": [_job_json(job) for job in snapshot.failures],
        "credits": snapshot.daemon.credits,
    }


def _job_json(job: JobLine) -> dict[str, Any]:
    data = asdict(job)
    for key in ("updated_at", "not_before", "finished_at"):
        data[key] = _iso(data[key])
    return data


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _local(seconds: float | None, zone: dt.tzinfo | None) -> str:
    if seconds is None:
        return "-"
    moment = dt.datetime.fromtimestamp(seconds, zone or dt.UTC)
    return moment.strftime("%a %H:%M")


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), *(line(row) for row in rows)]


def _progress(job: JobLine) -> str:
    step = job.step or "starting"
    if job.progress is None:
        return step
    return f"{step} {job.progress * 100:.0f}%"


def render_text(snapshot: StatusSnapshot, zone: dt.tzinfo | None = None, limit: int = 10) -> str:
    """The snapshot as a few readable tables (``nemod status`` on a terminal).

    ``zone`` is the time zone for times shown (default UTC); ``limit`` caps the queue and
    failure lists.
    """
    daemon = snapshot.daemon
    lines = [f"daemon:   {daemon.detail}"]
    if snapshot.host_id:
        lines.append(f"host:     {snapshot.host_id}" + (f"  (store {snapshot.store_name})" if snapshot.store_name else ""))
    if daemon.status:
        lines.append(f"status:   {daemon.status}")
    unhealthy = [name for name, ok in daemon.health.items() if not ok]
    if daemon.up and unhealthy:
        lines.append(f"health:   failing: {', '.join(unhealthy)}")
    if not snapshot.store_ok:
        lines.append(f"store:    {snapshot.store_error}")
    credits = daemon.credits
    if credits and credits.get("balance") is not None:
        minimum = credits.get("minimum")
        low = " (below minimum)" if minimum is not None and credits["balance"] < minimum else ""
        checked = _local(credits.get("checked_at"), zone)
        lines.append(f"credits:  {credits['balance']}{low}, checked {checked}")
    totals = ", ".join(f"{snapshot.counts.get(state, 0)} {state}" for state in STATES)
    lines.append(f"jobs:     {totals}")
    if snapshot.folders:
        lines += ["", *_table(
            ("FOLDER", *(state.upper() for state in STATES)),
            [(f.folder, *(str(f.counts.get(s, 0)) for s in STATES)) for f in snapshot.folders],
        )]
    lines += ["", "running:" if snapshot.running else "running:  nothing"]
    if snapshot.running:
        lines += _table(
            ("JOB", "FILE", "RULE", "STEP", "ATTEMPT", "HOST"),
            [(job.id, job.source, job.rule, _progress(job), str(job.attempts), job.host or "")
             for job in snapshot.running],
        )
    lines += ["", "queue:" if snapshot.queue else "queue:    empty"]
    if snapshot.queue:
        rows = []
        for job in snapshot.queue[:limit]:
            when = "now" if not job.not_before or job.not_before <= snapshot.taken_at else (
                _local(job.not_before, zone))
            rows.append((job.id, job.source, job.rule, job.state, when, job.reason or ""))
        lines += _table(("JOB", "FILE", "RULE", "STATE", "STARTS", "WHY"), rows)
        hidden = len(snapshot.queue) - limit
        if hidden > 0:
            lines.append(f"… and {hidden} more")
    lines += ["", "recent failures:" if snapshot.failures else "recent failures: none"]
    if snapshot.failures:
        lines += _table(
            ("JOB", "FILE", "RULE", "WHEN", "REASON"),
            [(job.id, job.source, job.rule, _local(job.finished_at or job.updated_at, zone),
              job.reason or "") for job in snapshot.failures[:limit]],
        )
    return "\n".join(lines) + "\n"

"""``/metrics``: a status snapshot in the Prometheus text exposition format (0.0.4).

Pure: :func:`render` turns a :class:`~nemod.service.status.StatusSnapshot` into text.
The figures come from the job store at scrape time, so they survive restarts and
every value is a gauge (job counts can shrink when old records are pruned).

====================================  =====================================================
``nemod_up``                          1 while the daemon's heartbeat is fresh
``nemod_healthy{check}``              1/0 per health check (``store``, ``watchers``, …)
``nemod_jobs{state}``                 jobs per state
``nemod_folder_jobs{folder,state}``   jobs per watched folder and state
``nemod_job_progress{job,step}``      progress (0..1) of each running job
``nemod_job_turnaround_seconds``      summary (``_sum``/``_count``) of detection → finish,
                                      per ``outcome`` (done, failed)
``nemod_source_bytes_done``           bytes of sources processed successfully
``nemod_job_errors{code}``            failed jobs per error code (API code, ``http_NNN``,
                                      ``other``)
``nemod_credits``                     last known cloud credit balance (cloud backend only)
``nemod_credits_minimum``             the configured minimum
``nemod_last_heartbeat_timestamp_seconds``  the daemon's last heartbeat
``nemod_build_info{version}``         always 1
====================================  =====================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from nemod import __version__
from nemod.service.status import STATES, StatusSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label(value: str) -> str:
    """Escape a label value: backslash, double quote and newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{escape_label(value)}"' for key, value in labels.items()) + "}"


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str,
        samples: Iterable[tuple[Mapping[str, str], float]], suffix: str = "",
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{suffix}{_labels(labels)} {_number(value)}")

    def raw(self, line: str) -> None:
        self.lines.append(line)


def render(snapshot: StatusSnapshot) -> str:
    """The Prometheus text for ``snapshot`` (ends with a newline)."""
    out = _Writer()
    daemon = snapshot.daemon
    out.family("nemod_build_info", "gauge", "nemod version.", [({"version": __version__}, 1)])
    out.family("nemod_up", "gauge", "1 while the daemon's heartbeat is fresh.", [({}, daemon.up)])
    health = {"store": snapshot.store_ok, **dict(daemon.health)}
    out.family(
        "nemod_healthy", "gauge", "1 when the named health check passes.",
        [({"check": name}, ok) for name, ok in sorted(health.items())],
    )
    if daemon.heartbeat_at is not None:
        out.family(
            "nemod_last_heartbeat_timestamp_seconds", "gauge", "The daemon's last heartbeat.",
            [({}, round(daemon.heartbeat_at, 3))],
        )
    out.family(
        "nemod_jobs", "gauge", "Jobs per state.",
        [({"state": state}, snapshot.counts.get(state, 0)) for state in STATES],
    )
    out.family(
        "nemod_folder_jobs", "gauge", "Jobs per watched folder and state.",
        [({"folder": f.folder, "state": s}, f.counts.get(s, 0))
         for f in snapshot.folders for s in STATES],
    )
    out.family(
        "nemod_job_progress", "gauge", "Progress (0..1) of each running job.",
        [({"job": job.id, "step": job.step or "starting"}, job.progress or 0.0)
         for job in snapshot.running],
    )
    name = "nemod_job_turnaround_seconds"
    out.raw(f"# HELP {name} Seconds from detection to finish of finished jobs.")
    out.raw(f"# TYPE {name} summary")
    for outcome in ("done", "failed"):
        count, total = snapshot.totals.finished.get(outcome, (0, 0.0))
        out.raw(f'{name}_sum{{outcome="{outcome}"}} {_number(round(total, 3))}')
        out.raw(f'{name}_count{{outcome="{outcome}"}} {count}')
    out.family(
        "nemod_source_bytes_done", "gauge", "Bytes of source files processed successfully.",
        [({}, snapshot.totals.bytes_done)],
    )
    out.family(
        "nemod_job_errors", "gauge", "Failed jobs per error code.",
        [({"code": code}, n) for code, n in sorted(snapshot.totals.errors_by_code.items())],
    )
    credits = daemon.credits or {}
    if credits.get("balance") is not None:
        out.family("nemod_credits", "gauge", "Last known cloud credit balance.",
                   [({}, float(credits["balance"]))])
    if credits.get("minimum") is not None:
        out.family("nemod_credits_minimum", "gauge", "Configured minimum credit balance.",
                   [({}, float(credits["minimum"]))])
    return "\n".join(out.lines) + "\n"

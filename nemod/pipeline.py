"""One job, start to finish: check the file, pick the rule, run the backend, publish.

Used by ``nemod process`` (one file, now) and by the daemon's workers. The clock
is passed in; all media, network and file-system work happens in the backend and
in :mod:`nemod.outputs`.
"""

from __future__ import annotations

import datetime as dt
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nemod import __version__
from nemod.backends.base import Backend, JobContext, JobRequest
from nemod.config import Config, Rule, WatchFolder
from nemod.errors import PermanentJobError
from nemod.matching import match_rule, unsupported_reason
from nemod.outputs import publish, remove_work_dir, render_name, work_dir


@dataclass(frozen=True)
class JobOutcome:
    """Where a finished job's files went and how long it took."""

    rule: str
    outputs: dict[str, Path]
    summary: str
    seconds: float


def choose_rule(config: Config, source: Path, watch: WatchFolder | None) -> Rule:
    """The rule for ``source``; raises :class:`PermanentJobError` (one sentence) when the file
    cannot be processed or no rule matches."""
    try:
        size = source.stat().st_size
    except FileNotFoundError as exc:
        raise PermanentJobError(f"{source.name} no longer exists.") from exc
    if not source.is_file():
        raise PermanentJobError(f"{source.name} is not a regular file.")
    reason = unsupported_reason(source.name, size, config.backend)
    if reason:
        raise PermanentJobError(reason)
    result = match_rule(config.rules, source.name, size, watch)
    if result.rule is None:
        raise PermanentJobError(f"no rule matches {source.name} ({'; '.join(result.reasons)}).")
    return result.rule


def run_job(
    config: Config,
    backend: Backend,
    source: Path,
    output_folder: Path,
    *,
    job_id: str,
    rule: Rule,
    context: JobContext | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> JobOutcome:
    """Process ``source`` with ``rule`` on ``backend`` and publish into ``output_folder``.

    Raises what the backend raises (see :class:`nemod.backends.base.Backend`); the
    scratch folder is removed whatever happens.
    """
    context = context or JobContext()
    started = time.monotonic()
    scratch = work_dir(output_folder, job_id)
    try:
        rendition = backend.process(JobRequest(job_id, source, rule, scratch), context)
        context.checkpoint("publish")
        files = {".mp4": rendition.video, **{f".{kind}": path for kind, path in rendition.captions.items()}}
        base = render_name(rule.output, stem=source.stem, rule=rule.name, ext=source.suffix.lstrip("."), now=now())
        base = base[: -len(".mp4")]
        subfolder = output_folder / Path(base).parent
        log = {
            "job": job_id,
            "source": str(source),
            "rule": rule.name,
            "instruction": rule.instruction,
            "backend": backend.name,
            "timeline": rendition.summary,
            "draft": rendition.draft,
            "finished_at": now().isoformat(),
            "seconds": round(time.monotonic() - started, 3),
            "versions": {"nemod": __version__, "python": platform.python_version()},
            **rendition.details,
        }
        outputs = publish(files, subfolder, Path(base).name, log)
    finally:
        remove_work_dir(scratch)
    return JobOutcome(rule.name, outputs, rendition.summary, time.monotonic() - started)

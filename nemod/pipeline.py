"""One job, start to finish: check the file, pick the rule, run the backend, publish.

Used by ``nemod process`` (one file, now) and by the daemon's workers. The clock
is passed in; all media, network and file-system work happens in the backend and
in :mod:`nemod.outputs`.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nemod import __version__
from nemod.backends.base import Backend, JobContext, JobRequest, Ledger
from nemod.config import Config, Rule, WatchFolder
from nemod.draft import to_draft
from nemod.errors import PermanentJobError
from nemod.matching import match_rule, unsupported_reason
from nemod.names import readable
from nemod.outputs import (
    attempt_work_dir,
    publish,
    remove_attempt_dirs,
    remove_work_dir,
    render_name,
    work_dir,
)


@dataclass(frozen=True)
class JobOutcome:
    """Where a finished job's files went and how long it took."""

    rule: str
    outputs: dict[str, Path]
    summary: str
    seconds: float


#: The ledger key of the publish step; its remote id is the JSON of the published paths.
PUBLISHED = "published"


def previous_publication(
    ledger: Ledger, job_id: str, folder: Path, base: str
) -> dict[str, Path] | None:
    """The outputs an earlier attempt of ``job_id`` already published, or None.

    A crash can come between publishing and recording the job as done; the ledger (or,
    when the crash came mid-publish, the job id inside ``<base>*.log.json``) tells. A
    publication that stopped half-way (no MP4 yet) is removed so it can be redone.
    """
    entry = ledger.get(PUBLISHED)
    if entry is None:
        return None
    if entry.remote_id:
        outputs = {suffix: Path(path) for suffix, path in json.loads(entry.remote_id).items()}
        last = final_output(outputs)
        return outputs if last is not None and last.exists() else None
    for log_file in folder.glob(f"{glob.escape(base)}*.log.json"):
        try:
            log = json.loads(log_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(log, dict) or log.get("job") != job_id:
            continue
        paths = {suffix: folder / name for suffix, name in log.get("outputs", {}).items()}
        last = final_output(paths)
        if last is not None and last.exists():
            return paths
        for path in paths.values():
            path.unlink(missing_ok=True)
    return None


def final_output(outputs: dict[str, Path]) -> Path | None:
    """The file whose presence means a publication is complete: the MP4, or (a timeline-only
    job) the last file placed (see :func:`nemod.outputs.publish`)."""
    if ".mp4" in outputs:
        return outputs[".mp4"]
    placed = [path for suffix, path in outputs.items() if suffix != ".log.json"]
    return placed[-1] if placed else None


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
    watch: WatchFolder | None = None,
    attempt: int | None = None,
) -> JobOutcome:
    """Process ``source`` with ``rule`` on ``backend`` and publish into ``output_folder``;
    ``watch`` is the source's watch folder (it says how exported timelines reference it).

    ``attempt`` (the job's lease token) gives this attempt a scratch folder of its own
    (:func:`nemod.outputs.attempt_work_dir`); None: one folder per job.

    Raises what the backend raises (see :class:`nemod.backends.base.Backend`); the
    scratch folder is removed whatever happens.
    """
    context = context or JobContext()
    started = time.monotonic()
    base = render_name(
        rule.output, stem=readable(source.stem), rule=rule.name, ext=source.suffix.lstrip("."), now=now()
    )
    base = base[: -len(".mp4")]
    subfolder = output_folder / Path(base).parent
    if attempt is not None:  # earlier attempts' scratch (a kill can land mid-cleanup)
        remove_attempt_dirs(output_folder, job_id, below=attempt)
    previous = previous_publication(context.ledger, job_id, subfolder, Path(base).name)
    if previous is not None:
        return JobOutcome(rule.name, previous, "already published", time.monotonic() - started)
    scratch = work_dir(output_folder, job_id) if attempt is None else attempt_work_dir(output_folder, job_id, attempt)
    try:
        media_url = watch.media_url(source) if watch is not None else None
        rendition = backend.process(JobRequest(job_id, source, rule, scratch, media_url), context)
        context.checkpoint("publish")
        files = {**{f".{kind}": path for kind, path in rendition.captions.items()}, **rendition.files}
        if rendition.video is not None:
            files[".mp4"] = rendition.video
        log = {
            "job": job_id,
            "source": str(source),
            "rule": rule.name,
            "instruction": rule.instruction,
            "backend": backend.name,
            "timeline": rendition.summary,
            "draft": rendition.draft if rendition.draft is not None else to_draft(rendition.timeline),
            "finished_at": now().isoformat(),
            "seconds": round(time.monotonic() - started, 3),
            "versions": {"nemod": __version__, "python": platform.python_version()},
            **rendition.details,
        }
        context.ledger.record(PUBLISHED)
        outputs = publish(files, subfolder, Path(base).name, log)
        context.ledger.record(PUBLISHED, json.dumps({k: str(v) for k, v in outputs.items()}))
    finally:
        if attempt is not None:
            # also what an earlier attempt re-created after this one began (it was fenced
            # out but still running, then killed): nothing of this job's past stays behind
            remove_attempt_dirs(output_folder, job_id, below=attempt)
        remove_work_dir(scratch)
    return JobOutcome(rule.name, outputs, rendition.summary, time.monotonic() - started)

"""What a person can do to jobs and folders, shared by the commands (``nemod retry``,
``nemod forget``, ``nemod pause``/``resume``) and the dashboard's buttons: one code path
for each action, below both."""

from __future__ import annotations

import shutil
from pathlib import Path

from nemod.config import Config
from nemod.daemon.pauses import PausedFolders
from nemod.errors import NemodError
from nemod.store import Job, JobState, JobStore, SourceRef, fingerprint


def restore_source(config: Config, job: Job) -> bool:
    """Move a failed job's source back from the failed folder; True when it was moved."""
    watch = config.watch_for(job.source.root)
    if watch is None:
        return False
    source = watch.path / job.source.relative
    if source.exists():
        return False
    parked = watch.failed / job.source.relative
    if not parked.is_file():
        return False
    source.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(parked), str(source))
    parked.with_name(f"{parked.stem}.error.txt").unlink(missing_ok=True)
    return True


def retry_job(config: Config, store: JobStore, job_id: int) -> Job:
    """Queue the failed job ``job_id`` again, its source moved back from ``failed/``
    (``nemod retry JOB`` and the dashboard's retry button). Raises NemodError when the
    job is unknown or not failed; returns the job as it was."""
    job = store.get(job_id)
    if job is None or job.state is not JobState.FAILED:
        what = f"is {job.label}" if job else "does not exist"
        raise NemodError(f"job {job_id} {what}; only failed jobs can be retried")
    restore_source(config, job)
    store.retry(job.id)
    return job


def set_paused(config: Config, folder: str, *, paused: bool) -> str:
    """Pause or resume the watch folder named ``folder`` (its ``id:``, its key in the store
    or its path); returns a sentence for the person. Raises NemodError for an unknown folder."""
    watch = config.watch_for(folder)
    if watch is None:
        wanted = Path(folder).expanduser().resolve()
        watch = next((w for w in config.watches if w.path == wanted), None)
    if watch is None:
        raise NemodError(f"no watch folder {folder!r} in the configuration")
    PausedFolders.for_state_dir(config.state_dir).set(watch.key, paused=paused)
    if paused:
        return f"{watch.key} is paused: its files are still queued but not started"
    return f"{watch.key} is resumed"


def forget_source(store: JobStore, source: SourceRef | None, path: Path | None) -> int:
    """Delete the jobs of a file, by its content fingerprint (when ``path`` is readable)
    and by its store name ``source`` (``nemod forget`` and the dashboard); returns how many
    jobs were deleted (running jobs are kept)."""
    print_ = fingerprint(path) if path is not None and path.is_file() else None
    if print_ is None and source is None:
        return 0
    return store.forget(fingerprint=print_, source=source)

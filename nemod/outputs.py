"""Publishing a job's results into its output folder: naming, collisions, atomic writes.

Results are rendered into a hidden scratch folder inside the output folder
(``.nemod-work/<job>``, same file system) and moved into place with a hard link
(which fails instead of overwriting) or, where links are unsupported, a rename
after an existence check. A reader of the output folder never sees a half file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import glob
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nemod.errors import PermanentJobError
from nemod.names import WORK_DIR_NAME


def render_name(template: str, *, stem: str, rule: str, ext: str, now: dt.datetime) -> str:
    """Expand an output name template (``{stem}``, ``{rule}``, ``{date}``, ``{time}``, ``{ext}``).

    The template was checked by ``nemod check``; this re-checks that the result stays
    inside the output folder and raises :class:`PermanentJobError` if it would not.
    """
    name = template.format(
        stem=stem, rule=rule, ext=ext, date=now.strftime("%Y-%m-%d"), time=now.strftime("%H%M%S")
    )
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts:
        raise PermanentJobError(f"the output name {name!r} would leave the output folder.")
    if not name.lower().endswith(".mp4"):
        name += ".mp4"
    return name


def work_dir(output: Path, job_id: str) -> Path:
    """The job's scratch folder inside ``output`` (created).

    Concurrent jobs share the ``.nemod-work`` parent, and a finishing job removes it once
    empty; creation is retried when that removal lands between the two ``mkdir`` steps.
    """
    path = output / WORK_DIR_NAME / job_id
    for _ in range(10):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except FileNotFoundError:
            continue
        return path
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_base(folder: Path, base: str, suffixes: tuple[str, ...]) -> str:
    """A base name for which every ``base + suffix`` in ``folder`` is unused: ``talk``, ``talk-1``, …"""
    for attempt in range(10_000):
        candidate = base if attempt == 0 else f"{base}-{attempt}"
        if not any((folder / f"{candidate}{suffix}").exists() for suffix in suffixes):
            return candidate
    raise PermanentJobError(f"too many files named {base}* in {folder}.")


def _place(source: Path, target: Path) -> bool:
    """Put ``source`` at ``target`` without ever overwriting an existing ``target``.

    Returns True when ``target`` is a hard link (``source`` still exists and the caller
    removes it), False when the file system has no hard links and ``source`` was renamed.
    Raises FileExistsError when ``target`` is taken.
    """
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if target.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from exc
        source.replace(target)
        return False
    return True


def publish(
    files: Mapping[str, Path], folder: Path, base: str, log: Mapping[str, Any]
) -> dict[str, Path]:
    """Move ``files`` (suffix → scratch path, e.g. ``{".mp4": …, ".srt": …}``) into ``folder``
    as ``base + suffix``, plus ``base.log.json`` written from ``log``.

    A name already taken gets ``-1``, ``-2``, … (for all files together). The MP4 (with no
    MP4, the last of ``files``) is placed last so that its appearance means the set is
    complete. Returns the final paths, in the order they were placed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    suffixes = (*files.keys(), ".log.json")
    log_path = next(iter(files.values())).parent / "job.log.json"
    last = ".mp4" if ".mp4" in files else list(files)[-1]
    ordered = [s for s in files if s != last] + [".log.json", last]
    sources = {**files, ".log.json": log_path}
    for _ in range(20):
        chosen = _free_base(folder, base, suffixes)
        final_log = {**log, "outputs": {suffix: f"{chosen}{suffix}" for suffix in ordered}}
        log_path.write_text(json.dumps(final_log, indent=2, default=str), encoding="utf-8")
        linked: dict[str, Path] = {}
        try:
            for suffix in ordered:
                target = folder / f"{chosen}{suffix}"
                if _place(sources[suffix], target):
                    linked[suffix] = target
        except FileExistsError:
            # Another writer took the name between the check and the link: drop our links
            # (the scratch files are still there) and try the next free name.
            for target in linked.values():
                target.unlink(missing_ok=True)
            continue
        for suffix in linked:
            sources[suffix].unlink(missing_ok=True)
        return {suffix: folder / f"{chosen}{suffix}" for suffix in ordered}
    raise PermanentJobError(f"could not find a free output name for {base} in {folder}.")


def attempt_work_dir(output: Path, job_id: str, attempt: int) -> Path:
    """The scratch folder of one attempt (lease) at ``job_id``: ``<job_id>.<attempt>``,
    created after removing the folders of the job's earlier attempts.

    Two attempts never share a folder: a host that lost its lease but still renders (cut
    off from the database) cannot overwrite or delete the files of the host that took the
    job over. Only earlier attempts (lower lease tokens, fenced out) are removed, never a
    later one's."""
    remove_attempt_dirs(output, job_id, below=attempt)
    return work_dir(output, f"{job_id}.{attempt}")


def remove_attempt_dirs(output: Path, job_id: str, *, below: int) -> None:
    """Remove the scratch folders of ``job_id``'s attempts numbered below ``below`` (and
    the folder of a version that named scratch by job only)."""
    parent = output / WORK_DIR_NAME
    if not parent.is_dir():
        return
    for folder in [parent / job_id, *parent.glob(f"{glob.escape(job_id)}.*")]:
        suffix = folder.name[len(job_id) + 1:]
        earlier = folder.name == job_id or (suffix.isdigit() and int(suffix) < below)
        if earlier and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        parent.rmdir()  # once empty (work_dir copes with this racing its mkdir)


def remove_work_dir(path: Path) -> None:
    """Delete a job's scratch folder (and the ``.nemod-work`` parent once empty)."""
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()

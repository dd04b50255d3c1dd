"""What happens to a source file after its job: moved to the done or failed folder (never
overwriting), deleted when a rule says so, and the ``<stem>.error.txt`` note."""

from __future__ import annotations

import shutil
from pathlib import Path

import structlog

from nemod.config import Rule, WatchFolder
from nemod.names import shown

log = structlog.get_logger("nemod.daemon")


def _free_path(folder: Path, relative: str) -> Path:
    """``folder/relative``, or ``name-1.ext``, ``name-2.ext``… when taken."""
    target = folder / relative
    candidate, counter = target, 0
    while candidate.exists() or candidate.is_symlink():
        counter += 1
        candidate = target.with_name(f"{target.stem}-{counter}{target.suffix}")
    return candidate


def move_aside(source: Path, folder: Path, relative: str) -> Path:
    """Move ``source`` to ``folder/relative`` without overwriting; returns where it went."""
    target = _free_path(folder, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(target))
    return target


def write_failure(
    source: Path, watch: WatchFolder, relative: str, sentence: str, *, move: bool
) -> Path:
    """Move the source to the failed folder (when ``move`` and it still exists) and write
    ``<stem>.error.txt`` there with ``sentence``; returns the note's path."""
    if move and source.is_file():  # never move away a folder that took the file's name
        moved = move_aside(source, watch.failed, relative)
        note = moved.with_name(f"{moved.stem}.error.txt")
    else:
        note = _free_path(watch.failed, str(Path(relative).with_name(f"{source.stem}.error.txt")))
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text(shown(sentence.strip()) + "\n", encoding="utf-8")
    return note


def tidy_source(source: Path, watch: WatchFolder, rule: Rule, relative: str) -> None:
    """Apply the ``on_success`` policy (the rule's, else the folder's) to a done job's source:
    ``delete`` it, ``move`` it to the done folder, or ``leave`` it. Failures are logged (the
    job and file come from the attempt's bound log context)."""
    policy = rule.on_success or watch.on_success
    try:
        if policy == "delete":
            source.unlink(missing_ok=True)
            log.info("source_deleted")
        elif policy == "move" and source.exists():
            target = move_aside(source, watch.done, relative)
            log.info("source_moved", to=str(target))
    except OSError as exc:
        log.warning("source_not_tidied", error=str(exc))


def record_failure(source: Path, watch: WatchFolder, rule: Rule | None, relative: str, sentence: str) -> None:
    """Apply the ``on_failure`` policy (the rule's, else the folder's) to a failed job's
    source and write its note; a note that cannot be written is logged."""
    policy = (rule.on_failure if rule and rule.on_failure else None) or watch.on_failure
    try:
        write_failure(source, watch, relative, sentence, move=policy == "move")
    except OSError as exc:
        log.warning("failure_note_not_written", error=str(exc))

"""One try at one job: what it runs on, resolved once, and what its outcome does to the job.

:func:`locate` resolves an :class:`Attempt` when a worker takes a claimed job: the config
snapshot it runs under (a SIGHUP reload during the job does not change it), its watch
folder and its source path on this host; :func:`ready` checks that it can start and adds
its rule. :func:`transition_for` is the pure mapping from how the attempt ended (an
exception) to what happens to the job (:class:`Transition`); the daemon applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from nemod.config import Config, Rule, WatchFolder
from nemod.daemon.options import DaemonOptions, backoff
from nemod.daemon.pauses import PausedFolders
from nemod.errors import (
    LeaseLostError,
    NemodError,
    PermanentJobError,
    StoppingError,
    WaitingError,
    error_code_for,
)
from nemod.pipeline import choose_rule
from nemod.store.base import Job

if TYPE_CHECKING:
    from nemod.service.runtime import ServiceHooks

#: The rule name of a job for a file no rule matches (it fails with the reason why).
NO_RULE = "-"


@dataclass(frozen=True)
class Attempt:
    """A claimed ``job`` with what it runs on: the ``config`` snapshot, its ``watch`` folder
    (None when no longer configured), its ``source`` on this host (just its relative path
    when the folder is not configured here: good for messages, not for opening) and its
    ``rule`` (None until :func:`ready` found it)."""

    job: Job
    config: Config
    watch: WatchFolder | None
    source: Path
    rule: Rule | None = None


def locate(job: Job, config: Config) -> Attempt:
    """The attempt at ``job`` under ``config``; never raises."""
    source = config.locate(job.source.root, job.source.relative) or Path(job.source.relative)
    return Attempt(job, config, config.watch_for(job.source.root), source)


def ready(attempt: Attempt, options: DaemonOptions) -> Attempt:
    """``attempt`` with its rule, once it can start. Raises :class:`PermanentJobError` (its
    folder is gone, it was interrupted too often, its file disappeared, no rule fits) or
    :class:`WaitingError` (its folder cannot be reached)."""
    job, config, watch, source = attempt.job, attempt.config, attempt.watch, attempt.source
    if watch is None:
        raise PermanentJobError(f"its watch folder {job.source.root} is no longer configured.")
    if job.attempts > config.max_attempts:
        raise PermanentJobError(
            f"nemod was interrupted {job.attempts - 1} times while processing {source.name}, so it gave up."
        )
    if not source.is_file():
        if not watch.path.is_dir():
            raise WaitingError(f"the watch folder {watch.path} cannot be reached",
                               reason="unreachable", delay=options.unreachable_retry_seconds)
        raise PermanentJobError(f"{source.name} disappeared before it could be processed.")
    if job.rule == NO_RULE:
        return replace(attempt, rule=choose_rule(config, source, watch))  # raises why nothing matches
    try:
        return replace(attempt, rule=config.rule(job.rule))
    except KeyError:
        raise PermanentJobError(f"the rule {job.rule!r} no longer exists in the configuration.") from None


def check_window(attempt: Attempt, options: DaemonOptions, service: ServiceHooks | None) -> None:
    """Raise :class:`WaitingError` (reason ``paused``) while a :func:`ready` attempt's folder
    is paused, and (reason ``schedule``) while ``service`` holds it outside its processing
    window."""
    assert attempt.watch is not None and attempt.rule is not None
    if attempt.watch.key in PausedFolders.for_state_dir(attempt.config.state_dir).paused():
        raise WaitingError("its folder is paused", reason="paused", delay=options.paused_retry_seconds)
    hold = service.hold(attempt.watch, attempt.rule) if service is not None else None
    if hold is not None:
        raise WaitingError("outside its processing window", reason="schedule", delay=hold)


@dataclass(frozen=True)
class Transition:
    """What an ended attempt does to its job: ``abandon`` (the lease is gone: touch nothing),
    ``release`` (back to the queue as it was: a graceful stop), ``wait`` (``reason``, for
    ``delay`` seconds), ``retry`` (after ``delay`` seconds) or ``fail`` (for good).
    ``message`` is the error or the one-sentence reason; ``unexpected`` asks for the
    traceback in the log (not a nemod or OS error)."""

    kind: Literal["abandon", "release", "wait", "retry", "fail"]
    message: str = ""
    delay: float = 0.0
    reason: str = ""
    unexpected: bool = False
    #: The failure's code for the store's ``error_code`` column (``fail``/``retry``).
    code: str = "other"


def transition_for(
    error: BaseException, attempt: Attempt, options: DaemonOptions, *, lost: bool, stopping: bool, cancelled: bool,
) -> Transition:
    """The transition for an attempt that raised ``error``. ``lost``: its lease was taken;
    ``stopping``: the daemon is stopping; ``cancelled``: the job was told to stop. Pure."""
    if isinstance(error, LeaseLostError):
        return Transition("abandon", "lease lost")
    if isinstance(error, StoppingError):
        return Transition("release")
    if isinstance(error, WaitingError):
        delay = error.delay if error.delay is not None else options.waiting_default_seconds
        return Transition("wait", str(error), delay, error.reason)
    if isinstance(error, PermanentJobError):
        return Transition("fail", str(error), code=error_code_for(error))
    if lost:
        return Transition("abandon", "lease lost")
    if stopping and cancelled:
        return Transition("release")
    message = str(error) or type(error).__name__
    unexpected = not isinstance(error, NemodError | OSError)
    job = attempt.job
    if job.attempts >= attempt.config.max_attempts:
        sentence = f"{attempt.source.name} failed {job.attempts} times; the last error was: {message.rstrip('.')}."
        return Transition("fail", sentence, unexpected=unexpected, code=error_code_for(error))
    asked: float | None = getattr(error, "delay", None)
    delay = asked if asked is not None else backoff(job.attempts, options.retry_base_seconds, options.retry_max_seconds)
    return Transition("retry", message, float(delay), unexpected=unexpected, code=error_code_for(error))

"""nemod's one exception tree.

::

    NemodError                       base of everything nemod raises on purpose
    ├── ConfigError                  bad config or rule file; carries every Problem found
    ├── JobError                     a job could not be done
    │   ├── PermanentJobError        retrying will not help (corrupt file, unsupported type,
    │   │                            instruction the engine does not understand)
    │   └── RetryableJobError        try again later; ``delay`` says when
    │       └── WaitingError         not a failure: the job waits (credits, processing window)
    ├── LeaseLostError               another worker took this job over: stop, report nothing
    ├── MediaError                   ffmpeg/probe failures (wrapped into JobError by the pipeline)
    ├── StoreError                   the job store cannot be used as configured
    │   └── StoreUnavailableError    the store cannot be reached now (database down): retry later
    └── BackendError                 a NemoVideo API error; carries the API ``code`` / HTTP status

The CLI turns any ``NemodError`` into one line on stderr and an exit code; a
traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class NemodError(Exception):
    """Base class: an error nemod understands and can explain in one line."""


@dataclass(frozen=True)
class Problem:
    """One configuration problem, located as ``file:line key.path: message``."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        key = f" {self.key}" if self.key else ""
        return f"{where}{key}: {self.message}"


class ConfigError(NemodError):
    """The configuration or a rule file is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        first = str(self.problems[0]) if self.problems else "invalid configuration"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(first + more)


class JobError(NemodError):
    """A job could not be completed."""


class PermanentJobError(JobError):
    """Retrying the job will not help; the message is one human sentence for ``.error.txt``."""


class RetryableJobError(JobError):
    """A transient failure; try again after ``delay`` seconds (None: the caller's backoff)."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class WaitingError(RetryableJobError):
    """The job cannot start yet for a reason that is not a failure (``reason``: e.g. credits)."""

    def __init__(self, message: str, reason: str, delay: float | None = None) -> None:
        super().__init__(message, delay)
        self.reason = reason


class LeaseLostError(NemodError):
    """The job's lease was taken over by another worker (fencing): abandon the work."""


class StoppingError(NemodError):
    """Raised at a job's checkpoint once a graceful stop began: the job goes back to the queue."""


class StoreError(NemodError):
    """The job store cannot be used (e.g. its schema is newer than this nemod)."""


class StoreUnavailableError(StoreError):
    """The job store cannot be reached right now (PostgreSQL stopped or unreachable).

    Not a job failure: the daemon keeps its running steps, stops claiming and retries
    with backoff until the store answers again."""


class MediaError(NemodError):
    """A media file could not be probed or rendered."""


class BackendError(NemodError):
    """An error answered by a NemoVideo-compatible API.

    ``code`` is the envelope code (1001, 1002, 2001, 4001, 4002) or None;
    ``status`` is the HTTP status when that is what signalled the error.
    """

    def __init__(self, message: str, code: int | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


_API_CODE = re.compile(r"\b(?:code|error)[\s:=#]*(\d{4})\b", re.IGNORECASE)
_HTTP_STATUS = re.compile(r"\bHTTP[\s:]*(\d{3})\b")


def code_from_text(message: str | None) -> str:
    """A coarse code for a failure message: a NemoVideo API code (``code 2001``) →
    ``"2001"``; an HTTP status → ``"http_503"``; anything else → ``"other"``.

    Used once, when a failure is written (and to fill the code column of stores written
    before it existed); readers take the stored column."""
    if not message:
        return "other"
    match = _API_CODE.search(message)
    if match:
        return match.group(1)
    match = _HTTP_STATUS.search(message)
    if match:
        return f"http_{match.group(1)}"
    return "other"


def error_code_for(error: BaseException) -> str:
    """The code a failure caused by ``error`` is stored with: the API code or HTTP status of
    a :class:`BackendError` anywhere in its cause chain, else :func:`code_from_text`."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BackendError):
            if current.code is not None:
                return str(current.code)
            if current.status is not None:
                return f"http_{current.status}"
        current = current.__cause__ or current.__context__
    return code_from_text(str(error))

"""The pure mapping from how an attempt ended to what happens to its job."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemod.config import Config
from nemod.daemon import Attempt, DaemonOptions, transition_for
from nemod.errors import (
    LeaseLostError,
    MediaError,
    PermanentJobError,
    RetryableJobError,
    StoppingError,
    WaitingError,
)
from nemod.store import Job, JobState, SourceRef

OPTIONS = DaemonOptions(retry_base_seconds=30, retry_max_seconds=3600, waiting_default_seconds=300)


def attempt(attempts: int = 1, max_attempts: int = 5) -> Attempt:
    job = Job(1, "f", "r", SourceRef("inbox", "talk.mp4"), JobState.RUNNING, attempts=attempts)
    config = Config(path=Path("/c.yaml"), state_dir=Path("/s"), backend="local", watches=(), rules=(),
                    max_attempts=max_attempts)
    return Attempt(job, config, None, Path("/in/talk.mp4"))


def ended(error: BaseException, *, tries: int = 1, lost: bool = False, stopping: bool = False,
          cancelled: bool = False) -> tuple[str, str, float]:
    t = transition_for(error, attempt(tries), OPTIONS, lost=lost, stopping=stopping, cancelled=cancelled)
    return t.kind, t.message, t.delay


def test_each_outcome_has_its_transition() -> None:
    assert ended(LeaseLostError("x"))[0] == "abandon"
    assert ended(StoppingError("x"))[0] == "release"
    assert ended(WaitingError("no credits", reason="credits", delay=60)) == ("wait", "no credits", 60)
    assert ended(WaitingError("later", reason="x"))[2] == 300
    assert ended(PermanentJobError("talk.mp4 has no video.")) == ("fail", "talk.mp4 has no video.", 0.0)


@pytest.mark.parametrize(("tries", "delay"), [(1, 30), (2, 60), (3, 120)])
def test_a_transient_error_is_retried_with_backoff(tries: int, delay: float) -> None:
    assert ended(MediaError("ffmpeg exited with 1"), tries=tries) == ("retry", "ffmpeg exited with 1", delay)


def test_a_retryable_error_can_ask_for_its_delay() -> None:
    assert ended(RetryableJobError("busy", delay=7))[2] == 7


def test_the_last_attempt_fails_in_one_sentence() -> None:
    kind, message, _ = ended(MediaError("ffmpeg exited with 1."), tries=5)
    assert (kind, message) == ("fail", "talk.mp4 failed 5 times; the last error was: ffmpeg exited with 1.")


def test_a_lost_lease_or_a_stop_beats_the_error() -> None:
    assert ended(MediaError("killed"), lost=True)[0] == "abandon"
    assert ended(MediaError("killed"), stopping=True, cancelled=True)[0] == "release"
    assert ended(MediaError("killed"), stopping=True)[0] == "retry"  # not cancelled: a real failure


def test_an_unexpected_error_asks_for_its_traceback() -> None:
    unexpected = transition_for(KeyError("x"), attempt(), OPTIONS, lost=False, stopping=False, cancelled=False)
    expected = transition_for(OSError("disk"), attempt(), OPTIONS, lost=False, stopping=False, cancelled=False)
    assert unexpected.unexpected and not expected.unexpected

"""A job's error as one sentence for a person, and what to do about it (pure).

The store keeps the error text as the daemon wrote it (``[Errno 1094995529] Invalid
data found when processing input``); :func:`advise` maps the known kinds to a sentence
a person can act on and keeps the original for the details.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Advice:
    """``sentence``: what went wrong; ``action``: what to do; ``detail``: the raw text."""

    sentence: str
    action: str
    detail: str


_KINDS: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), sentence, action) for pattern, sentence, action in (
        (r"cancelled by a person", "Someone cancelled this job from the dashboard.",
         "Press retry to run it again."),
        (r"invalid data found|moov atom not found|could not find codec|end of file|corrupt",
         "The file could not be read as video: it is damaged, not a video, or was not fully copied.",
         "Check that the file plays on this machine, copy it again if needed, then press retry."),
        (r"no such file|disappeared", "The source file was gone when nemod went to read it.",
         "Put the file back in its watch folder (or forget it), then press retry."),
        (r"permission denied|errno 13", "nemod was not allowed to read or write a file it needed.",
         "Give the nemod user access to the watch and output folders, then press retry."),
        (r"no space left|errno 28", "The disk filled up while the job was writing.",
         "Free some space on the output disk, then press retry."),
        (r"does not understand", "The rule's edit asks for something the local engine cannot do.",
         "Fix the rule's edit (nemod check names the phrase), then press retry."),
        (r"not one of|unsupported|not an accepted|is empty|empty file",
         "This kind of file cannot be processed.", "Convert it to MP4 (or another accepted type) first."),
        (r"\b2001\b|out of credits|credits", "The cloud account is out of credits.",
         "Add credits; waiting jobs start again by themselves."),
        (r"outside its processing window|^schedule$", "The job waits for its processing window to open.",
         "Nothing to do: it starts when the window opens."),
        (r"folder is paused|^paused$", "The job waits because its folder is paused.",
         "Resume the folder on the overview to let it start."),
        (r"no rule|no longer exists", "No rule in the configuration fits this file any more.",
         "Add or fix a rule (nemod explain shows why none matches), then press retry."),
        (r"unreachable|network|timed out|connection", "A folder or service nemod needs could not be reached.",
         "Check the share or the network; nemod retries by itself."),
    )
)


def advise(error: str | None) -> Advice | None:
    """The advice for a job's ``error`` text (None when there is no error)."""
    if not error or not error.strip():
        return None
    detail = error.strip()
    for pattern, sentence, action in _KINDS:
        if pattern.search(detail):
            return Advice(sentence, action, detail)
    first = detail.splitlines()[0].rstrip(".")
    return Advice(f"The job failed: {first}.", "Read the details below, fix the cause, then press retry.",
                  detail)

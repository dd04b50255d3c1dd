"""File names that are not valid UTF-8, kept exactly and shown readably. Pure.

POSIX names are bytes; Python hands names that are not valid UTF-8 (common on SMB shares
written by older Windows systems and cameras, in cp1252 or cp437) to nemod as text with
*surrogate escapes*, which ``open`` and ``os`` accept but SQLite, JSON text and terminals
do not. Each boundary uses one of these:

- :func:`stored` / :func:`restored`: a relative path as job-store text and back, exactly
  (an undecodable path is stored as ``/bytes:`` and its bytes in base64; a relative path
  never starts with ``/``, so no real name can look like that);
- :func:`shown`: for logs, status and messages, undecodable bytes as ``\\xe9``;
- :func:`readable`: for output names, the bytes read as Windows-1252 (what such names
  usually are), so ``caf\\xe9.mp4`` gives ``café.mp4``.
"""

from __future__ import annotations

import base64
import os

_BYTES = "/bytes:"
#: The hidden folder nemod renders in, inside each output folder (watchers never look in it).
WORK_DIR_NAME = ".nemod-work"


def is_utf8(name: str) -> bool:
    """True when ``name`` (as ``os.listdir`` returns it) holds no surrogate escapes."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def stored(relative: str) -> str:
    """``relative`` as text the job store can hold, reversible by :func:`restored`."""
    if is_utf8(relative):
        return relative
    return _BYTES + base64.urlsafe_b64encode(os.fsencode(relative)).decode("ascii")


def restored(text: str) -> str:
    """The relative path :func:`stored` made ``text`` from."""
    if text.startswith(_BYTES):
        return os.fsdecode(base64.urlsafe_b64decode(text[len(_BYTES):]))
    return text


def shown(name: str) -> str:
    """``name`` printable anywhere: undecodable bytes written as ``\\xNN``."""
    return name if is_utf8(name) else os.fsencode(name).decode("utf-8", "backslashreplace")


def readable(name: str) -> str:
    """``name`` as valid UTF-8 for a new file: undecodable names read as Windows-1252."""
    return name if is_utf8(name) else os.fsencode(name).decode("cp1252", "replace")

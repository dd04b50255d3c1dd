"""The job store: the only record of what happened to each file.

:mod:`nemod.store.base` defines the interface (:class:`JobStore`) every
implementation satisfies; :mod:`nemod.store.sql` holds what the two SQL stores share,
:mod:`nemod.store.sqlite` is the one-host store and :mod:`nemod.store.postgres` the one
many hosts share.
"""

from __future__ import annotations

import os
from pathlib import Path

from nemod.store.base import SQLITE_NAME, Job, JobState, JobStore, SourceRef, StoreLedger, fingerprint
from nemod.store.sqlite import SQLiteStore

__all__ = [
    "DATABASE_NAME", "Job", "JobState", "JobStore", "SQLiteStore", "SourceRef", "StoreLedger",
    "fingerprint", "open_store",
]

#: The job database's file name inside ``state_dir``.
DATABASE_NAME = SQLITE_NAME


def open_store(state_dir: os.PathLike[str] | str) -> SQLiteStore:
    """The job store kept in ``state_dir`` (created when missing)."""
    return SQLiteStore(Path(state_dir) / DATABASE_NAME)

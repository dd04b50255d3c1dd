"""File names that are not UTF-8: stored exactly, shown escaped, output readably."""

from __future__ import annotations

import os
from pathlib import Path

from nemod.names import readable, restored, shown, stored
from nemod.store import SourceRef
from nemod.store.sqlite import SQLiteStore

LATIN1 = os.fsdecode(b"talks/caf\xe9 r\xe9sum\xe9.mp4")


def test_a_name_round_trips_through_the_store_text_exactly() -> None:
    # a real name that looks like the marker (without its leading "/", which no relative
    # path has) is stored as it is
    for name in (LATIN1, "plain.mp4", "emoji 🎬.mp4", "bytes:looks-like-a-marker"):
        assert restored(stored(name)) == name
    assert stored("plain.mp4") == "plain.mp4"
    assert stored(LATIN1).isascii()


def test_shown_and_readable() -> None:
    assert shown(LATIN1) == "talks/caf\\xe9 r\\xe9sum\\xe9.mp4"
    assert readable(Path(LATIN1).stem) == "café résumé"
    assert readable("déjà vu") == "déjà vu"


def test_the_sqlite_store_keeps_the_bytes_of_a_name(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "jobs.db")
    source = SourceRef("inbox", LATIN1)
    store.enqueue("print", "rule", source, size=10, mtime=1.0)
    (job,) = store.jobs()
    assert job.source == source and os.fsencode(job.source.relative) == b"talks/caf\xe9 r\xe9sum\xe9.mp4"
    assert store.known(source, 10, 1.0)
    assert store.forget(source=source) == 1

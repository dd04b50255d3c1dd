"""Publishing outputs on a real file system: no overwrite, collisions get a new name."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from nemod.errors import PermanentJobError
from nemod.outputs import WORK_DIR_NAME, publish, remove_work_dir, render_name, work_dir

NOW = dt.datetime(2026, 11, 27, 9, 30, 5, tzinfo=dt.UTC)


def scratch_files(folder: Path, job: str, text: str) -> dict[str, Path]:
    scratch = work_dir(folder, job)
    video = scratch / "render.mp4"
    video.write_text(text)
    srt = scratch / "captions.srt"
    srt.write_text("1\n")
    return {".mp4": video, ".srt": srt}


def test_publish_moves_files_and_writes_the_log(tmp_path: Path) -> None:
    files = scratch_files(tmp_path, "j1", "video")
    placed = publish(files, tmp_path, "talk", {"rule": "r"})
    assert placed == {".srt": tmp_path / "talk.srt", ".log.json": tmp_path / "talk.log.json",
                      ".mp4": tmp_path / "talk.mp4"}
    assert (tmp_path / "talk.mp4").read_text() == "video"
    log = json.loads((tmp_path / "talk.log.json").read_text())
    assert log["outputs"][".mp4"] == "talk.mp4"
    assert not files[".mp4"].exists()


def test_an_existing_output_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "talk.mp4").write_text("precious")
    (tmp_path / "talk-1.srt").write_text("also precious")
    placed = publish(scratch_files(tmp_path, "j2", "new"), tmp_path, "talk", {})
    assert (tmp_path / "talk.mp4").read_text() == "precious"
    assert (tmp_path / "talk-1.srt").read_text() == "also precious"
    assert placed[".mp4"] == tmp_path / "talk-2.mp4"
    assert (tmp_path / "talk-2.mp4").read_text() == "new"


def test_work_dir_is_hidden_and_removed(tmp_path: Path) -> None:
    scratch = work_dir(tmp_path, "j3")
    assert scratch.parent.name == WORK_DIR_NAME
    (scratch / "x").write_text("partial")
    remove_work_dir(scratch)
    assert not (tmp_path / WORK_DIR_NAME).exists()


def test_render_name_fields() -> None:
    name = render_name("{rule}/{date}-{stem}", stem="talk", rule="r", ext="mov", now=NOW)
    assert name == "r/2026-11-27-talk.mp4"


def test_render_name_refuses_to_leave_the_folder() -> None:
    with pytest.raises(PermanentJobError, match="would leave the output folder"):
        render_name("{stem}", stem="../../etc/x", rule="r", ext="mp4", now=NOW)


def test_each_attempt_has_its_own_scratch_and_clears_the_earlier_ones(tmp_path: Path) -> None:
    from nemod.outputs import attempt_work_dir

    killed = attempt_work_dir(tmp_path, "job-1", 3)
    (killed / "half.mp4").write_bytes(b"half")
    unrelated = attempt_work_dir(tmp_path, "job-10", 1)  # job-10 is not job-1
    (unrelated / "x.mp4").write_bytes(b"x")
    current = attempt_work_dir(tmp_path, "job-1", 4)
    assert current.name == "job-1.4" and current.is_dir()
    assert not killed.exists(), "the fenced-out attempt's scratch is removed"
    assert (unrelated / "x.mp4").exists()
    assert attempt_work_dir(tmp_path, "job-1", 4) == current  # the same attempt again: kept
    later = attempt_work_dir(tmp_path, "job-1", 5)  # a host that took the job over
    (later / "new.mp4").write_bytes(b"new")
    late_starter = attempt_work_dir(tmp_path, "job-1", 4)  # the fenced-out one, late
    assert late_starter.is_dir() and (later / "new.mp4").exists(), "a later attempt is never removed"
    remove_work_dir(late_starter)
    remove_work_dir(later)
    attempt_work_dir(tmp_path, "job-10", 2)
    remove_work_dir(tmp_path / WORK_DIR_NAME / "job-10.2")
    assert not (tmp_path / WORK_DIR_NAME).exists()

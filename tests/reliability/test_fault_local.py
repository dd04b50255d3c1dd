"""Fault suite, local backend: what goes wrong on this machine while the daemon works.

The real daemon (in-process :class:`~nemod.daemon.Daemon`, real watcher, SQLite store and
local engine with ffmpeg). Each case names its expected outcome and checks that nothing
is lost (the source is where it was, unchanged, or in the failed folder next to a
one-line ``.error.txt``) and that no partial file is visible in the output folder.

Disk-full and read-only cases mount a small tmpfs as the output folder (needs root, else
skipped).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nemod.backends.base import JobContext, JobRequest, Rendition
from nemod.config import EngineSettings
from nemod.engine.local import LocalBackend, LocalEngine
from nemod.samples import make_clip
from nemod.store import JobState


def local() -> LocalBackend:
    return LocalBackend(LocalEngine(EngineSettings(preset="ultrafast")))


def no_partial_output(out: Path) -> None:
    names = [n for n in (os.listdir(out) if out.is_dir() else []) if not n.startswith(".")]
    assert all(n.endswith((".mp4", ".log.json")) for n in names), names
    for name in names:
        if name.endswith(".mp4"):
            assert (out / name.replace(".mp4", ".log.json")).is_file(), f"{name} without its log"


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s at 640x360: a 1080p export takes long enough to be interrupted."""
    return make_clip(tmp_path_factory.mktemp("long") / "long.mp4", width=640, height=360, seconds=10.0)


def test_ffmpeg_killed_mid_render_is_retried_and_done(kit: Any, long_clip: Path) -> None:
    """Outcome: retried and done (attempt 2), one output."""
    config = kit.write_config(kit.tmp_path, edit="export 1080p MP4", settle=0.1)
    daemon = kit.daemon(config, local())
    kit.drop(kit.tmp_path / "in", "talk.mp4", long_clip)
    out = kit.tmp_path / "out"
    killed: list[int] = []

    def kill_render() -> bool:
        for pid in kit.ffmpeg_children_of(out):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        return bool(killed)

    daemon.drive(kill_render, 60, "a running render")
    daemon.drive(lambda: daemon.settled(1), 120, "done")
    job = daemon.only_job()
    assert job.state is JobState.DONE and job.attempts == 2, job
    assert kit.visible(out) == ["talk.log.json", "talk.mp4"]
    assert not (out / ".nemod-work").exists()
    assert kit.sha256(kit.tmp_path / "in" / "talk.mp4") == kit.sha256(long_clip)


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


def test_output_disk_full_is_retried_and_done_once_space_returns(kit: Any) -> None:
    """Outcome: retried while the disk is full (reason: No space left on device), nothing
    partial visible; done on the next attempt once there is space."""
    config = kit.write_config(kit.tmp_path, settle=0.1)
    with tmpfs(kit.tmp_path / "out", "48k") as out:
        daemon = kit.daemon(config, local())
        kit.drop(kit.tmp_path / "in", "talk.mp4")
        daemon.drive(lambda: ("retrying", 1) in daemon.events, 60, "a retry")
        job = daemon.only_job()
        assert job.state is JobState.QUEUED and "No space left on device" in (job.error or ""), job
        no_partial_output(out)
        remount(out, "size=64m")
        daemon.drive(lambda: daemon.settled(1), 60, "done")
        assert daemon.only_job().state is JobState.DONE
        assert kit.visible(out) == ["talk.log.json", "talk.mp4"]
        daemon.close()
        kit.in_process.remove(daemon)
    assert kit.sha256(kit.tmp_path / "in" / "talk.mp4") == kit.sha256(kit.clip)


def test_output_read_only_is_retried_and_done_once_writable(kit: Any) -> None:
    """Outcome: retried while the output file system is read-only; done once writable."""
    config = kit.write_config(kit.tmp_path, settle=0.1)
    with tmpfs(kit.tmp_path / "out", "64m") as out:
        remount(out, "ro")
        daemon = kit.daemon(config, local())
        kit.drop(kit.tmp_path / "in", "talk.mp4")
        daemon.drive(lambda: ("retrying", 1) in daemon.events, 60, "a retry")
        job = daemon.only_job()
        assert job.state is JobState.QUEUED and "Read-only file system" in (job.error or ""), job
        remount(out, "rw")
        daemon.drive(lambda: daemon.settled(1), 60, "done")
        assert kit.visible(out) == ["talk.log.json", "talk.mp4"]
        daemon.close()
        kit.in_process.remove(daemon)


def test_output_folder_removed_is_recreated(kit: Any) -> None:
    """Outcome: done — the output folder is created again when it was removed."""
    config = kit.write_config(kit.tmp_path, settle=0.1)
    daemon = kit.daemon(config, local())
    kit.drop(kit.tmp_path / "in", "one.mp4")
    daemon.drive(lambda: daemon.settled(1), 60, "first done")
    subprocess.run(["rm", "-rf", str(kit.tmp_path / "out")], check=True)
    kit.drop(kit.tmp_path / "in", "two.mp4", data=(kit.tmp_path / "in" / "one.mp4").read_bytes() + b"\0")
    daemon.drive(lambda: daemon.settled(2), 60, "second done")
    assert all(job.state is JobState.DONE for job in daemon.jobs())
    assert kit.visible(kit.tmp_path / "out") == ["two.log.json", "two.mp4"]


class Interfering:
    """The local backend, but ``before`` runs on the source first (the job has started)."""

    name = "local"

    def __init__(self, before: Any) -> None:
        self.inner = local()
        self.before = before

    def process(self, request: JobRequest, context: JobContext) -> Rendition:
        self.before(request.source)
        return self.inner.process(request, context)


def test_source_deleted_while_settling_makes_no_job(kit: Any) -> None:
    """Outcome: no job and no failure note (the file is gone before it settled)."""
    config = kit.write_config(kit.tmp_path, settle=1.0)
    daemon = kit.daemon(config, local())
    path = kit.drop(kit.tmp_path / "in", "brief.mp4")
    daemon.drive(lambda: len(daemon.daemon.watchers[0].tracker) == 1, 10, "the file to be seen")
    path.unlink()
    kit.drop(kit.tmp_path / "in", "marker.mp4")  # a later file: once it is done, brief.mp4 had its chance
    daemon.drive(lambda: daemon.settled(1), 60, "the marker done")
    assert [job.source.relative for job in daemon.jobs()] == ["marker.mp4"]
    assert not (kit.tmp_path / "in" / "failed").exists()


def test_source_truncated_while_settling_is_processed_once_as_it_ends(kit: Any) -> None:
    """Outcome: one job for the final (truncated) file: failed with a one-line reason,
    the truncated file kept in the failed folder."""
    config = kit.write_config(kit.tmp_path, settle=1.0)
    daemon = kit.daemon(config, local())
    path = kit.drop(kit.tmp_path / "in", "cut.mp4", data=kit.clip.read_bytes())
    daemon.drive(lambda: len(daemon.daemon.watchers[0].tracker) == 1, 10, "the file to be seen")
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 3)
    final = path.read_bytes()
    daemon.drive(lambda: daemon.settled(1), 60, "failed")
    job = daemon.only_job()
    assert job.state is JobState.FAILED and job.size == len(final), job
    note = (kit.tmp_path / "in" / "failed" / "cut.error.txt").read_text()
    assert note.count("\n") == 1 and note.strip(), note
    assert (kit.tmp_path / "in" / "failed" / "cut.mp4").read_bytes() == final
    assert kit.visible(kit.tmp_path / "out") == []


def test_source_deleted_while_processing_fails_with_a_reason(kit: Any) -> None:
    """Outcome: failed with a one-line reason; nothing published."""
    config = kit.write_config(kit.tmp_path, settle=0.1)
    daemon = kit.daemon(config, Interfering(lambda source: source.unlink()))
    kit.drop(kit.tmp_path / "in", "gone.mp4")
    daemon.drive(lambda: daemon.settled(1), 60, "failed")
    job = daemon.only_job()
    assert job.state is JobState.FAILED and job.error and "\n" not in job.error, job
    note = (kit.tmp_path / "in" / "failed" / "gone.error.txt").read_text()
    assert note.strip() == job.error
    assert kit.visible(kit.tmp_path / "out") == []


def test_source_truncated_while_processing_fails_and_keeps_the_file(kit: Any) -> None:
    """Outcome: failed with a one-line reason; the (truncated) source is moved to failed/."""
    def truncate(source: Path) -> None:
        with source.open("r+b") as handle:
            handle.truncate(2000)

    config = kit.write_config(kit.tmp_path, settle=0.1)
    daemon = kit.daemon(config, Interfering(truncate))
    kit.drop(kit.tmp_path / "in", "half.mp4", data=kit.clip.read_bytes())
    daemon.drive(lambda: daemon.settled(1), 60, "failed")
    job = daemon.only_job()
    assert job.state is JobState.FAILED and job.error and "\n" not in job.error, job
    assert (kit.tmp_path / "in" / "failed" / "half.mp4").stat().st_size == 2000
    assert kit.visible(kit.tmp_path / "out") == []

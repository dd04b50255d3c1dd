"""Bad input through the real daemon (in-process, real watcher, store and local engine).

tests/e2e/test_bad_inputs.py proves each bad file gets a clear one-line error or a correct
result from the pipeline; this suite drops them into a running daemon together with good
files and checks the daemon side: none crashes a worker or blocks the queue, each bad file
ends failed with a one-line ``.error.txt`` next to it in the failed folder (nothing lost),
good files are done. Plus what only a watcher meets: symlinks pointing outside the watch
folder, a file replaced by a directory while watched; and ``nemod check`` on a config with
every kind of mistake.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.logs import captured_logs

from nemod.config import EngineSettings
from nemod.engine.local import LocalBackend, LocalEngine
from nemod.media import ffmpeg
from nemod.store import JobState


def local() -> LocalBackend:
    return LocalBackend(LocalEngine(EngineSettings(preset="ultrafast")))


def test_a_batch_of_bad_files_neither_crashes_nor_blocks_the_queue(kit: Any) -> None:
    clip = kit.clip.read_bytes()
    folder = kit.tmp_path / "media"
    folder.mkdir()
    ffmpeg.run(["-y", "-f", "lavfi", "-i", "sine=duration=1", str(folder / "a.m4a")])
    ffmpeg.run(["-y", "-f", "lavfi", "-i", "testsrc2=size=64x64:duration=0.04", "-frames:v", "1",
                "-f", "image2", "-c:v", "png", str(folder / "still.png")])
    bad = {
        "empty.mp4": b"",
        "notes.mp4": b"these are my notes, not a video\n" * 20,
        "truncated.mp4": clip[: len(clip) // 3],
        "garbage.mp4": os.urandom(50_000),
        "audio only.mp4": (folder / "a.m4a").read_bytes(),
        "picture.mp4": (folder / "still.png").read_bytes(),
    }
    good = {
        "with spaces.mp4": clip + b"\0",
        "quote's \"double\".mp4": clip + b"\0\0",
        "emoji 🎬.mp4": clip + b"\0\0\0",
        "new\nline.mp4": clip + b"\0" * 4,
    }
    raw_name = b"latin1-\xe9t\xe9.mp4"
    config = kit.write_config(kit.tmp_path, settle=0.2, concurrency=2)
    daemon = kit.daemon(config, local())
    with captured_logs() as logs:
        for name, data in {**bad, **good}.items():
            kit.drop(kit.tmp_path / "in", name, data=data)
        with open(os.path.join(os.fsencode(kit.tmp_path / "in"), raw_name), "wb") as handle:
            handle.write(clip + b"\0" * 5)
        total = len(bad) + len(good)
        daemon.drive(lambda: daemon.settled(total + 1), 120, "every file settled")
        daemon.daemon.request_rescan()
        daemon.drive(lambda: not daemon.daemon._rescan.is_set(), 10, "a rescan")
    assert not [entry for entry in logs if entry["event"] in ("worker_crashed", "job_error_unexpected")]
    jobs = {job.source.relative: job for job in daemon.jobs()}
    failed_folder = kit.tmp_path / "in" / "failed"
    for name, data in bad.items():
        job = jobs[name]
        assert job.state is JobState.FAILED, job
        note = (failed_folder / f"{Path(name).stem}.error.txt").read_text()
        assert note.count("\n") == 1 and len(note) < 400, note
        assert (failed_folder / name).read_bytes() == data
    for name in good:
        assert jobs[name].state is JobState.DONE, jobs[name]
        assert (kit.tmp_path / "out" / f"{Path(name).stem}.mp4").is_file()
    # A name that is not UTF-8 is processed like any other: its bytes kept exactly in the
    # store, the output under a readable UTF-8 name, and the name said once, escaped.
    raw_source = os.fsdecode(raw_name)
    assert len(jobs) == total + 1
    assert jobs[raw_source].state is JobState.DONE, jobs[raw_source]
    assert os.path.exists(os.path.join(os.fsencode(kit.tmp_path / "in"), raw_name))
    readable_stem = raw_name.decode("cp1252").rsplit(".", 1)[0]
    assert (kit.tmp_path / "out" / f"{readable_stem}.mp4").is_file()
    notes = [entry for entry in logs if entry["event"] == "file_name_not_utf8"]
    assert len(notes) == 1 and "\\xe9" in notes[0]["file"], notes


def test_symlinks_pointing_outside_the_watch_folder_are_ignored(kit: Any) -> None:
    outside = kit.tmp_path / "private"
    outside.mkdir()
    secret = outside / "secret.mp4"
    secret.write_bytes(kit.clip.read_bytes())
    (outside / "nested").mkdir()
    os.link(kit.clip, outside / "nested" / "deep.mp4")
    config = kit.write_config(kit.tmp_path, settle=0.2, watch_extra="    recursive: true\n")
    daemon = kit.daemon(config, local())
    inbox = kit.tmp_path / "in"
    (inbox / "link.mp4").symlink_to(secret)
    (inbox / "dirlink").symlink_to(outside / "nested", target_is_directory=True)
    (inbox / "dotdot.mp4").symlink_to("../private/secret.mp4")
    inside = kit.drop(inbox, "real.mp4", data=kit.clip.read_bytes() + b"\0")
    (inbox / "alias.mp4").symlink_to(inside)  # inside the tree: the same recording
    daemon.drive(lambda: daemon.settled(1), 60, "real.mp4 done")
    daemon.daemon.request_rescan()
    daemon.drive(lambda: not daemon.daemon._rescan.is_set() and daemon.settled(1), 30, "rescan")
    # alias.mp4 is the same recording inside the tree: one job for the two names.
    jobs = daemon.jobs()
    assert len(jobs) == 1 and jobs[0].source.relative in ("real.mp4", "alias.mp4"), jobs
    assert secret.read_bytes() == kit.clip.read_bytes()
    stem = Path(jobs[0].source.relative).stem
    assert kit.visible(kit.tmp_path / "out") == [f"{stem}.log.json", f"{stem}.mp4"]


def test_a_file_replaced_by_a_directory_while_watched(kit: Any) -> None:
    config = kit.write_config(kit.tmp_path, settle=0.5)
    daemon = kit.daemon(config, local())
    inbox = kit.tmp_path / "in"
    path = kit.drop(inbox, "shape.mp4")
    daemon.drive(lambda: len(daemon.daemon.watchers[0].tracker) == 1, 10, "the file to be seen")
    path.unlink()
    path.mkdir()
    (path / "inner.txt").write_text("a folder now")
    kit.drop(inbox, "after.mp4", data=kit.clip.read_bytes() + b"\0")
    daemon.drive(lambda: daemon.settled(1), 60, "after.mp4 done")
    assert [job.source.relative for job in daemon.jobs()] == ["after.mp4"]
    assert (path / "inner.txt").read_text() == "a folder now"


def test_a_queued_file_replaced_by_a_directory_fails_with_a_reason(kit: Any) -> None:
    config = kit.write_config(kit.tmp_path, settle=0.1)
    daemon = kit.daemon(config, local())
    inbox = kit.tmp_path / "in"
    path = kit.drop(inbox, "shape.mp4")
    original = daemon.daemon._start_jobs
    daemon.daemon._start_jobs = lambda now: None  # type: ignore[method-assign]  # queue, do not start
    daemon.drive(lambda: len(daemon.jobs()) == 1, 10, "queued")
    path.unlink()
    path.mkdir()
    daemon.daemon._start_jobs = original  # type: ignore[method-assign]
    daemon.drive(lambda: daemon.settled(1), 30, "failed")
    job = daemon.only_job()
    assert job.state is JobState.FAILED and job.error and "\n" not in job.error, job
    assert path.is_dir()


MISTAKES = """\
state_dir: ./state
backend: lokal
concurrency: 0
settle_seconds: -1
unknown_top_level: 1
watch:
  - path: ./in
    output: ./out
    polling: sometimes
  - output: ./out2
rules:
  - name: "bad name!"
    match: {glob: 5, max_size: "ten gigs", colour: red}
    on_success: explode
  - name: ok
    edit: "export 720p MP4"
    min_credits: -5
cloud:
  api_url: ftp://example.com
engine:
  preset: glacial
  crf: 99
"""


#: Mistakes the schema cannot see (checked once the shapes are right), all in one file.
MEANING = """\
state_dir: ./state
rules_dir: ./no-such-rules
watch:
  - path: ./in
    output: ./in
    schedule: "weekdays 25:00-26:00"
rules:
  - name: lasers
    edit: "make it pop with lasers"
    output: "../{stem}.mp4"
  - name: absolute
    edit: "export 720p MP4"
    output: "/abs/{stem}.mp4"
  - name: unknown-field
    edit: "export 720p MP4"
    output: "{stem}-{colour}.mp4"
"""


def test_nemod_check_reports_every_mistake_at_once(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    config = tmp_path / "nemod.yaml"
    config.write_text(MISTAKES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEMO")}
    result = subprocess.run([sys.executable, "-m", "nemod", "check", "-c", str(config)], capture_output=True,
                            text=True, timeout=60, env=env, check=False)
    assert result.returncode == 2, result
    report = result.stderr + result.stdout
    for key in ("backend", "concurrency", "settle_seconds", "unknown_top_level", "watch[0].polling",
                "watch[1]", "rules[0].name", "rules[0].match.glob", "rules[0].match.max_size",
                "rules[0].match.colour", "rules[0].on_success", "rules[1].min_credits", "cloud.api_url",
                "engine.preset", "engine.crf"):
        assert key in report, f"{key} not reported:\n{report}"
    assert "nemod.yaml:" in report  # located by file and line
    meaning = tmp_path / "meaning.yaml"
    meaning.write_text(MEANING)
    result = subprocess.run([sys.executable, "-m", "nemod", "check", "-c", str(meaning)], capture_output=True,
                            text=True, timeout=60, env=env, check=False)
    assert result.returncode == 2, result
    report = result.stderr + result.stdout
    for key in ("watch[0].output", "watch[0].schedule", "rules[0].edit", "rules[0].output",
                "rules[1].output", "rules[2].output", "rules_dir"):
        assert key in report, f"{key} not reported:\n{report}"
    broken = tmp_path / "broken.yaml"
    broken.write_text("watch:\n  - path: ./in\n    output: [unclosed\n")
    result = subprocess.run([sys.executable, "-m", "nemod", "check", "-c", str(broken)], capture_output=True,
                            text=True, timeout=60, env=env, check=False)
    assert result.returncode == 2 and "broken.yaml:" in result.stderr and "Traceback" not in result.stderr

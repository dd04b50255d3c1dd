"""Pure parts of watching: mount table, observer choice, ignore patterns, settling."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemod.watch.ignore import is_ignored
from nemod.watch.mounts import Mount, fs_type_of, mount_of, needs_polling, parse_mountinfo
from nemod.watch.settle import SettleTracker

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:26 / /proc rw,nosuid - proc proc rw
40 22 0:40 / /mnt/nas rw,relatime shared:5 - cifs //nas/media rw,vers=3.0
41 22 0:41 / /mnt/nfs rw - nfs4 server:/export rw
42 22 0:42 / /home/me/My\\040Drive rw - fuse.rclone drive: rw
43 40 0:43 / /mnt/nas/local rw - ext4 /dev/sdb1 rw
garbage line
"""


def test_parse_mountinfo_reads_mount_points_and_types() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert Mount("/", "ext4") in mounts
    assert Mount("/home/me/My Drive", "fuse.rclone") in mounts
    assert len(mounts) == 6


@pytest.mark.parametrize(
    ("path", "fs_type"),
    [
        ("/srv/in", "ext4"),
        ("/mnt/nas", "cifs"),
        ("/mnt/nas/camera/a", "cifs"),
        ("/mnt/nas/local/x", "ext4"),
        ("/mnt/nasty", "ext4"),
        ("/mnt/nfs/in", "nfs4"),
        ("/home/me/My Drive/in", "fuse.rclone"),
    ],
)
def test_mount_of_picks_the_longest_containing_mount(path: str, fs_type: str) -> None:
    mount = mount_of(path, parse_mountinfo(MOUNTINFO))
    assert mount is not None and mount.fs_type == fs_type


@pytest.mark.parametrize(
    ("setting", "fs_type", "expected"),
    [
        ("auto", "ext4", False),
        ("auto", "cifs", True),
        ("auto", "nfs4", True),
        ("auto", "fuse.sshfs", True),
        ("auto", "smb3", True),
        ("auto", None, False),
        (True, "ext4", True),
        (False, "cifs", False),
    ],
)
def test_needs_polling(setting: str | bool, fs_type: str | None, expected: bool) -> None:
    assert needs_polling(setting, fs_type) is expected


def test_fs_type_of_reads_a_mount_table(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_text(MOUNTINFO)
    assert fs_type_of(Path("/mnt/nas/x"), table) == "cifs"
    assert fs_type_of(Path("/x"), tmp_path / "missing") is None


@pytest.mark.parametrize(
    "relative",
    [
        ".hidden.mp4", "clip.mp4.part", "clip.crdownload", "x.tmp", "~$doc.mp4", ".DS_Store",
        "._clip.mp4", ".syncthing.clip.mp4.tmp", "~syncthing~clip.mp4.tmp", ".clip.mp4.Ab12Cd",
        "sub/.cache/clip.mp4", "out/clip.mp4", "failed/clip.error.txt", "clip.log.json",
        ".nemod-work/job-1/x.mp4",
    ],
)
def test_ignored_names(relative: str) -> None:
    assert is_ignored(relative, (), ("out", "failed", ".nemod-work"))


@pytest.mark.parametrize("relative", ["clip.mp4", "day 1/clip.MOV", "outtakes/clip.mp4"])
def test_not_ignored_names(relative: str) -> None:
    assert not is_ignored(relative, (), ("out", "failed"))


def test_user_ignore_patterns() -> None:
    assert is_ignored("proxy/clip.mp4", ("proxy/*",))
    assert is_ignored("clip_proxy.mp4", ("*_proxy.*",))
    assert not is_ignored("clip.mp4", ("*_proxy.*",))


def test_settle_waits_for_a_stable_signature() -> None:
    tracker: SettleTracker[str] = SettleTracker(5.0)
    assert not tracker.observe("a", (10, 1.0), now=0.0)
    assert not tracker.observe("a", (10, 1.0), now=4.9)
    assert tracker.next_due() == 5.0
    assert tracker.observe("a", (10, 1.0), now=5.0)
    assert "a" not in tracker and tracker.next_due() is None


def test_a_growing_file_never_settles() -> None:
    tracker: SettleTracker[str] = SettleTracker(2.0)
    for second in range(20):
        assert not tracker.observe("a", (second * 100, float(second)), now=float(second))
    assert tracker.observe("a", (1900, 19.0), now=21.0)


def test_mtime_change_alone_restarts_the_wait() -> None:
    tracker: SettleTracker[str] = SettleTracker(2.0)
    tracker.observe("a", (10, 1.0), now=0.0)
    assert not tracker.observe("a", (10, 2.0), now=2.0)
    assert tracker.observe("a", (10, 2.0), now=4.0)


def test_gone_files_are_forgotten_and_postpone_restarts() -> None:
    tracker: SettleTracker[str] = SettleTracker(2.0)
    tracker.observe("a", (10, 1.0), now=0.0)
    assert not tracker.observe("a", None, now=1.0)
    assert tracker.pending() == []
    tracker.observe("b", (10, 1.0), now=0.0)
    tracker.postpone("b", (10, 1.0), now=3.0)
    assert not tracker.observe("b", (10, 1.0), now=4.0)
    assert tracker.observe("b", (10, 1.0), now=5.0)


def test_zero_settle_time_settles_at_once() -> None:
    tracker: SettleTracker[str] = SettleTracker(0.0)
    assert tracker.observe("a", (10, 1.0), now=0.0)

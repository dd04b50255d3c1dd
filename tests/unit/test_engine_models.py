"""Reassembling a split model from its parts: verified, cached, never partial.

Small made-up parts exercise every path quickly; the last test assembles the real pinned
Whisper base model once (≈145 MB, about a second)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from nemod.engine import models
from nemod.engine.models import ModelError, SplitModel, assemble


def _parts(tmp_path: Path, halves: tuple[bytes, bytes]) -> tuple[SplitModel, list[Path]]:
    folders = []
    for index, half in enumerate(halves, start=1):
        data = tmp_path / f"pkg{index}" / "data"
        data.mkdir(parents=True)
        (data / f"model.bin.part{index}").write_bytes(half)
        folders.append(data)
    (folders[0] / "config.json").write_text("{}", encoding="utf-8")
    whole = b"".join(halves)
    spec = SplitModel(name="toy", parts=("pkg_one", "pkg_two"), files=("config.json",), size=len(whole),
                      sha256=hashlib.sha256(whole).hexdigest(), install_hint="pip install toy")
    return spec, folders


def test_parts_are_joined_once_and_verified(tmp_path: Path) -> None:
    spec, folders = _parts(tmp_path, (b"a" * 1000, b"b" * 500))
    folder = assemble(spec, tmp_path / "cache", folders)
    assert (folder / "model.bin").read_bytes() == b"a" * 1000 + b"b" * 500
    assert (folder / "config.json").read_text(encoding="utf-8") == "{}"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.bin"]
    mtime = (folder / "model.bin").stat().st_mtime_ns
    assert assemble(spec, tmp_path / "cache", folders) == folder
    assert (folder / "model.bin").stat().st_mtime_ns == mtime  # reused, not rebuilt


def test_a_partial_cached_file_is_never_used_but_rebuilt(tmp_path: Path) -> None:
    spec, folders = _parts(tmp_path, (b"a" * 1000, b"b" * 500))
    folder = assemble(spec, tmp_path / "cache", folders)
    with (folder / "model.bin").open("r+b") as handle:
        handle.truncate(700)
    assemble(spec, tmp_path / "cache", folders)
    assert (folder / "model.bin").read_bytes() == b"a" * 1000 + b"b" * 500
    (folder / "model.bin").write_bytes(b"x" * 1500)  # right size, wrong content
    assemble(spec, tmp_path / "cache", folders)
    assert models.file_sha256(folder / "model.bin") == spec.sha256


def test_corrupt_parts_are_refused_in_one_line_and_leave_nothing(tmp_path: Path) -> None:
    spec, folders = _parts(tmp_path, (b"a" * 1000, b"b" * 500))
    (folders[1] / "model.bin.part2").write_bytes(b"b" * 499)
    with pytest.raises(ModelError) as caught:
        assemble(spec, tmp_path / "cache", folders)
    message = str(caught.value)
    assert "\n" not in message
    assert "parts are corrupt or partial (joined they give 1,499 bytes, not 1,500" in message
    assert "pip install toy" in message
    assert [p.name for p in (tmp_path / "cache" / spec.folder_name).iterdir()] == []


def test_a_missing_part_is_refused_in_one_line(tmp_path: Path) -> None:
    spec, folders = _parts(tmp_path, (b"a", b"b"))
    (folders[1] / "model.bin.part2").unlink()
    with pytest.raises(ModelError, match=r"^the Whisper toy model is not installed \(pkg-two is missing; run: pip install toy\)$"):
        assemble(spec, tmp_path / "cache", folders)
    with pytest.raises(ModelError, match="pkg-one is missing"):
        assemble(spec, tmp_path / "cache", [None, folders[1]])  # type: ignore[list-item]


def test_english_only_model_names() -> None:
    assert models.is_english_only("tiny.en") and models.is_english_only("/models/small.en")
    assert not models.is_english_only("base") and not models.is_english_only("/models/whisper-small")


def test_the_pinned_base_model_assembles_to_the_pinned_file(tmp_path: Path) -> None:
    folder = Path(models.resolve("base", tmp_path))
    assert folder.parent == tmp_path and folder.name == "whisper-base-d01c3014881c"
    assert (folder / "model.bin").stat().st_size == 145_217_532
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    shutil.rmtree(folder)  # 145 MB: not kept among pytest's last runs

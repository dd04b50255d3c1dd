"""Finding a font for burned text."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemod.engine.fonts import family_name, find_font
from nemod.errors import PermanentJobError


def test_a_configured_font_file_or_folder(tmp_path: Path) -> None:
    fake = tmp_path / "MyFont.ttf"
    fake.write_bytes(b"not a real font")
    assert find_font(str(fake)).family == "MyFont"  # unreadable name table: the file stem
    assert find_font(str(tmp_path)).path == fake
    with pytest.raises(PermanentJobError, match=r"engine\.font"):
        find_font(str(tmp_path / "missing.ttf"))


def test_no_font_anywhere_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PermanentJobError, match="no font found"):
        find_font(None, search=(str(tmp_path),))


def test_system_font_family_is_read_from_the_file() -> None:
    dejavu = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
    if not dejavu.is_file():
        pytest.skip("fonts-dejavu-core is not installed")
    assert family_name(dejavu) == "DejaVu Sans"
    assert find_font(None, search=(str(dejavu.parent),)).path == dejavu

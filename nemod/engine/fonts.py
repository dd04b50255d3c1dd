"""Finding a font for burned-in captions and titles.

The bundled static ffmpeg has libass with fontconfig but may find no fontconfig
setup, so nemod hands libass a font folder and the family name explicitly. The font
is ``engine.font`` (a .ttf/.otf file or a folder) or the first known sans font found
in the usual system folders (DejaVu Sans Bold on Debian/Ubuntu: ``fonts-dejavu-core``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from nemod.errors import PermanentJobError

PREFERRED = (
    "DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "LiberationSans-Bold.ttf", "LiberationSans-Regular.ttf",
    "NotoSans-Bold.ttf", "NotoSans-Regular.ttf", "Arial Bold.ttf", "arialbd.ttf", "Arial.ttf", "arial.ttf",
    "Helvetica.ttc",
)
FONT_DIRS = (
    "/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts",
    "/Library/Fonts", "/System/Library/Fonts", "C:/Windows/Fonts",
)


@dataclass(frozen=True)
class Font:
    """A font file, its folder (for libass ``fontsdir``) and its family name."""

    path: Path
    family: str

    @property
    def folder(self) -> Path:
        """The folder holding the font."""
        return self.path.parent


def family_name(path: Path) -> str:
    """The family name (name ID 1) read from a TrueType/OpenType file; the file stem if
    the table cannot be read."""
    try:
        data = path.read_bytes()
        offset = 12 if data[:4] != b"ttcf" else struct.unpack(">I", data[12:16])[0] + 12
        tables = struct.unpack(">H", data[offset - 8: offset - 6])[0]
        for index in range(tables):
            entry = offset + index * 16
            tag, _, table, _ = struct.unpack(">4sIII", data[entry: entry + 16])
            if tag != b"name":
                continue
            _, count, strings = struct.unpack(">HHH", data[table: table + 6])
            found: dict[int, str] = {}
            for record in range(count):
                platform, _, _, name_id, length, start = struct.unpack(
                    ">HHHHHH", data[table + 6 + record * 12: table + 18 + record * 12]
                )
                if name_id not in (1, 16):
                    continue
                raw = data[table + strings + start: table + strings + start + length]
                found.setdefault(name_id, raw.decode("utf-16-be" if platform in (0, 3) else "latin-1", "replace"))
            if found:
                return found.get(1) or found[16]
    except (OSError, struct.error, IndexError):
        pass
    return path.stem


#: Fonts with Chinese/Japanese/Korean glyphs, tried first for text that needs them.
CJK_HINTS = ("notosanscjk", "notosanssc", "sourcehansans", "wqy", "droidsansfallback", "pingfang", "msyh", "simhei")


def _installed(search: tuple[str, ...]) -> dict[str, Path]:
    """Font files under the ``search`` folders: file name → first path found."""
    found: dict[str, Path] = {}
    for folder in search:
        root = Path(folder).expanduser()
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if path.suffix.lower() in (".ttf", ".otf", ".ttc"):
                found.setdefault(path.name, path)
    return found


def _cjk(found: dict[str, Path]) -> Font | None:
    for hint in CJK_HINTS:
        for name in sorted(found):
            if hint in name.lower().replace("-", "").replace("_", ""):
                return Font(found[name], family_name(found[name]))
    return None


def find_cjk_font(search: tuple[str, ...] = FONT_DIRS) -> Font | None:
    """A system font with Chinese/Japanese/Korean glyphs (:data:`CJK_HINTS`), or None."""
    return _cjk(_installed(search))


def find_font(setting: str | None = None, search: tuple[str, ...] = FONT_DIRS, *, cjk: bool = False) -> Font:
    """The font to burn text with: ``setting`` (file or folder) or a system sans font; with
    ``cjk``, a system font with CJK glyphs when one is installed.

    Raises :class:`PermanentJobError` when none is found.
    """
    if setting:
        path = Path(setting).expanduser()
        if path.is_file():
            return Font(path, family_name(path))
        candidates = sorted([*path.glob("*.ttf"), *path.glob("*.otf")]) if path.is_dir() else []
        if candidates:
            return Font(candidates[0], family_name(candidates[0]))
        raise PermanentJobError(f"engine.font {setting!r} is not a font file or a folder with fonts.")
    found = _installed(search)
    if cjk and (font := _cjk(found)) is not None:
        return font
    for name in PREFERRED:
        if name in found:
            return Font(found[name], family_name(found[name]))
    if found:
        first = found[sorted(found)[0]]
        return Font(first, family_name(first))
    raise PermanentJobError(
        "no font found to burn captions or titles: install one (e.g. apt-get install "
        "fonts-dejavu-core) or set engine.font to a .ttf file."
    )

"""Burned-in Chinese captions render with real glyphs (not boxes): real engine render,
ffmpeg and libass with the CJK font ``scripts/setup`` installs.

Renders of one clip differ only in the caption text: Chinese, none, and characters no
font has (drawn as the font's missing-glyph box). The Chinese render must put ink in the
caption area (against the render without text) and that ink must not be the boxes'
(two different sets of missing characters draw the same picture, which shows the
comparison sees glyphs).
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from support import missing_tool

from nemod.edits import Captions, Plan
from nemod.engine.captions import Word
from nemod.engine.fonts import find_cjk_font
from nemod.engine.local import LocalEngine
from nemod.engine.timeline import Analysis, build_timeline
from nemod.media import ffmpeg
from nemod.media.probe import probe

CHINESE = "欢迎大家"
#: Private-use characters: no font maps them, so each is the font's missing-glyph box.
MISSING = "\ue000\ue001\ue002\ue003"
OTHER_MISSING = "\ue010\ue011\ue012\ue013"


@pytest.fixture(autouse=True)
def _tools_installed() -> None:
    if find_cjk_font() is None:
        missing_tool("no CJK font (Debian's fonts-wqy-zenhei)")


@pytest.fixture(scope="module")
def plain_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("glyphs") / "plain.mp4"
    ffmpeg.run(["-y", "-f", "lavfi", "-i", "color=c=0x203040:s=1280x720:r=25:d=2", "-f", "lavfi", "-i",
                "anullsrc=r=48000:cl=mono", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast",
                "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)])
    return path


def _caption_area(engine: LocalEngine, clip: Path, text: str, folder: Path) -> np.ndarray:
    """The bottom third of the frame at 1 s of ``clip`` rendered with ``text`` as its caption."""
    words = tuple(Word(0.2 + 0.2 * i, 0.35 + 0.2 * i, char) for i, char in enumerate(text))
    timeline = build_timeline(Plan((Captions(language="zh"),)), probe(clip), Analysis(words=words))
    result = engine.render(timeline, {clip.name: clip}, folder, "render")
    with av.open(str(result.video)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= 1.0:
                gray = frame.to_ndarray(format="gray").astype(np.float64)
                return gray[gray.shape[0] * 2 // 3:]
    raise AssertionError("no frame at 1 s")


def _crop(ink: np.ndarray) -> np.ndarray:
    """``ink`` (a boolean mask) cropped to its inked rows and columns."""
    rows, columns = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return ink[rows[0]: rows[-1] + 1, columns[0]: columns[-1] + 1]


def _unlike(a: np.ndarray, b: np.ndarray) -> float:
    """Share of inked pixels of ``a`` or ``b`` that are not inked in both."""
    height, width = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    a, b = a[:height, :width], b[:height, :width]
    return float((a ^ b).sum() / max(1, (a | b).sum()))


def test_burned_chinese_captions_are_real_glyphs(engine: LocalEngine, plain_clip: Path, tmp_path: Path) -> None:
    empty = _caption_area(engine, plain_clip, "", tmp_path / "none")

    def ink(text: str, name: str) -> np.ndarray:
        return np.abs(_caption_area(engine, plain_clip, text, tmp_path / name) - empty) > 40

    chinese, boxes, other_boxes = ink(CHINESE, "zh"), ink(MISSING, "boxes"), ink(OTHER_MISSING, "boxes2")
    assert chinese.sum() > 1000, "no caption drawn"
    # Any four missing characters draw the same four boxes: the comparison sees glyphs.
    assert boxes.sum() > 200 and _unlike(_crop(boxes), _crop(other_boxes)) < 0.1
    assert _unlike(_crop(chinese), _crop(boxes)) > 0.5

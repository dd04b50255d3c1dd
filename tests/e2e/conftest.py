"""Shared e2e fixtures: generated clips, made once per session (small: 320x240 or 640x360)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemod.config import EngineSettings
from nemod.engine.local import LocalEngine
from nemod.samples import Talk, make_clip, make_talk


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide folder of generated clips."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def talk_clip(media_dir: Path) -> Talk:
    """The bundled speech with pauses of 1.8, 1.2 and 2.5 s, over a 320x240 test picture."""
    return make_talk(media_dir / "talk.mp4", width=320, height=240)


@pytest.fixture(scope="session")
def sync_clip(media_dir: Path) -> Talk:
    """Speech with pauses; a white frame and a beep together 2 s into each phrase."""
    return make_talk(media_dir / "sync.mp4", width=320, height=240, sync_marks=True)


@pytest.fixture(scope="session")
def short_clip(media_dir: Path) -> Path:
    """A 2-second 320x240 test picture with a tone."""
    return make_clip(media_dir / "short.mp4", width=320, height=240, seconds=2.0)


@pytest.fixture(scope="session")
def engine() -> LocalEngine:
    """One engine (and one loaded Whisper model) for the session; fastest x264 preset."""
    return LocalEngine(EngineSettings(preset="ultrafast"))

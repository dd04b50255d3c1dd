"""A one-line progress bar for ``nemod process`` on a terminal."""

from __future__ import annotations

import sys
from typing import TextIO


class ProgressBar:
    """Draws ``[#####.....]  45%  render`` on ``stream`` when it is a TTY; silent otherwise."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.width = width
        self._last = ""

    def __call__(self, step: str, fraction: float) -> None:
        """Update the bar to ``fraction`` (0..1) of ``step``."""
        if not self.enabled:
            return
        filled = int(self.width * max(0.0, min(1.0, fraction)))
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:3.0f}%  {step}"
        if line != self._last:
            self.stream.write("\r" + line.ljust(60))
            self.stream.flush()
            self._last = line

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled and self._last:
            self.stream.write("\n")
            self.stream.flush()

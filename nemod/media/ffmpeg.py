"""Running ffmpeg: the only module that starts an ffmpeg subprocess.

ffmpeg is the static build bundled by the ``imageio-ffmpeg`` wheel (libx264, libass,
freetype), so nothing is downloaded or installed at run time. ``$NEMOD_FFMPEG``
overrides it (e.g. a system ffmpeg with hardware encoders).

Argument lists are built elsewhere by pure functions; :func:`run` executes one,
reporting progress from ``-progress pipe:1`` and stopping ffmpeg when ``cancel``
is set (e.g. the daemon lost its lease or was asked to stop).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from nemod.errors import MediaError

ProgressCallback = Callable[[float], None]


@cache
def ffmpeg_path() -> str:
    """Return the ffmpeg executable: ``$NEMOD_FFMPEG`` or the imageio-ffmpeg bundled binary."""
    override = os.environ.get("NEMOD_FFMPEG")
    if override:
        return override
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


#: ffmpeg's closing line when any step failed; it says nothing about the cause.
_GENERIC = "Conversion failed!"


def _reason(tail: Sequence[str], code: int) -> str:
    """The line of ffmpeg's log that says why it failed: its last error line, except that
    the generic closing line gives way to the first line naming an error (e.g. "Error
    submitting a packet to the muxer: No space left on device"), its ``[muxer @ 0x…]``
    prefix removed."""
    errors = [line for line in tail if line and not line.startswith(" ")]
    if not errors:
        return f"exit code {code}"
    if errors[-1].strip() == _GENERIC:
        named = [line for line in errors if "error" in line.lower()]
        if named:
            return re.sub(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*", "", named[0])
    return errors[-1]


@cache
def ffmpeg_version() -> str:
    """The first line of ``ffmpeg -version`` (for job logs)."""
    result = subprocess.run([ffmpeg_path(), "-version"], capture_output=True, text=True, check=False)
    return result.stdout.splitlines()[0] if result.stdout else "unknown"


@dataclass(frozen=True)
class FfmpegResult:
    """What a finished ffmpeg run left behind: its argv and the tail of its log."""

    argv: tuple[str, ...]
    log_tail: str


def run(
    args: Sequence[str],
    *,
    duration: float | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> FfmpegResult:
    """Run ``ffmpeg <args>`` and wait for it.

    ``args`` excludes the executable. ``duration`` (seconds of output expected) turns
    ffmpeg's ``out_time`` into a 0..1 fraction for ``on_progress``. Raises
    :class:`MediaError` with ffmpeg's last error line when it fails or is cancelled.
    """
    argv = (ffmpeg_path(), "-hide_banner", "-nostdin", "-nostats", "-progress", "pipe:1", *args)
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace"
    ) as process:

        def drain_stderr() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                tail.append(line.rstrip())

        def watch_cancel(event: threading.Event) -> None:
            while process.poll() is None:
                if event.wait(0.2):
                    process.kill()
                    return

        helpers = [threading.Thread(target=drain_stderr, name="ffmpeg-stderr", daemon=True)]
        if cancel is not None:
            helpers.append(
                threading.Thread(target=watch_cancel, args=(cancel,), name="ffmpeg-cancel", daemon=True)
            )
        for thread in helpers:
            thread.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                key, _, value = line.strip().partition("=")
                if key == "out_time_us" and on_progress and duration and value.isdigit():
                    on_progress(min(1.0, int(value) / 1e6 / duration))
        except BaseException:
            process.kill()
            raise
        finally:
            code = process.wait()
            for thread in helpers:
                thread.join(timeout=5)
    log_tail = "\n".join(tail)
    if cancel is not None and cancel.is_set():
        raise MediaError("ffmpeg was stopped")
    if code != 0:
        raise MediaError(f"ffmpeg failed: {_reason(tail, code)}")
    if on_progress:
        on_progress(1.0)
    return FfmpegResult(argv=argv, log_tail=log_tail)

"""Rendering a trim-only timeline by smart cutting (:mod:`nemod.engine.smartcut` plans it,
:mod:`nemod.media.splice` copies and re-encodes the picture): the sound renders alongside,
the two are muxed, and the result is verified before it is used; anything else tells the
caller to render in full."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nemod.backends.base import Progress as StepProgress
from nemod.config import EngineSettings
from nemod.engine import smartcut
from nemod.engine.render import RenderInputs, decode_check_args, mux_args, render_args
from nemod.errors import MediaError
from nemod.media import ffmpeg, splice
from nemod.media.probe import MediaInfo
from nemod.timeline import Timeline

#: How many packet indexes a renderer remembers: a few KB per hour of video.
_INDEXES_REMEMBERED = 4


def check_stopped(cancel: threading.Event | None) -> None:
    """Raise :class:`MediaError` when ``cancel`` is set (the job was stopped)."""
    if cancel is not None and cancel.is_set():
        raise MediaError("the edit was stopped")


def _index_stat(path: str, inode: int, size: int, mtime_ns: int) -> splice.VideoIndex:
    """:func:`splice.index_video` of ``path``; the file's identity and stat key a cache."""
    return splice.index_video(Path(path))


class _Background:
    """``work(stop)`` running in a thread: :meth:`finish` waits for it (stopping it when
    ``cancel`` is set) and re-raises what it raised; :meth:`abandon` stops it and waits."""

    def __init__(self, work: Callable[[threading.Event], object]) -> None:
        self.stop = threading.Event()
        self.error: Exception | None = None

        def target() -> None:
            try:
                work(self.stop)
            except Exception as exc:  # noqa: BLE001 - handed to finish() in the caller's thread
                self.error = exc

        self.thread = threading.Thread(target=target, name="smart-cut-sound", daemon=True)
        self.thread.start()

    def finish(self, cancel: threading.Event | None) -> None:
        while self.thread.is_alive():
            self.thread.join(0.2)
            if cancel is not None and cancel.is_set():
                self.stop.set()
        if isinstance(self.error, MediaError):
            raise self.error
        if self.error is not None:
            raise MediaError(f"the sound could not be rendered ({self.error}).") from self.error

    def abandon(self) -> None:
        self.stop.set()
        self.thread.join()


class SmartRenderer:
    """Smart cutting for one engine's ``settings`` (``smart_cut``, ``preset``, ``threads``);
    remembers the packet index of the last few sources while they are unchanged."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self._index_unchanged = functools.lru_cache(maxsize=_INDEXES_REMEMBERED)(_index_stat)

    def cut_points(self, timeline: Timeline, media: MediaInfo) -> list[float]:
        """The IDR times (source seconds) of ``media`` when ``timeline`` will be smart-cut; none
        otherwise, so timelines that render in full are planned exactly as without smart cutting."""
        if not self.settings.smart_cut or smartcut.timeline_reason(timeline, media) is not None:
            return []
        try:
            index = self._index(media.path)
        except (MediaError, OSError):
            return []
        if isinstance(smartcut.plan_splice(timeline, media, index, preset=self.settings.preset), str):
            return []
        step = float(index.frame_ticks * index.time_base)
        return [frame * step for frame in index.idr_frames]

    def _index(self, path: Path) -> splice.VideoIndex:
        """:func:`splice.index_video` of ``path``, remembered while the file is unchanged."""
        info = path.stat()
        return self._index_unchanged(str(path), info.st_ino, info.st_size, info.st_mtime_ns)

    def render(
        self, timeline: Timeline, media: MediaInfo, music: Mapping[str, Path], output: Path, progress: StepProgress,
        cancel: threading.Event | None,
    ) -> tuple[ffmpeg.FfmpegResult | None, dict[str, Any]]:
        """Render ``timeline`` (one source, ``media``; ``music`` files by name) by smart cutting
        when it is eligible and the result verifies:
        (the mux's ffmpeg result, what the log says about it); (None, why not) otherwise,
        leaving nothing at ``output``. Raises :class:`MediaError` when cancelled."""
        reason = smartcut.timeline_reason(timeline, media) if self.settings.smart_cut else "engine.smart_cut is off"
        if reason is not None:
            return None, {"path": "full", "reason": reason}
        try:
            index = self._index(media.path)
        except (MediaError, OSError) as exc:
            return None, {"path": "full", "reason": str(exc)}
        planned = smartcut.plan_splice(timeline, media, index, preset=self.settings.preset,
                                       threads=self.settings.threads)
        if isinstance(planned, str):
            return None, {"path": "full", "reason": planned}
        facts: dict[str, Any] = {"frames_copied": planned.copied, "frames_encoded": planned.encoded}
        video = output.with_name(output.stem + ".picture.mp4")
        audio = output.with_name(output.stem + ".sound.m4a")
        seconds: dict[str, float] = {}
        clock = time.monotonic()

        def lap(name: str) -> None:
            nonlocal clock
            seconds[name] = round(time.monotonic() - clock, 3)
            clock = time.monotonic()

        try:
            sound_args = render_args(timeline, RenderInputs({media.path.name: media}, music), audio,
                                     threads=self.settings.threads, audio_only=True)
        except ValueError as exc:
            return None, {"path": "full", "reason": f"its sound cannot be rendered alone: {exc}"}
        try:
            # The sound (one ffmpeg, mostly one core) renders while the picture is spliced.
            sound = _Background(lambda stop: ffmpeg.run(sound_args, cancel=stop))
            try:
                done = splice.splice_video(media.path, planned.splice, video, index,
                                           on_progress=lambda f: progress("render", 0.75 * f), cancel=cancel)
            except BaseException:
                sound.abandon()
                raise
            lap("splice")
            sound.finish(cancel)
            lap("sound_wait")
            result = ffmpeg.run(mux_args(video, audio, output), cancel=cancel)
            lap("mux")
            problems = smartcut.timing_problems(splice.output_times(output), planned.splice.frames, index.fps)
            if not problems:
                problems = self._decode_problems(output, planned, index, progress, cancel)
            lap("verify")
            failure = f"the smart cut failed verification: {problems[0]}" if problems else None
        except Exception as exc:  # noqa: BLE001 - any failure of the fast path falls back to the full render
            check_stopped(cancel)
            failure = f"the smart cut failed: {exc}"
        finally:
            video.unlink(missing_ok=True)
            audio.unlink(missing_ok=True)
        if failure is not None:
            output.unlink(missing_ok=True)
            return None, {"path": "full", **facts, "reason": failure}
        return result, {"path": "smart", "frames_copied": done.copied, "frames_encoded": done.encoded,
                        "seconds": seconds}

    def _decode_problems(self, output: Path, planned: smartcut.SmartPlan, index: splice.VideoIndex,
                         progress: StepProgress, cancel: threading.Event | None) -> list[str]:
        """What ffmpeg reports when decoding the sound of ``output`` and the parts of its
        picture that are not the source's own packets (see :func:`smartcut.check_windows`)."""
        runs = smartcut.output_runs(planned.splice, index.idr_frames, index.frames)
        windows = smartcut.check_windows(runs, index.fps)
        checks = [decode_check_args(output, stream="a")]
        checks += [decode_check_args(output, start=start, duration=end - start) for start, end in windows]
        for number, args in enumerate(checks):
            checked = ffmpeg.run(args, cancel=cancel)
            if checked.log_tail.strip():
                return [f"decoding it reports: {checked.log_tail.strip().splitlines()[0]}"]
            progress("render", 0.75 + 0.25 * (number + 1) / len(checks))
        return []

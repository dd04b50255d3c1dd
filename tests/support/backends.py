"""Backends that copy the source to the output: for suites where the engine is not under test
(the daemon, the store, publishing, the service layer, the dashboard)."""

from __future__ import annotations

import collections
import threading

from nemod.backends.base import JobContext, JobRequest, Rendition
from nemod.errors import MediaError
from nemod.timeline import Timeline


class CopyBackend:
    """Copies the source into the job's scratch folder as ``<stem>.mp4``, after passing the
    ``render`` checkpoint (so a lost lease or a stop is noticed as with the real engines).

    ``captions`` also writes a one-line ``<stem>.srt``. ``calls`` counts calls per source
    path (thread-safe); ``total`` is their sum.
    """

    name = "copy"

    def __init__(self, *, captions: bool = False) -> None:
        self.captions = captions
        self.calls: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def process(self, request: JobRequest, context: JobContext) -> Rendition:
        context.checkpoint("render")
        video = request.work_dir / f"{request.stem}.mp4"
        video.write_bytes(request.source.read_bytes())
        with self._lock:
            self.calls[str(request.source)] += 1
        extra = {}
        if self.captions:
            srt = request.work_dir / f"{request.stem}.srt"
            srt.write_text("1\n")
            extra["srt"] = srt
        return Rendition(video=video, timeline=Timeline(video=None, duration=0), summary="copied", captions=extra)


class GatedBackend:
    """Copies the source like :class:`CopyBackend`, but holds jobs inside their render step
    (progress 25 %) while ``gate`` is shut — every job, or only the first with
    ``first_only`` — and stops as ffmpeg would when the job is cancelled.

    ``calls`` lists the source names in the order they reached the backend; ``started`` is
    set when the first one did, ``finished`` when one returned its rendition.
    """

    name = "gated"

    def __init__(self, *, first_only: bool = False) -> None:
        self.first_only = first_only
        self.started = threading.Event()
        self.finished = threading.Event()
        self.gate = threading.Event()
        self.calls: list[str] = []

    def process(self, request: JobRequest, context: JobContext) -> Rendition:
        context.checkpoint("render")
        self.calls.append(request.source.name)
        self.started.set()
        context.progress("render", 0.25)
        if not self.first_only or len(self.calls) == 1:
            deadline = 60.0
            while not self.gate.wait(0.02):
                deadline -= 0.02
                if context.cancel.is_set():
                    raise MediaError("ffmpeg was cancelled")
                assert deadline > 0, "the gate was never opened"
        video = request.work_dir / f"{request.stem}.mp4"
        video.write_bytes(request.source.read_bytes())
        self.finished.set()
        return Rendition(video=video, timeline=Timeline(video=None, duration=0), summary="copied")

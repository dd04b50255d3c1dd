"""A backend that copies the source to the output: for suites where the engine is not under
test (the daemon, the store, publishing, the service layer)."""

from __future__ import annotations

import collections
import threading

from nemod.backends.base import JobContext, JobRequest, Rendition


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
        return Rendition(video=video, draft={}, summary="copied", captions=extra)

"""Time to write each editor timeline of a long cut (pure conversion; no media, no render).

A one-hour 29.97 fps talk with ``--cuts`` pauses cut (500 by default, one every 7.2 s) is
laid out by the engine's own timeline builder, then written in each format; the median of
``--runs`` runs and the file size are printed per format.

    .venv/bin/python bench/timeline_export.py [--cuts 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from nemod.edits import TIMELINE_FORMATS, parse_edit
from nemod.engine.timeline import Analysis, build_timeline
from nemod.media.probe import MediaInfo
from nemod.timeline_export import MediaFile, export


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cuts", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    duration = args.cuts * 7.2
    speech = tuple((index * 7.2 + 0.1, index * 7.2 + 6.0) for index in range(args.cuts))
    media = MediaInfo(Path("/srv/inbox/talk.mp4"), duration, 1920, 1080, 29.97, 0, 1, "h264", True)
    timeline = build_timeline(parse_edit("trim the pauses, export the timeline"), media, Analysis(speech=speech))
    source = MediaFile("file:///srv/inbox/talk.mp4", "talk.mp4", duration, True, 1920, 1080, 29.97)
    print(f"{len(timeline.clips)} kept ranges over {duration / 60:.0f} min")
    for name in TIMELINE_FORMATS:
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            written = export(timeline, source, "talk", [name])
            times.append(time.perf_counter() - started)
        size = len(next(iter(written.texts.values())).encode())
        print(f"{name:9} median {statistics.median(times):6.3f} s  {size / 1024:7.0f} KiB")


if __name__ == "__main__":
    main()

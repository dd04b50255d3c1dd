"""Pause ranges, timelines, summaries and ffmpeg arguments (pure)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nemod.draft import AUDIO, TEXT, VIDEO, to_draft
from nemod.edits import parse_edit
from nemod.engine.captions import Word
from nemod.engine.pauses import SpeechMap
from nemod.engine.render import RenderInputs, copy_args, escape_filter_value, render_args
from nemod.engine.timeline import Analysis, build_timeline, output_size
from nemod.engine.vad import kept_ranges
from nemod.media.probe import MediaInfo
from nemod.timeline import Clip, summarize

MEDIA = MediaInfo(Path("/in/talk.mp4"), 20.0, 1280, 720, 30.0, 0, 1, "h264", True)
SPEECH = ((0.1, 5.0), (7.0, 12.0), (12.3, 15.0))


def test_kept_ranges_cut_long_pauses_and_keep_padding() -> None:
    kept, cuts = kept_ranges(SPEECH, (0.0, 20.0), min_pause=0.5, padding=0.2)
    assert kept == [(0.0, 5.2), (6.8, 15.2)]
    assert cuts == 2  # the 2 s pause and the 5 s tail
    assert kept_ranges((), (0.0, 20.0), min_pause=0.5, padding=0.2) == ([(0.0, 20.0)], 0)
    kept, _ = kept_ranges(((3.0, 4.0),), (0.0, 20.0), min_pause=0.5, padding=0.2)
    assert kept == [(2.8, 4.2)]


def test_output_size() -> None:
    assert output_size(parse_edit("export 1080p").export, 1280, 720) == (1920, 1080)
    assert output_size(parse_edit("export 1080p vertical").export, 1920, 1080) == (1080, 1920)
    assert output_size(parse_edit("square").export, 1920, 1080) == (1080, 1080)


def test_timeline_tracks_and_summary() -> None:
    plan = parse_edit("trim the pauses, add captions, add BGM lofi.mp3 at 35%, add title 'Hi', export 720p")
    words = (Word(0.2, 0.6, "Hello"), Word(7.1, 7.5, "again."))
    timeline = build_timeline(plan, MEDIA, Analysis(speech=SPEECH, words=words))
    assert timeline.video is not None and timeline.music is not None and timeline.captions is not None
    assert timeline.video.clips == (Clip("talk.mp4", 0, 5200), Clip("talk.mp4", 6800, 15200))
    assert timeline.duration == 13600 and timeline.music.volume == 0.35
    assert [title.span.text for title in timeline.titles] == ["Hi"]
    assert timeline.captions.cues[1].start == 5500  # 7.1 s in the source, after a 1.6 s cut
    assert summarize(timeline) == (
        'Timeline (4 tracks): 1. Video: talk.mp4 (0-14s, 2 pauses cut) 2. BGM: lofi.mp3 (0-14s, 35%) '
        '3. Title: "Hi" (0-3s) 4. Captions (burned)'
    )
    draft = to_draft(timeline)  # as the job's log and the cloud API see it
    assert [track["tt"] for track in draft["t"]] == [VIDEO, AUDIO, TEXT, TEXT]
    assert draft["t"][0]["sg"] == [{"src": "talk.mp4", "s": 0, "e": 5200}, {"src": "talk.mp4", "s": 6800, "e": 15200}]


def test_keep_cut_and_speed() -> None:
    timeline = build_timeline(parse_edit("keep 0:02-0:12, cut the first 1 s, speed up 2x"), MEDIA)
    assert timeline.clips == (Clip("talk.mp4", 3000, 12000),)
    assert timeline.duration == 4500 and timeline.speed == 2.0
    with pytest.raises(ValueError, match="nothing"):
        build_timeline(parse_edit("cut the first 30 s"), MEDIA)


def test_render_args_are_one_pass_with_joins_faded() -> None:
    timeline = build_timeline(parse_edit("trim the pauses, fade in and out, normalize loudness"), MEDIA, Analysis(speech=SPEECH))
    args = render_args(timeline, RenderInputs({"talk.mp4": MEDIA}), Path("/out/x.mp4"))
    graph = args[args.index("-filter_complex") + 1]
    assert args.count("-i") == 1
    assert "select='(lt(t,5.191667)+gte(t,6.791667)*lt(t,15.191667))'" in graph
    assert "concat=n=2:v=0:a=1" in graph and graph.count("afade=t=in:d=0.01") == 2
    assert "split" not in graph.replace("asplit", "")  # no per-range picture branches
    assert "loudnorm=I=-14" in graph and "fade=t=out" in graph
    assert args[-1] == "/out/x.mp4" and "+faststart" in args


def test_render_args_for_reframe_music_and_overlay() -> None:
    plan = parse_edit("export 720p vertical with blurred background, add BGM a.mp3 at 20%")
    timeline = build_timeline(plan, MEDIA)
    inputs = RenderInputs({"talk.mp4": MEDIA}, {"a.mp3": Path("/m/a.mp3")}, Path("/w/it's:x.ass"), Path("/fonts"))
    args = render_args(timeline, inputs, Path("/out/x.mp4"))
    graph = args[args.index("-filter_complex") + 1]
    assert "gblur" in graph and "overlay=(W-w)/2:(H-h)/2" in graph
    assert "sidechaincompress" in graph and "volume=0.2" in graph and "-stream_loop" in args
    assert "ass=filename=/w/it\\\\\\'s\\\\:x.ass" in graph


def test_escape_filter_value() -> None:
    assert escape_filter_value("/a b/c.ass") == "/a b/c.ass"
    assert escape_filter_value("C:\\x") == "C\\\\:\\\\\\\\x"


def test_copy_args() -> None:
    args = copy_args(MEDIA, Path("/o.mp4"))
    assert args[args.index("-c:v") + 1] == "copy" and args[args.index("-c:a") + 1] == "copy"


def test_render_args_for_several_sources_concatenate() -> None:
    other = MediaInfo(Path("/in/b.mp4"), 5.0, 1280, 720, 30.0, 0, 0, "h264", True)
    timeline = build_timeline(parse_edit("export 720p"), MEDIA)
    assert timeline.video is not None
    video = replace(timeline.video, clips=(Clip("b.mp4", 0, 5000), Clip("talk.mp4", 1000, 3000)))
    args = render_args(replace(timeline, video=video), RenderInputs({"talk.mp4": MEDIA, "b.mp4": other}), Path("/out/x.mp4"))
    graph = args[args.index("-filter_complex") + 1]
    assert args.count("-i") == 2 and "concat=n=2:v=1:a=1" in graph and "anullsrc" in graph


def test_speech_over_chunks_is_joined_at_the_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    from nemod.engine import vad

    answers = iter([[(0.5, 10.0)], [(0.0, 2.0), (4.0, 5.0)]])

    def fake(probs: object, levels: object, sensitivity: object, offset: float, flatness: object = None) -> SpeechMap:
        return SpeechMap(tuple((a + offset, b + offset) for a, b in next(answers)))

    monkeypatch.setattr(vad, "find_speech", fake)
    size = 312 * vad.FRAME_SAMPLES  # 9.984 s: a whole number of frames, as audio_chunks gives
    chunks = iter([np.full(size, 0.1, np.float32), np.full(size, 0.1, np.float32)])
    found = vad.speech_in_chunks(chunks)
    second = size / vad.SAMPLE_RATE
    assert found.speech == ((0.5, second + 2.0), (second + 4.0, second + 5.0))
    assert found.evidence is not None and len(found.evidence.probs) == 2 * 312
    assert vad._whole_frames(10.0) == size and vad._whole_frames(300.0) == 300 * vad.SAMPLE_RATE

"""The session language over loopback HTTP: the cloud client creates its session in the
rule's language and ``nemod serve`` captions in it (real server, real engine, Whisper base,
real Mandarin speech: FunASR test data, MIT, see tests/corpus/sources/ATTRIBUTION.md)."""

from __future__ import annotations

from pathlib import Path

from support.serve import make_backend, run_job

from nemod.backends.base import JobRequest
from nemod.config import Rule
from nemod.languages import has_cjk
from nemod.media import ffmpeg
from nemod.serve.server import NemoServer

MANDARIN = Path(__file__).parents[1] / "corpus" / "sources" / "babble_zh.wav"


def test_a_chinese_rule_gets_chinese_captions_through_the_api(server: NemoServer, tmp_path: Path) -> None:
    clip = tmp_path / "talk.mp4"
    ffmpeg.run(["-y", "-f", "lavfi", "-i", "color=c=0x203040:s=320x240:r=25", "-i", str(MANDARIN), "-shortest",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip)])
    backend = make_backend(server, tmp_path / "state")
    try:
        result = run_job(backend, JobRequest("j", clip, Rule(name="zh", edit="加字幕", language="auto"),
                                             tmp_path / "work"))
    finally:
        backend.close()
    session = next(iter(server.service._sessions.values()))
    assert session.language == "auto"
    assert result.timeline.language is not None and result.timeline.language["detected"] == "zh"
    captions = result.timeline.captions
    assert captions is not None
    text = "".join(cue.text for cue in captions.cues)
    assert sum(map(has_cjk, text)) >= 0.9 * len(text.replace("\n", "")), text

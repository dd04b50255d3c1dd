"""Editor timelines end to end: a rule exports the cut beside the MP4 (or instead of it), MLT's
``melt`` (the engine Kdenlive renders with) plays the ``.kdenlive`` project to the same source
frames nemod renders, and every file reads back with OpenTimelineIO at the frames the job's log says were kept."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import corpus
import opentimelineio as otio
import pytest
from support import missing_tool

from nemod import config as config_module
from nemod.backends.base import JobContext
from nemod.config import Config
from nemod.draft import from_draft
from nemod.engine.local import LocalBackend, LocalEngine
from nemod.errors import PermanentJobError
from nemod.media import ffmpeg
from nemod.media.probe import probe
from nemod.pipeline import run_job
from nemod.samples import Talk, make_clip
from nemod.timeline import Timeline as Edit
from nemod.timeline_export import FORMATS, source_frames


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, talk_clip: Talk) -> tuple[Config, Path]:
    """A watch folder holding the talk under a picture that shows each frame's index, and a
    config whose rules export timelines; editors see the folder as /Volumes/studio/inbox."""
    root = tmp_path_factory.mktemp("studio")
    inbox = root / "inbox"
    inbox.mkdir()
    source = corpus.with_frame_index(SimpleNamespace(name="talk", duration=talk_clip.duration, path=talk_clip.path), inbox)
    for leftover in inbox.glob("*.picture.mp4"):
        leftover.unlink()
    (root / "nemod.yaml").write_text(textwrap.dedent("""\
        watch:
          - path: ./inbox
            output: ./outbox
            timeline_media: /Volumes/studio/inbox
          - path: ./here
            output: ./outbox-here
        rules:
          - name: cut
            edit: "trim the pauses, export the timeline"
          - name: only
            edit: "trim the pauses, add captions, export the timeline for Kdenlive and Premiere only"
          - name: edl
            operations: [{op: timeline, formats: [edl]}]
          - name: music
            edit: "trim the pauses, add BGM tone.wav at 50%, export the timeline for Kdenlive only"
        engine: {preset: ultrafast}
        """), encoding="utf-8")
    (root / "here").mkdir()
    ffmpeg.run(["-y", "-f", "lavfi", "-i", "sine=frequency=1000:duration=4:sample_rate=48000", str(root / "tone.wav")])
    return config_module.load(root / "nemod.yaml"), source


@pytest.fixture(scope="module")
def cut(studio: tuple[Config, Path], engine: LocalEngine) -> dict[str, Path]:
    config, source = studio
    outcome = run_job(config, LocalBackend(engine), source, config.watches[0].output, job_id="cut1",
                      rule=config.rule("cut"), context=JobContext(), watch=config.watches[0])
    return outcome.outputs


def _logged(outputs: dict[str, Path]) -> Edit:
    """The edit the job's log describes (its draft, read back as a user's tool would)."""
    return from_draft(json.loads(outputs[".log.json"].read_text(encoding="utf-8"))["draft"])


def _expected(edit: Edit) -> list[int]:
    return [frame for start, count in source_frames(edit) for frame in range(start, start + count)]


def test_the_cut_is_published_in_every_format_beside_the_mp4(cut: dict[str, Path]) -> None:
    assert set(cut) == {".mp4", ".fcpxml", ".xml", ".kdenlive", ".otio", ".edl", ".log.json"}
    assert list(cut)[-1] == ".mp4"  # the MP4 appears last: the set is complete
    log = json.loads(cut[".log.json"].read_text(encoding="utf-8"))
    assert log["timeline_export"]["media"] == "file:///Volumes/studio/inbox/talk.mp4"
    assert '<pathurl>file:///Volumes/studio/inbox/talk.mp4</pathurl>' in cut[".xml"].read_text(encoding="utf-8")
    assert 'src="file:///Volumes/studio/inbox/talk.mp4"' in cut[".fcpxml"].read_text(encoding="utf-8")


def test_every_file_reads_back_at_the_logged_edits_frames(cut: dict[str, Path]) -> None:
    edit = _logged(cut)
    frames = source_frames(edit)
    assert len(frames) >= 3  # the talk's pauses were cut
    assert edit.fps is not None
    fps = edit.fps
    for name, fmt in FORMATS.items():
        options = {"rate": fps} if name == "edl" else {}
        timeline = otio.adapters.read_from_file(str(cut[fmt.suffix]), adapter_name=fmt.adapter, **options)
        picture = next(track for track in timeline.tracks if track.kind == otio.schema.TrackKind.Video)
        got = [(round(clip.source_range.start_time.value), round(clip.source_range.duration.value))
               for clip in picture.find_clips()]
        assert got == frames, name


def test_melt_renders_the_kdenlive_project_to_the_frames_nemod_renders(
    studio: tuple[Config, Path], cut: dict[str, Path], tmp_path: Path,
) -> None:
    melt = shutil.which("melt")
    if melt is None:
        missing_tool("melt is not installed (Debian's melt package)")
    _, source = studio
    # The editor's path is this host's path here, so melt finds the media.
    project = tmp_path / "talk.kdenlive"
    project.write_text(cut[".kdenlive"].read_text(encoding="utf-8").replace(
        "/Volumes/studio/inbox/talk.mp4", str(source)), encoding="utf-8")
    rendered = tmp_path / "melt.mp4"
    subprocess.run([melt, "-quiet", str(project), "-consumer", f"avformat:{rendered}", "vcodec=libx264",
                    "preset=ultrafast", "crf=10", "acodec=aac"], check=True, capture_output=True, timeout=240)
    edit = _logged(cut)
    expected = _expected(edit)
    nemod_frames = corpus.frame_indices(cut[".mp4"])
    melt_frames = corpus.frame_indices(rendered)
    assert nemod_frames == expected
    assert abs(len(melt_frames) - len(nemod_frames)) <= 1
    assert melt_frames[: len(expected)] == expected[: len(melt_frames)]
    info = probe(rendered)
    assert info.has_audio
    assert edit.fps is not None and abs(info.duration - len(expected) / edit.fps) <= 0.1


def _spectrum(path: Path, seconds: float = 3.0) -> tuple[Any, Any]:
    """The magnitude spectrum of the first ``seconds`` of ``path``'s sound (mono, any scale)
    and its frequencies."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate, channels = stream.rate, stream.channels
        frames = [frame.to_ndarray() for frame in container.decode(audio=0)]
    planar = frames[0].shape[0] == channels and channels > 1
    samples = np.concatenate([frame.T.reshape(-1) if planar else frame.reshape(-1) for frame in frames])
    scale = 32768.0 if samples.dtype == np.int16 else 1.0
    sound = (samples.astype(np.float64) / scale).reshape(-1, channels).mean(axis=1)[: int(rate * seconds)]
    return np.abs(np.fft.rfft(sound)) / len(sound), np.fft.rfftfreq(len(sound), 1 / rate)


def _tone_and_rest(path: Path, frequency: float) -> tuple[float, float]:
    """How much stronger ``frequency`` is than the 100 Hz below it, and the energy of
    everything but that tone (the speech), in ``path``'s sound."""
    spectrum, freqs = _spectrum(path)
    tone = (freqs > frequency - 50) & (freqs < frequency + 50)
    peak = spectrum[(freqs > frequency - 5) & (freqs < frequency + 5)].max()
    below = spectrum[(freqs > frequency - 100) & (freqs < frequency - 50)].mean()
    return float(peak / below), float((spectrum[~tone] ** 2).sum())


def test_melt_mixes_the_music_track_under_the_sound(studio: tuple[Config, Path], tmp_path: Path) -> None:
    melt = shutil.which("melt")
    if melt is None:
        missing_tool("melt is not installed (Debian's melt package)")
    config, source = studio
    # The config's own engine settings: music is found beside the config file.
    outcome = run_job(config, LocalBackend(LocalEngine(config.engine)), source, tmp_path / "out", job_id="music1",
                      rule=config.rule("music"), context=JobContext())
    assert set(outcome.outputs) == {".kdenlive", ".log.json"}
    rendered = tmp_path / "melt.mov"
    subprocess.run([melt, "-quiet", str(outcome.outputs[".kdenlive"]), "-consumer", f"avformat:{rendered}",
                    "vcodec=libx264", "preset=ultrafast", "acodec=pcm_s16le"], check=True, capture_output=True,
                   timeout=240)
    tone, rest = _tone_and_rest(rendered, 1000)
    source_tone, speech = _tone_and_rest(source, 1000)
    assert tone > 20 and source_tone < 5  # the music plays (the source has no steady tone)
    assert rest > 0.3 * speech  # and so does the source's sound: both tracks are mixed


#: MLT's own DTD, shipped by Debian's libmlt-data (installed with melt).
MLT_DTD = Path("/usr/share/mlt-7/xml/mlt-xml.dtd")


def test_the_kdenlive_project_is_valid_mlt_xml(cut: dict[str, Path]) -> None:
    if not MLT_DTD.is_file():
        missing_tool(f"{MLT_DTD} is not installed (Debian's libmlt-data, installed with melt)")
    from lxml import etree

    # MLT 7.12's DTD declares one element without parentheses, which libxml2 rejects; that
    # declaration is read as meant (a list of properties), the rest as shipped.
    text = MLT_DTD.read_text(encoding="utf-8").split("?>", 1)[-1]
    text = text.replace("<!ELEMENT properties property >", "<!ELEMENT properties (property)* >")
    dtd = etree.DTD(io.StringIO(text))
    document = etree.parse(str(cut[".kdenlive"]))
    assert dtd.validate(document), dtd.error_log.filter_from_errors()


def test_a_timeline_only_rule_publishes_no_mp4(studio: tuple[Config, Path], engine: LocalEngine) -> None:
    config, source = studio
    backend = LocalBackend(engine)
    context = JobContext()
    before = sorted(config.watches[0].output.glob("*.mp4"))
    outcome = run_job(config, backend, source, config.watches[0].output, job_id="only1",
                      rule=config.rule("only"), context=context, watch=config.watches[0])
    assert set(outcome.outputs) == {".srt", ".vtt", ".kdenlive", ".xml", ".log.json"}
    assert list(outcome.outputs)[-1] == ".xml"  # the last timeline appears last
    assert all(path.exists() for path in outcome.outputs.values())
    assert sorted(config.watches[0].output.glob("*.mp4")) == before  # no MP4 rendered
    assert "-->" in outcome.outputs[".srt"].read_text(encoding="utf-8")
    assert "timeline only" in outcome.summary
    again = run_job(config, backend, source, config.watches[0].output, job_id="only1",
                    rule=config.rule("only"), context=context, watch=config.watches[0])
    assert again.summary == "already published" and again.outputs == outcome.outputs


def test_the_default_media_path_is_the_source_on_this_host(studio: tuple[Config, Path], engine: LocalEngine) -> None:
    config, source = studio
    here = config.watches[1].path / "talk.mp4"
    shutil.copyfile(source, here)
    outcome = run_job(config, LocalBackend(engine), here, config.watches[1].output, job_id="edl1",
                      rule=config.rule("edl"), context=JobContext(), watch=config.watches[1])
    assert set(outcome.outputs) == {".edl", ".mp4", ".log.json"}
    log = json.loads(outcome.outputs[".log.json"].read_text(encoding="utf-8"))
    assert log["timeline_export"]["media"] == here.resolve().as_uri()
    assert f"* FROM CLIP: {here.resolve().as_uri()}" in outcome.outputs[".edl"].read_text(encoding="utf-8")


def test_a_source_the_format_cannot_reference_is_a_one_line_job_error(
    studio: tuple[Config, Path], engine: LocalEngine, tmp_path: Path,
) -> None:
    config, _ = studio
    slides = make_clip(tmp_path / "slides.mp4", width=160, height=90, seconds=2.0, fps=12)
    with pytest.raises(PermanentJobError) as caught:
        run_job(config, LocalBackend(engine), slides, tmp_path / "out", job_id="edl2", rule=config.rule("edl"),
                context=JobContext())
    message = str(caught.value)
    assert message.startswith("CMX 3600 EDL cannot reference slides.mp4 at 12 fps") and "\n" not in message
    assert not (tmp_path / "out").exists() or not any(p.suffix == ".mp4" for p in (tmp_path / "out").iterdir())


def _nemod(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nemod", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=240, check=False)


def test_the_command_line_checks_explains_and_processes_a_timeline_rule(
    studio: tuple[Config, Path], tmp_path: Path,
) -> None:
    _, source = studio
    (tmp_path / "inbox").mkdir()
    clip = tmp_path / "inbox" / "talk.mp4"
    shutil.copyfile(source, clip)
    config = tmp_path / "nemod.yaml"
    config.write_text(textwrap.dedent("""\
        watch:
          - path: ./inbox
            output: ./outbox
            timeline_media: smb://nas/inbox
        rules:
          - name: r
            edit: "trim the pauses, export the timeline for Avid"
        """), encoding="utf-8")
    bad = _nemod("check", "-c", "nemod.yaml", cwd=tmp_path)
    assert bad.returncode == 2
    assert "nemod.yaml:7 rules[0].edit: unknown timeline format 'avid'" in bad.stdout + bad.stderr
    config.write_text(config.read_text(encoding="utf-8").replace("for Avid", "for Resolve only"), encoding="utf-8")
    explained = _nemod("explain", "-c", "nemod.yaml", str(clip), cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    assert "timeline for editors: talk.fcpxml (no MP4)" in explained.stdout
    processed = _nemod("process", "-c", "nemod.yaml", str(clip), cwd=tmp_path)
    assert processed.returncode == 0, processed.stderr
    assert sorted(path.name for path in (tmp_path / "outbox").iterdir()) == ["talk.fcpxml", "talk.log.json"]
    assert 'src="smb://nas/inbox/talk.mp4"' in (tmp_path / "outbox" / "talk.fcpxml").read_text(encoding="utf-8")

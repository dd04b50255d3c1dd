"""``nemod check`` and ``nemod process`` as a user runs them: real CLI, real ffmpeg."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import av
import pytest

from nemod.samples import make_clip

SVG = "{http://www.w3.org/2000/svg}"

def nemod(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nemod", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=240, check=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "nemod.yaml").write_text(textwrap.dedent("""\
        state_dir: ./state
        watch:
          - path: ./inbox
            output: ./outbox
        rules:
          - name: hd
            match: {extensions: [mp4, mov]}
            edit: "export 1080p MP4"
        """))
    return tmp_path


def test_check_accepts_a_good_config(project: Path) -> None:
    result = nemod("check", "-c", "nemod.yaml", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "OK (1 rules, 1 watched folders, backend local)" in result.stdout


def test_check_prints_every_problem_one_per_line_and_exits_2(project: Path) -> None:
    config = project / "nemod.yaml"
    config.write_text(config.read_text().replace("./inbox", "./missing").replace("edit:", "edti:"))
    result = nemod("check", "-c", "nemod.yaml", cwd=project)
    assert result.returncode == 2
    # the schema problem and the missing folder, both at once
    assert sorted(result.stderr.splitlines()) == [
        f"nemod.yaml:3 watch[0].path: folder not found: {project / 'missing'}",
        "nemod.yaml:8 rules[0].edti: unknown key 'edti' (expected one of: edit, language, match, min_credits, "
        "name, on_failure, on_success, operations, output, picture, schedule)",
    ]
    assert "Traceback" not in result.stderr


def test_process_turns_a_720p_clip_into_a_1080p_h264_mp4_with_a_log(project: Path) -> None:
    source = make_clip(project / "inbox" / "clip one.mp4", width=1280, height=720, seconds=2)
    before = source.read_bytes()
    result = nemod("process", "-c", "nemod.yaml", str(source), cwd=project)
    assert result.returncode == 0, result.stderr
    output = project / "outbox" / "clip one.mp4"
    with av.open(str(output)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.name, video.width, video.height) == ("h264", 1920, 1080)
        assert container.streams.audio[0].codec_context.name == "aac"
        assert container.duration is not None
        assert abs(container.duration / 1e6 - 2.0) < 0.1
    # +faststart: the index (moov) comes before the media data (mdat).
    head = output.read_bytes()[:4096]
    assert b"moov" in head
    log = json.loads((project / "outbox" / "clip one.log.json").read_text())
    assert log["rule"] == "hd"
    assert Path(log["ffmpeg_command"][0]).name.startswith("ffmpeg")
    assert "+faststart" in log["ffmpeg_command"]
    assert log["versions"]["nemod"]
    assert source.read_bytes() == before, "the source must never be modified"
    leftovers = [p.name for p in (project / "outbox").iterdir()]
    assert sorted(leftovers) == ["clip one.log.json", "clip one.mp4"]


def test_process_refuses_a_text_file_named_mp4_in_one_line(project: Path) -> None:
    fake = project / "inbox" / "notes.mp4"
    fake.write_text("this is not a video\n")
    result = nemod("process", "-c", "nemod.yaml", str(fake), cwd=project)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("nemod: notes.mp4 is not a readable video or audio file")
    assert fake.read_text() == "this is not a video\n"
    assert not list((project / "outbox").glob("*.mp4"))


def test_process_refuses_an_unaccepted_type(project: Path) -> None:
    other = project / "inbox" / "doc.txt"
    other.write_text("x")
    result = nemod("process", "-c", "nemod.yaml", str(other), cwd=project)
    assert result.returncode == 1
    assert "not an accepted type" in result.stderr


def test_explain_and_the_job_log_say_why_each_pause_was_cut(project: Path) -> None:
    from nemod.samples import make_talk

    config = project / "nemod.yaml"
    config.write_text(config.read_text().replace('"export 1080p MP4"', '"trim the pauses gently"\n    picture: svg'))
    talk = make_talk(project / "inbox" / "talk.mp4", width=160, height=120)
    result = nemod("explain", "-c", "nemod.yaml", str(talk.path), "--picture", "explained.svg", cwd=project)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    (header,) = [line for line in lines if "pause trim:" in line]
    assert "sensitivity gentle" in header and "silero, level" in header
    cuts = [line for line in lines if line.strip().startswith("cut ")]
    assert len(cuts) >= len(talk.pauses) and all("Silero at most" in line for line in cuts)
    assert nemod("process", "-c", "nemod.yaml", str(talk.path), cwd=project).returncode == 0
    log = json.loads((project / "outbox" / "talk.log.json").read_text())
    trim = log["draft"]["t"][0]["m"]["trim"]
    assert trim["sensitivity"] == "gentle" and len(trim["cuts"]) == len(cuts)
    for start, end in talk.pauses:  # each inserted pause is (mostly) inside one cut
        assert any(cut["start"] <= start + 0.6 and cut["end"] >= end - 0.6 for cut in trim["cuts"]), (start, end)
    # The picture beside the outputs, and explain's, draw one struck stretch per cut.
    assert sorted(p.name for p in (project / "outbox").iterdir()) == ["talk.log.json", "talk.mp4", "talk.timeline.svg"]
    for picture in (project / "outbox" / "talk.timeline.svg", project / "explained.svg"):
        drawn = [rect for rect in ET.parse(picture).getroot().iter(f"{SVG}rect") if rect.get("class") == "cut"]
        assert len(drawn) == len(trim["cuts"]), picture

"""Pause-trim quality on the real-speech corpus: words lost and dead air kept, side by side.

For every corpus clip (``tests/corpus``: three real recordings × 13 variants — room tone,
babble/street/music beds at 20/10/5 dB, telephone band, reverb, a quiet speaker) this
prints, for each tool, how many words lose sound to the cuts and how many seconds of the
clip's pauses are kept:

- ``nemod``: the local engine's pause trim (``trim the pauses``, default sensitivity);
- ``silero-0.5``: the pause trim nemod shipped before (Silero VAD alone, threshold 0.5),
  for comparison;
- ``auto-editor``: auto-editor 23.32.1 with its defaults (audio threshold 4 %, margin 0.2 s).
  It is pure Python and is installed by this script into a throwaway virtual environment
  (``bench/.cache/auto-editor``) from PyPI; it needs ``ffmpeg`` and ``ffprobe`` on PATH
  (Debian: ``apt-get install ffmpeg``). ``--no-auto-editor`` leaves it out.

The truth is where the words are in the clean recordings (``tests/corpus/truth.json``);
nothing is re-transcribed. Run: ``.venv/bin/python bench/trim_quality.py``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import corpus  # noqa: E402

from nemod.engine.vad import audio_chunks, kept_ranges  # noqa: E402

AUTO_EDITOR = "auto-editor==23.32.1"
Range = tuple[float, float]


def ensure_auto_editor(folder: Path) -> Path:
    """The auto-editor command in ``folder`` (a virtual environment made on first use)."""
    command = folder / "bin" / "auto-editor"
    if command.exists():
        return command
    venv.create(folder, with_pip=True)
    pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q"]
    # 23.32.1 pins av 10.0.0, which has no wheel for current Pythons; its API is that of
    # av 11–13, so install it without its pins and give it those.
    subprocess.run([*pip, "--no-deps", AUTO_EDITOR], check=True)
    subprocess.run([*pip, "--only-binary=:all:", "numpy<2", "pillow", "av>=11,<14"], check=True)
    return command


def auto_editor_kept(command: Path, clip: corpus.Clip, work: Path) -> list[Range]:
    """The source ranges auto-editor keeps of ``clip`` with its default settings."""
    out = work / f"{clip.name}.json"
    subprocess.run([str(command), str(clip.path), "--my-ffmpeg", "--export", "json", "--output", str(out),
                    "--no-open", "--progress", "none"], check=True, capture_output=True)
    data = json.loads(out.read_text())
    return _timeline_ranges(data)


def _timeline_ranges(data: dict[str, object]) -> list[Range]:
    """Kept source ranges from auto-editor 23's JSON timeline (``v`` layers of clips with
    ``offset``/``dur`` in timebase units, ``timebase`` "num/den")."""
    num, den = (int(x) for x in str(data["timebase"]).split("/"))
    tick = den / num
    ranges: list[Range] = []
    layers = data.get("a") or data.get("v")
    for clip in layers[0]:  # type: ignore[index]
        speed = float(clip.get("speed", 1.0))
        start = clip["offset"] * tick
        ranges.append((start, start + clip["dur"] * tick * speed))
    return sorted(ranges)


def silero_kept(clip: corpus.Clip) -> list[Range]:
    """What nemod's earlier pause trim kept: Silero VAD alone at threshold 0.5 (speech pad
    30 ms, 100 ms minimum silence), 0.5 s minimum pause, 0.2 s padding."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    speech: list[Range] = []
    offset = 0.0
    for chunk in audio_chunks(clip.path):
        options = VadOptions(threshold=0.5, min_speech_duration_ms=120, min_silence_duration_ms=100, speech_pad_ms=30)
        for piece in get_speech_timestamps(chunk, options, sampling_rate=16_000):
            speech.append((offset + piece["start"] / 16_000, offset + piece["end"] / 16_000))
        offset += len(chunk) / 16_000
    kept, _ = kept_ranges(speech, (0.0, clip.duration), min_pause=0.5, padding=0.2)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-auto-editor", action="store_true", help="leave auto-editor out")
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / ".cache" / "auto-editor")
    parser.add_argument("--edit", default="trim the pauses", help="the nemod rule to measure")
    args = parser.parse_args()

    command = None
    if not args.no_auto_editor:
        if not (shutil.which("ffmpeg") and shutil.which("ffprobe")):
            parser.error("auto-editor needs ffmpeg and ffprobe on PATH (or pass --no-auto-editor)")
        command = ensure_auto_editor(args.cache)
    tools = ["nemod", "silero-0.5", *(["auto-editor"] if command else [])]
    totals = {tool: [0, 0.0] for tool in tools}
    pause_total = 0.0
    print(f"{'clip':<20} {'pauses s':>8} " + " ".join(f"{tool + ' lost/dead':>22}" for tool in tools))
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        for base in corpus.bases():
            for kind in corpus.VARIANTS:
                clip = corpus.build(base, kind, work)
                kept = {"nemod": corpus.nemod_kept(clip, args.edit)[0], "silero-0.5": silero_kept(clip)}
                if command:
                    kept["auto-editor"] = auto_editor_kept(command, clip, work)
                pauses = sum(b - a for a, b in clip.pauses)
                pause_total += pauses
                cells = []
                for tool in tools:
                    lost = len(corpus.lost_words(clip, kept[tool]))
                    dead = corpus.dead_air(clip, kept[tool])
                    totals[tool][0] += lost
                    totals[tool][1] += dead
                    cells.append(f"{lost:>10} / {dead:>7.1f} s")
                print(f"{clip.name:<20} {pauses:>8.1f} " + " ".join(f"{cell:>22}" for cell in cells), flush=True)
    words = sum(len(corpus.truth()[base]["words"]) for base in corpus.bases()) * len(corpus.VARIANTS)  # type: ignore[arg-type]
    print(f"{'total':<20} {pause_total:>8.1f} " + " ".join(
        f"{f'{lost:>10} / {dead:>7.1f} s':>22}" for lost, dead in totals.values()))
    print(f"({words} words in all; dead air: seconds of the clips' pauses kept)")


if __name__ == "__main__":
    main()

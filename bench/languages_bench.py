"""Whisper tiny.en against Whisper base on real speech, side by side in one run.

For each (model, recording) pair, a fresh process loads the model, transcribes the
recording the way the engine does (``nemod.engine.transcribe.Transcriber``: beam 5, word
timings, Silero-filtered) and reports its wall time and peak memory; the parent scores the
text against the recording's transcript (word error rate; character error rate for Chinese,
in Simplified characters after OpenCC as the engine writes them) and detects each
recording's language with base from its speech. Medians over ``--runs`` runs.

Recordings: the English reading bundled with nemod (29 s; ``nemod.samples.TRANSCRIPT``) and
three that the repository ships in ``tests/corpus/sources/`` (``--media`` to use another
folder holding the same files): German read speech with long pauses (FLEURS, 43 s),
Mandarin (5.6 s), Spanish (7.7 s, detection only: its transcript is not published).

Run:  .venv/bin/python bench/languages_bench.py [--runs 3] [--threads 2] [--media tests/corpus/sources]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from faster_whisper.audio import decode_audio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from corpus.transcripts import CHINESE, GERMAN

from nemod.engine.captions import character_error_rate, word_error_rate
from nemod.engine.chinese import convert_text
from nemod.engine.transcribe import Transcriber
from nemod.samples import PHRASES, TRANSCRIPT, speech_file

CHILD = """
import json, resource, sys, time
from faster_whisper.audio import decode_audio
from nemod.engine.transcribe import Transcriber
model, audio, language, threads, cache = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
from pathlib import Path
samples = decode_audio(audio)
transcriber = Transcriber(model, threads, Path(cache))
started = time.perf_counter(); transcriber._load(); loaded = time.perf_counter() - started
started = time.perf_counter()
words = transcriber.words(samples, language=None if language == "-" else language)
seconds = time.perf_counter() - started
print(json.dumps({"load": loaded, "seconds": seconds, "audio": len(samples) / 16000,
                  "text": " ".join(w.text for w in words), "joined": "".join(w.text for w in words),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""




def one(model: str, audio: Path, language: str, threads: int, cache: Path) -> dict[str, Any]:
    """Transcribe ``audio`` with ``model`` in a fresh process; its figures."""
    result = subprocess.run([sys.executable, "-c", CHILD, model, str(audio), language, str(threads), str(cache)],
                            capture_output=True, text=True, check=True)
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--media", type=Path, default=Path(__file__).parents[1] / "tests" / "corpus" / "sources")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        english = work / "english.wav"
        from nemod.media import ffmpeg

        ffmpeg.run(["-y", "-i", str(speech_file()), "-t", str(PHRASES[-1][1]), "-ac", "1", "-ar", "16000", str(english)])
        cases = [
            ("tiny.en", english, "-", TRANSCRIPT, "wer"),
            ("base", english, "en", TRANSCRIPT, "wer"),
            ("base", args.media / "german_fleurs.ogg", "de", GERMAN, "wer"),
            ("base", args.media / "babble_zh.wav", "zh", CHINESE, "cer"),
        ]
        rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for _ in range(args.runs):
            for model, audio, language, reference, metric in cases:
                figures = one(model, audio, language, args.threads, work / "models")
                text = convert_text(figures["joined"], "t2s") if metric == "cer" else figures["text"]
                figures["error"] = (character_error_rate(reference, text) if metric == "cer"
                                    else word_error_rate(reference, text))
                figures["metric"] = metric
                rows.setdefault((model, audio.name), []).append(figures)
        print(f"{'model':8} {'recording':32} {'audio s':>8} {'× real time':>12} {'load s':>7} {'peak MB':>8} {'error':>12}")
        for (model, name), runs in rows.items():
            rtf = statistics.median(run["seconds"] / run["audio"] for run in runs)
            print(f"{model:8} {name:32} {runs[0]['audio']:8.1f} {rtf:12.3f} "
                  f"{statistics.median(r['load'] for r in runs):7.2f} {max(r['peak_mb'] for r in runs):8.0f} "
                  f"{runs[0]['metric'].upper()} {statistics.median(r['error'] for r in runs):.3f}")
        detector = Transcriber("base", args.threads, work / "models")
        for audio in (english, args.media / "german_fleurs.ogg", args.media / "babble_zh.wav",
                      args.media / "babble_es.wav"):
            language, probability = detector.detect(decode_audio(str(audio)))
            print(f"detected {audio.name}: {language} ({probability:.3f})")


if __name__ == "__main__":
    main()

"""Write ``truth.json``: where the speech is in each clean base recording.

Run once when a base is added (``.venv/bin/python tests/corpus/make_truth.py``); the
result is committed, so the tests never depend on what a model decodes on one CPU.

- *Speech spans* come from the level of the clean recording: 20 ms windows every 10 ms
  louder than both its noise floor + 10 dB and its speech level − 30 dB (below that is the room's decay, not the word), joined across
  gaps under 120 ms. A span holds every sound of the words, soft endings included.
- A span in which Whisper hears nothing when it is transcribed alone and whose sound is
  noise-like (more than 30 % zero crossings: an intake of breath, a rustle) is marked
  ``breath``: cutting it loses no word.
- *Words* are what Whisper tiny.en hears in the clean recording, with its (loose) times:
  they name what is lost when a span is cut (:func:`corpus.lost_words` counts a word as
  lost by the part of it that lies inside the spans).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corpus import HERE, RATE, decode

#: name → (source file in sources/ or "nemod:speech", window start, window end, what it is)
BASES: dict[str, tuple[str, float, float, str]] = {
    "lecture": ("lecture.ogg", 0.0, 69.2, "VoxPopuli: a speech in the European Parliament hall, room acoustics"),
    "phone": ("phone.wav", 0.0, 35.5, "Open Speech Repository: ten Harvard sentences over a telephone line"),
    "reading": ("nemod:speech", 0.0, 29.12, "faster-whisper test data: a reading of the MIT licence (English part)"),
}


def speech_spans(samples: np.ndarray) -> list[tuple[float, float]]:
    """Level-based speech spans (seconds) of a clean recording."""
    hop, window = 160, 320
    count = max(0, (len(samples) - window) // hop)
    level = np.array([10 * np.log10(np.mean(samples[i * hop: i * hop + window] ** 2) + 1e-12) for i in range(count)])
    threshold = max(np.percentile(level, 5) + 10, np.percentile(level, 95) - 30)
    spans: list[list[float]] = []
    index = 0
    while index < count:
        if level[index] > threshold:
            end = index
            while end < count and level[end] > threshold:
                end += 1
            a, b = index * hop / RATE, (end * hop + window) / RATE
            if spans and a - spans[-1][1] < 0.12:
                spans[-1][1] = b
            else:
                spans.append([a, b])
            index = end
        else:
            index += 1
    return [(round(a, 3), round(b, 3)) for a, b in spans if b - a >= 0.05]


def _is_breath(transcriber: object, samples: np.ndarray, start: float, end: float) -> bool:
    """True when the span holds no word Whisper hears alone and sounds like noise."""
    piece = samples[max(0, round((start - 0.05) * RATE)): round((end + 0.05) * RATE)]
    crossings = float(np.mean(np.abs(np.diff(np.sign(piece))) > 0))
    if crossings <= 0.3:
        return False
    silence = np.zeros(RATE // 2, np.float32)
    model = transcriber._load()  # type: ignore[attr-defined]
    segments, _ = model.transcribe(np.concatenate([silence, piece, silence]), beam_size=5, vad_filter=False)
    return not "".join(segment.text for segment in segments).strip()


def main() -> None:
    from nemod.engine.transcribe import Transcriber
    from nemod.samples import speech_file

    transcriber = Transcriber("tiny.en")
    out: dict[str, object] = {}
    for name, (source, start, end, about) in BASES.items():
        path = speech_file() if source == "nemod:speech" else HERE / "sources" / source
        samples = decode(path, start, end)
        words = transcriber.words(samples)
        spans = speech_spans(samples)
        breaths = [(a, b) for a, b in spans if _is_breath(transcriber, samples, a, b)]
        out[name] = {
            "source": source, "window": [start, end], "about": about,
            "speech": [span for span in spans if span not in breaths],
            "breaths": breaths,
            "words": [[round(w.start, 3), round(w.end, 3), w.text] for w in words],
        }
        print(name, len(spans) - len(breaths), "speech spans,", len(breaths), "breaths,", len(words), "words")
    (HERE / "truth.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""A source's loudness over time, for the picture of an edit (:mod:`nemod.picture`)."""

from __future__ import annotations

import math
from pathlib import Path

from nemod.engine.vad import SAMPLE_RATE, audio_chunks
from nemod.errors import MediaError
from nemod.picture import FLOOR_DB, Loudness

#: Seconds per loudness value: fine enough for a 10-minute talk at picture width.
STEP = 0.05


def loudness(path: Path, *, step: float = STEP, has_audio: bool = True) -> Loudness:
    """The RMS level (dBFS, at least :data:`~nemod.picture.FLOOR_DB`) of each ``step``
    seconds of ``path``'s first sound track, decoded at 16 kHz mono; no values when
    ``has_audio`` is false. Raises :class:`MediaError` when the sound cannot be decoded."""
    if not has_audio:
        return Loudness(step, ())
    import av
    import numpy as np

    size = max(1, round(step * SAMPLE_RATE))
    values: list[float] = []
    rest = np.zeros(0, dtype=np.float32)
    try:
        for chunk in audio_chunks(path):
            samples = np.concatenate([rest, chunk])
            whole = len(samples) // size * size
            blocks = samples[:whole].reshape(-1, size)
            rms = np.sqrt(np.mean(np.square(blocks, dtype=np.float64), axis=1))
            values.extend(max(FLOOR_DB, 20 * math.log10(r)) if r > 0 else FLOOR_DB for r in rms.tolist())
            rest = samples[whole:]
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{path.name}: cannot read its sound ({exc})") from exc
    if len(rest):
        r = float(np.sqrt(np.mean(np.square(rest, dtype=np.float64))))
        values.append(max(FLOOR_DB, 20 * math.log10(r)) if r > 0 else FLOOR_DB)
    return Loudness(step, tuple(values))

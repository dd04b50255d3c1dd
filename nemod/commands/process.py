"""``nemod process``: run the whole pipeline on one file now, in the foreground."""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

from nemod.app import build_backend
from nemod.backends.base import JobContext
from nemod.commands import add_config_option, load_config
from nemod.errors import NemodError
from nemod.pipeline import choose_rule, run_job
from nemod.progress import ProgressBar


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser("process", help="process one file now")
    add_config_option(parser)
    parser.add_argument("file", type=Path)
    parser.add_argument("-o", "--output", type=Path, help="output folder (default: the first watch folder's)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Exit 0 once the outputs are written; raise NemodError (exit 1) otherwise."""
    config = load_config(args, check_folders=False)
    source: Path = args.file.resolve()
    output = args.output or (config.watches[0].output if config.watches else source.parent / "nemod-output")
    rule = choose_rule(config, source, None)
    # A file inside a watch folder is referenced in exported timelines as that folder says.
    watch = next((folder for folder in config.watches if source.is_relative_to(folder.path)), None)
    bar = ProgressBar()
    try:
        outcome = run_job(
            config, build_backend(config), source, output.resolve(),
            job_id=uuid.uuid4().hex[:12], rule=rule, context=JobContext(progress=bar), watch=watch,
        )
    except NemodError:
        bar.close()
        raise
    bar.close()
    print(f"{source.name}: rule {outcome.rule}, {outcome.summary}")
    for path in outcome.outputs.values():
        print(f"  wrote {path}")
    return 0

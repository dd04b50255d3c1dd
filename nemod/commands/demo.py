"""``nemod demo``: make a demo folder with a sample clip and config, process it, show the result.

The clip is made on this machine from the bundled speech recording (see
:mod:`nemod.samples`); nothing is downloaded and no account is needed.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any

from nemod import config as config_module
from nemod.app import build_backend
from nemod.backends.base import JobContext
from nemod.pipeline import choose_rule, run_job
from nemod.progress import ProgressBar
from nemod.samples import make_talk

DEMO_EDIT = "trim the pauses, add captions, export 1080p MP4"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser("demo", help="process a sample clip end to end")
    parser.add_argument("folder", nargs="?", type=Path, default=Path("nemod-demo"),
                        help="where to create the demo (default: ./nemod-demo)")
    return parser


def write_demo_config(folder: Path) -> Path:
    """Write ``folder/nemod.yaml`` (inbox → outbox, one rule) and return its path."""
    for name in ("inbox", "outbox"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    config = folder / "nemod.yaml"
    config.write_text(textwrap.dedent(f"""\
        # nemod demo: files dropped into inbox/ are edited into outbox/.
        # Run the daemon on it with:  nemod run -c {config}
        state_dir: ./state
        backend: local
        settle_seconds: 2
        watch:
          - path: ./inbox
            output: ./outbox
        rules:
          - name: talking-head
            match: {{glob: "*.mp4"}}
            edit: "{DEMO_EDIT}"
        """), encoding="utf-8")
    return config


def run(args: argparse.Namespace) -> int:
    """Create the demo, process its clip in the foreground and print where the result is."""
    folder: Path = args.folder.resolve()
    config_path = write_demo_config(folder)
    print(f"Making a sample clip in {folder / 'inbox'} ...")
    talk = make_talk(folder / "inbox" / "talk.mp4")
    config = config_module.load(config_path)
    rule = choose_rule(config, talk.path, config.watches[0])
    print(f"Processing {talk.path.name} with rule {rule.name!r}: {rule.instruction}")
    bar = ProgressBar()
    try:
        outcome = run_job(config, build_backend(config), talk.path, config.watches[0].output,
                          job_id="demo", rule=rule, context=JobContext(progress=bar))
    finally:
        bar.close()
    print(outcome.summary)
    for path in outcome.outputs.values():
        print(f"  wrote {path}")
    print(f"Done in {outcome.seconds:.1f} s. Watch the folder with:  nemod run -c {config_path}")
    return 0

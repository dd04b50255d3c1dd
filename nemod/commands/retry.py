"""``nemod retry``: queue a failed job again (or every failed job)."""

from __future__ import annotations

import argparse
from typing import Any

from nemod.commands import add_config_option, load_config
from nemod.errors import NemodError
from nemod.store import open_store


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser("retry", help="queue failed jobs again")
    add_config_option(parser)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("job", nargs="?", help="job id (as shown by nemod jobs: 12 or job-12)")
    group.add_argument("--failed", action="store_true", help="every failed job")
    return parser


def run(args: argparse.Namespace) -> int:
    """Queue the job(s); exit 1 when the job is unknown or not failed.

    A job whose source was moved to the failed folder needs the file put back in the
    watched folder first (the job remembers the original path).
    """
    config = load_config(args, check_folders=False)
    store = open_store(config.state_dir)
    try:
        if args.failed:
            count = store.retry(None)
            print(f"queued {count} failed job{'s' if count != 1 else ''} again")
            return 0
        text = str(args.job).removeprefix("job-")
        if not text.isdigit():
            raise NemodError(f"not a job id: {args.job}")
        if store.retry(int(text)) != 1:
            job = store.get(int(text))
            what = f"is {job.label}" if job else "does not exist"
            raise NemodError(f"job {text} {what}; only failed jobs can be retried")
        print(f"queued job {text} again")
        return 0
    finally:
        store.close()

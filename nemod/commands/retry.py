"""``nemod retry``: queue a failed job again (or every failed job).

A source that was moved to its failed folder is moved back to where it was found
(and its ``.error.txt`` removed), so the job can read it again.
"""

from __future__ import annotations

import argparse
from typing import Any

from nemod.actions import restore_source, retry_job
from nemod.app import build_store
from nemod.commands import add_config_option, load_config
from nemod.errors import NemodError
from nemod.store import JobState


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser("retry", help="queue failed jobs again")
    add_config_option(parser)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("job", nargs="?", help="job id (as shown by nemod jobs: 12 or job-12)")
    group.add_argument("--failed", action="store_true", help="every failed job")
    return parser






def run(args: argparse.Namespace) -> int:
    """Queue the job(s); exit 1 when the job is unknown or not failed."""
    config = load_config(args, check_folders=False)
    store = build_store(config)
    try:
        if args.failed:
            failed = store.jobs(JobState.FAILED, limit=1_000_000)
        else:
            text = str(args.job).removeprefix("job-")
            if not text.isdigit():
                raise NemodError(f"not a job id: {args.job}")
            failed = [retry_job(config, store, int(text))]
        if args.failed:
            for job in failed:
                restore_source(config, job)
                store.retry(job.id)
        plural = "s" if len(failed) != 1 else ""
        print(f"queued {len(failed)} failed job{plural} again")
        return 0
    finally:
        store.close()

"""``nemod jobs``: list jobs from the job store (newest first)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from nemod.app import build_store
from nemod.commands import add_config_option, load_config
from nemod.names import shown
from nemod.store import Job, JobState


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser("jobs", help="list jobs")
    add_config_option(parser)
    parser.add_argument("--state", choices=[s.value for s in JobState], help="only this state")
    parser.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    parser.add_argument("--json", action="store_true", help="one JSON array on stdout")
    return parser


def job_to_dict(job: Job) -> dict[str, Any]:
    """A job as plain JSON-ready data."""
    return {
        "id": job.id, "state": job.label, "rule": job.rule, "root": job.source.root,
        "file": shown(job.source.relative), "fingerprint": job.fingerprint, "attempts": job.attempts,
        "step": job.step, "progress": job.progress, "created_at": job.created_at,
        "updated_at": job.updated_at, "not_before": job.not_before, "outputs": dict(job.outputs),
        "error": job.error, "error_code": job.error_code, "wait_reason": job.wait_reason,
        "host": job.host if job.state is JobState.RUNNING else None,
    }


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def run(args: argparse.Namespace) -> int:
    """Print the jobs; exit 0."""
    config = load_config(args, check_folders=False)
    store = build_store(config)
    try:
        jobs = store.jobs(JobState(args.state) if args.state else None, limit=args.limit)
    finally:
        store.close()
    if args.json:
        print(json.dumps([job_to_dict(job) for job in jobs], indent=2))
        return 0
    if not jobs:
        print("no jobs")
        return 0
    for job in jobs:
        when = _when(job.updated_at)
        line = f"{job.id:>6}  {job.label:<16} {when}  {job.rule:<12} {shown(job.source.relative)}"
        if job.state is JobState.RUNNING and job.host:
            line += f"  (on {job.host})"
        if job.error and job.state is not JobState.DONE:
            line += f"\n        {job.error}"
        print(line)
    return 0

"""``nemod credits``: print the NemoVideo balance (available, frozen, total)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from nemod.app import build_cloud_backend
from nemod.commands import add_config_option, load_config


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "credits", help="show the NemoVideo credit balance"
    )
    add_config_option(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the balance; exit 0, or raise NemodError (exit 1) when the API refuses."""
    config = load_config(args, check_folders=False)
    backend = build_cloud_backend(config)
    try:
        balance = backend.balance()
    finally:
        backend.close()
    if args.json:
        print(
            json.dumps(
                {
                    "available": balance.available,
                    "frozen": balance.frozen,
                    "total": balance.total,
                    "api_url": backend.client.api_url,
                }
            )
        )
    else:
        print(
            f"available {balance.available}, frozen {balance.frozen}, total {balance.total}"
            f"  ({backend.client.api_url})"
        )
    return 0

"""``nemod password``: print the ``status_auth.password_hash`` line for a password.

The password is read from the terminal without echo (or one line of standard input), so
it never appears in the shell history or the process list.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from nemod.errors import NemodError
from nemod.web.auth import hash_password


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "password", help="hash a password for the dashboard's status_auth.password_hash"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the hash; exit 1 for an empty password."""
    password = getpass.getpass("dashboard password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not password:
        raise NemodError("an empty password cannot protect the dashboard")
    print(f"status_auth:\n  password_hash: \"{hash_password(password)}\"")
    return 0

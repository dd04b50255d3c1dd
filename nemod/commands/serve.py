"""``nemod serve``: a NemoVideo-compatible API over the local engine, for offline editing.

Any NemoVideo client (``NEMO_API_URL=http://127.0.0.1:8765``) can use it. It binds to
loopback unless ``--host`` says otherwise, issues its own tokens, and keeps each
session's files in ``<data dir>/sessions/<id>/``.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from nemod import logs
from nemod.app import build_engine
from nemod.commands import load_config
from nemod.config import CLOUD_MAX_BYTES, EngineSettings, parse_size
from nemod.errors import NemodError
from nemod.serve.faults import FAULTS, Faults
from nemod.serve.server import NemoServer
from nemod.serve.service import ServeSettings


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve", help="serve the NemoVideo API over the local engine"
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        help="config file for engine settings and state_dir (optional)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="session files (default: state_dir/serve, else a temporary folder removed at exit)",
    )
    parser.add_argument("--balance", type=int, default=100, help="credits of each new account")
    parser.add_argument("--edit-cost", type=int, default=50, help="credits charged per edit")
    parser.add_argument("--max-upload", default=str(CLOUD_MAX_BYTES), help="largest upload (500MB)")
    parser.add_argument("--heartbeat", type=float, default=5.0, help="SSE heartbeat seconds")
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        help="a static token to accept (like NEMO_TOKEN); repeatable",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME[=COUNT]",
        help=f"inject a fault (-1: always): {', '.join(FAULTS)}",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return parser


def _faults(specs: list[str]) -> dict[str, int]:
    faults: dict[str, int] = {}
    for spec in specs:
        name, _, count = spec.partition("=")
        if name not in FAULTS:
            raise NemodError(f"unknown fault {name!r} (known: {', '.join(FAULTS)})")
        try:
            faults[name] = int(count) if count else -1
        except ValueError:
            raise NemodError(f"bad fault count in {spec!r}") from None
    return faults


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _interrupt(signal_number: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C; exit 0."""
    logs.configure(args.log_level)
    engine_settings = EngineSettings()
    data_dir: Path | None = args.data_dir
    if args.config or os.environ.get("NEMOD_CONFIG"):
        config = load_config(args, check_folders=False)
        engine_settings = config.engine
        data_dir = data_dir or config.state_dir / "serve"
    temporary = data_dir is None
    folder = Path(tempfile.mkdtemp(prefix="nemod-serve-")) if data_dir is None else data_dir
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    admin_token = secrets.token_urlsafe(24)
    admin_file = folder / "admin_token"
    descriptor = os.open(admin_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(admin_token + "\n")
    try:
        max_upload = parse_size(args.max_upload)
    except ValueError as exc:
        raise NemodError(str(exc)) from None
    settings = ServeSettings(
        data_dir=folder,
        host=args.host,
        port=args.port,
        balance=args.balance,
        edit_cost=args.edit_cost,
        max_upload_bytes=max_upload,
        heartbeat_seconds=args.heartbeat,
        static_tokens=tuple(args.token),
        admin_token=admin_token,
    )
    try:
        server = NemoServer(
            settings, build_engine(engine_settings), faults=Faults(_faults(args.fault))
        )
    except OSError as exc:
        raise NemodError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    if not _is_loopback(args.host):
        print(
            f"nemod serve: warning: listening on {args.host}, reachable from other machines",
            file=sys.stderr,
        )
    print(
        f"nemod serve: listening on {server.url} (data in {folder}; admin token in {admin_file})",
        flush=True,
    )
    # Stop cleanly on SIGTERM (systemd, docker) and on SIGINT even when started in the
    # background, where SIGINT arrives ignored.
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
    return 0

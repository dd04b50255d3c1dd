"""``nemod explain``: which rule a file matches, why, and the edit plan it would run."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from nemod.app import build_engine
from nemod.commands import add_config_option, load_config
from nemod.edits import Timeline
from nemod.errors import NemodError
from nemod.matching import match_rule, unsupported_reason
from nemod.names import readable
from nemod.outputs import render_name
from nemod.timeline import summarize, trim_lines
from nemod.timeline_export import FORMATS


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser("explain", help="show the rule and plan for a file")
    add_config_option(parser)
    parser.add_argument("file", type=Path)
    parser.add_argument("--picture", type=Path, metavar="SVG",
                        help="also draw the edit (kept and cut stretches, captions, title, music) as an SVG file")
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the match reasons and the plan; exit 1 when no rule matches."""
    config = load_config(args, check_folders=False)
    source: Path = args.file
    if not source.is_file():
        raise NemodError(f"{source}: no such file")
    size = source.stat().st_size
    result = match_rule(config.rules, source.name, size)
    for line in result.reasons:
        print(f"  {line}")
    if result.rule is None:
        print(f"{source.name}: no rule matches")
        return 1
    rule = result.rule
    print(f"{source.name}: rule {rule.name} ({rule.source})")
    reason = unsupported_reason(source.name, size, config.backend)
    if reason:
        print(f"  but it cannot be processed: {reason}")
        return 1
    print(f"  instruction: {rule.instruction}")
    if config.backend == "local":
        # The real analysis (VAD, transcription) so the summary shows what would be cut.
        engine = build_engine(config.engine)
        planned = engine.plan_timeline(source, rule.plan)
        print(f"  {summarize(planned)}")
        for line in trim_lines(planned):
            print(f"  {line}")
        if args.picture is not None:
            try:
                engine.write_picture(planned, source, args.picture)
            except OSError as exc:
                raise NemodError(f"cannot write the picture to {args.picture}: {exc.strerror}") from None
            print(f"  picture: {args.picture}")
        timeline: Timeline | None = rule.plan.find(Timeline)
        if timeline is not None:
            base = render_name(rule.output, stem=readable(source.stem), rule=rule.name,
                               ext=source.suffix.lstrip("."), now=dt.datetime.now(dt.UTC))[: -len(".mp4")]
            files = ", ".join(f"{base}{FORMATS[name].suffix}" for name in timeline.formats)
            print(f"  timeline for editors: {files}{'' if timeline.render else ' (no MP4)'}")
    else:
        print(f"  sent to the {config.backend} backend as written")
        if args.picture is not None:
            print("  no picture: the edit is planned by the cloud service, not here")
    return 0

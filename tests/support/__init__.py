"""Shared test harnesses (``pytest`` puts ``tests/`` on ``sys.path``; see ``pythonpath`` in
pyproject.toml): a manual clock, a copying backend, log capture with the bound context, the
in-process ``nemod serve`` harness and the one-iteration daemon driver."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing_tool(reason: str) -> NoReturn:
    """A test needs a system package that is not installed: skip on a developer's machine,
    but fail as root, where ``scripts/setup --test`` installs it (CI must never pass by
    skipping what it was meant to run)."""
    if os.geteuid() == 0:
        pytest.fail(f"{reason} (scripts/setup --test installs it as root)")
    pytest.skip(reason)

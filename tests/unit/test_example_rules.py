"""The example rules shipped in ``rules/`` are ones ``nemod check`` accepts."""

from __future__ import annotations

from pathlib import Path

from nemod.config import load

RULES = Path(__file__).parents[2] / "rules"


def test_every_example_rule_passes_check(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    config = tmp_path / "nemod.yaml"
    config.write_text(f"rules_dir: {RULES}\nwatch:\n  - path: ./in\n    output: ./out\n")
    loaded = load(config)
    assert {rule.name for rule in loaded.rules} == {path.stem for path in RULES.glob("*.yaml")}

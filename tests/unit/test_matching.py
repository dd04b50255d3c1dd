"""Rule matching: first match wins; types and the cloud size limit are checked first."""

from __future__ import annotations

from pathlib import Path

from nemod.config import Match, Rule, WatchFolder
from nemod.matching import match_rule, unsupported_reason

RULES = (
    Rule("big-mov", Match(extensions=("mov",), min_size=1000)),
    Rule("talks", Match(globs=("talk*.mp4", "TALK*.MOV"))),
    Rule("anything"),
)


def test_first_matching_rule_wins() -> None:
    assert match_rule(RULES, "talk-1.mp4", 10).rule is RULES[1]
    assert match_rule(RULES, "clip.mov", 5000).rule is RULES[0]
    assert match_rule(RULES, "clip.mov", 10).rule is RULES[2]


def test_globs_are_case_insensitive() -> None:
    assert match_rule(RULES, "Talk-2.MP4", 10).rule is RULES[1]


def test_reasons_explain_each_rule_tried() -> None:
    result = match_rule(RULES[:2], "clip.mov", 10)
    assert result.rule is None
    assert result.reasons == (
        "big-mov: 10 bytes is below min_size 1000",
        "talks: name does not match talk*.mp4 or TALK*.MOV",
    )


def test_watch_folder_can_restrict_rules(tmp_path: Path) -> None:
    watch = WatchFolder(tmp_path, tmp_path / "o", tmp_path / "f", tmp_path / "d", rules=("anything",))
    assert match_rule(RULES, "talk-1.mp4", 10, watch).rule is RULES[2]


def test_unsupported_types_and_sizes() -> None:
    assert unsupported_reason("a.mp4", 10, "local") is None
    assert "not an accepted type" in (unsupported_reason("notes.txt", 10, "local") or "")
    assert "no extension" in (unsupported_reason("README", 10, "local") or "")
    assert "empty" in (unsupported_reason("a.mp4", 0, "local") or "")
    assert unsupported_reason("a.mp4", 600_000_000, "local") is None
    assert "500 MB limit" in (unsupported_reason("a.mp4", 600_000_000, "cloud") or "")

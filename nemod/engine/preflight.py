"""What ``nemod check`` verifies about the local engine beyond the config itself: that the
rules' captions can be made on this machine (the multilingual model is installed, a CJK
font exists for burned Chinese/Japanese/Korean text).

The look-ups are passed in, so the decision is testable without changing the machine.
"""

from __future__ import annotations

from collections.abc import Callable

from nemod import languages
from nemod.config import Config, Rule
from nemod.edits import Captions, Title
from nemod.engine.fonts import Font, find_cjk_font
from nemod.engine.models import WHISPER_BASE, is_english_only, package_data
from nemod.errors import Problem

#: Caption languages written in CJK characters.
CJK_LANGUAGES = frozenset({"zh", languages.TRADITIONAL_CHINESE, "yue", "ja", "ko"})


def base_installed() -> bool:
    """True when both packages of the Whisper base model are installed."""
    return all(
        (data := package_data(name)) is not None and (data / f"model.bin.part{index}").is_file()
        for index, name in enumerate(WHISPER_BASE.parts, start=1)
    )


def burns_cjk(rule: Rule) -> bool:
    """True when ``rule`` would burn CJK text into the picture: captions in a CJK language
    (or ``auto`` on a rule written in Chinese), or a title in CJK characters."""
    captions: Captions | None = rule.plan.find(Captions)
    title: Title | None = rule.plan.find(Title)
    if title is not None and languages.has_cjk(title.text):
        return True
    if captions is None or not captions.burn:
        return False
    return captions.language in CJK_LANGUAGES or (
        captions.language == languages.AUTO and languages.written_in_chinese(rule.edit or "")
    )


def _where(rule: Rule) -> tuple[str, int | None]:
    file, _, line = rule.source.rpartition(":")
    return (file, int(line)) if line.isdigit() else (rule.source, None)


def engine_problems(
    config: Config,
    *,
    cjk_font: Callable[[], Font | None] = find_cjk_font,
    multilingual_installed: Callable[[], bool] = base_installed,
) -> list[Problem]:
    """Problems with ``config``'s rules that only show on this machine (local backend only):
    captions other than implicit English with an English-only ``whisper_model`` and no
    Whisper base model installed; burned CJK text with no ``engine.font`` and no CJK font."""
    if config.backend != "local":
        return []
    problems: list[Problem] = []
    font_checked: Font | bool | None = False
    for rule in config.rules:
        file, line = _where(rule)
        captions: Captions | None = rule.plan.find(Captions)
        if (captions is not None and captions.language is not None
                and is_english_only(config.engine.whisper_model) and not multilingual_installed()):
            problems.append(Problem(file, line, "language", (
                f"rule {rule.name!r} captions in {captions.language}, which needs the Whisper base model: "
                f"it is not installed (run: {WHISPER_BASE.install_hint})")))
        if burns_cjk(rule) and not config.engine.font:
            if font_checked is False:
                font_checked = cjk_font()
            if font_checked is None:
                problems.append(Problem(file, line, "edit", (
                    f"rule {rule.name!r} burns Chinese/Japanese/Korean text but no CJK font is installed "
                    "(apt-get install fonts-wqy-zenhei or fonts-noto-cjk, or set engine.font)")))
    return problems



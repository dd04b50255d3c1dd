"""Caption languages (pure): codes and plain words, rules' language, CJK segmentation,
Simplified/Traditional conversion, the speech language detection listens to, and what
``nemod check`` reports for the machine."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nemod import config, languages
from nemod.edits import Captions, EditParseError, parse_edit, plan_from_operations
from nemod.engine.captions import CLOSING, OPENING, Word, attach_punctuation, caption_layout, segment
from nemod.engine.chinese import convert_text, convert_words
from nemod.engine.fonts import Font
from nemod.engine.preflight import burns_cjk, engine_problems
from nemod.engine.vad import first_speech
from nemod.errors import ConfigError


@pytest.mark.parametrize(
    ("said", "code"),
    [("de", "de"), ("DE", "de"), ("auto", "auto"), ("zh", "zh"), ("zh-Hans", "zh"), ("zh_CN", "zh"),
     ("zh-Hant", "zh-Hant"), ("zh-TW", "zh-Hant"), ("German", "de"), ("中文", "zh"), ("yue", "yue")],
)
def test_language_codes_and_names(said: str, code: str) -> None:
    assert languages.canonical(said) == code


def test_an_unknown_language_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown language 'klingon'.*zh-Hant"):
        languages.canonical("klingon")


def test_what_whisper_is_told_and_which_script_chinese_gets() -> None:
    assert languages.whisper_code("auto") is None
    assert languages.whisper_code("zh-Hant") == "zh" and languages.whisper_code("de") == "de"
    assert languages.chinese_script("zh") == "t2s" and languages.chinese_script("zh-Hant") == "s2t"
    assert languages.chinese_script("de") is None
    assert languages.caption_language("auto", "de") == "de" and languages.caption_language("zh-Hant", "zh") == "zh-Hant"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("add Chinese captions", "zh"),
        ("加中文字幕", "zh"),
        ("captions in German", "de"),
        ("加德语字幕", "de"),
        ("add captions in traditional chinese", "zh-Hant"),
        ("加繁体中文字幕", "zh-Hant"),
        ("add captions in the language spoken", "auto"),
        ("add English subtitles", "en"),
        ("add captions", None),
        ("add automatic captions", None),
        ("加字幕", None),
    ],
)
def test_plain_words_name_the_caption_language(text: str, language: str | None) -> None:
    assert parse_edit(text).find(Captions) == Captions(language=language)


def test_structured_captions_take_a_language() -> None:
    assert plan_from_operations([{"op": "captions", "language": "zh-TW", "burn": False}]).find(Captions) == Captions(
        burn=False, language="zh-Hant")
    with pytest.raises(EditParseError, match="unknown language"):
        plan_from_operations([{"op": "captions", "language": "elvish"}])


def _load(tmp_path: Path, rules: str, backend: str = "local") -> config.Config:
    (tmp_path / "inbox").mkdir(exist_ok=True)
    path = tmp_path / "nemod.yaml"
    path.write_text(textwrap.dedent(f"""\
        backend: {backend}
        watch:
          - path: ./inbox
            output: ./outbox
        rules:
        """) + textwrap.indent(textwrap.dedent(rules), "  "), encoding="utf-8")
    return config.load(path)


def test_a_rule_language_reaches_its_captions_and_the_cloud_session(tmp_path: Path) -> None:
    loaded = _load(tmp_path, """\
        - {name: de, edit: "trim the pauses, add captions", language: auto}
        - {name: zh, edit: "加字幕"}
        - {name: zh2, edit: "加中文字幕, 导出"}
        - {name: en, edit: "add captions, add title '城市'"}
        - {name: hant, edit: "add captions", language: zh-TW}
        """)
    assert [rule.plan.find(Captions).language for rule in loaded.rules] == ["auto", "auto", "zh", None, "zh-Hant"]
    assert [rule.session_language for rule in loaded.rules] == ["auto", "auto", "zh", "en", "zh-Hant"]


def test_a_cloud_rule_takes_its_language_from_the_words(tmp_path: Path) -> None:
    loaded = _load(tmp_path, """\
        - {name: a, edit: "add German captions"}
        - {name: b, edit: "加字幕"}
        - {name: c, edit: "add captions"}
        """, backend="cloud")
    assert [rule.session_language for rule in loaded.rules] == ["de", "auto", "en"]


def test_bad_or_contradicting_languages_are_config_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, """\
            - {name: a, edit: "add captions", language: klingon}
            - {name: b, edit: "add German captions", language: zh}
            """)
    messages = [str(problem) for problem in caught.value.problems]
    assert len(messages) == 2
    assert "rules[0].language: unknown language 'klingon'" in messages[0]
    assert "rules[1].language: language: zh contradicts the edit, which asks for de captions" in messages[1]


# --- segmentation of scripts without spaces ----------------------------------------------

SENTENCE_ZH = "欢迎大家来体验达摩院推出的语音识别模型，这个模型可以识别普通话和多种方言。我们希望它对大家的工作有所帮助！"


def _chinese_words(text: str = SENTENCE_ZH, pace: float = 0.2) -> list[Word]:
    """One word per character, as Whisper writes Chinese, punctuation as words of their own."""
    words, clock = [], 0.0
    for char in text:
        words.append(Word(clock, clock + pace * 0.9, char))
        clock += pace
    return words


@pytest.mark.parametrize(("width", "height", "limit"), [(1920, 1080, 16), (1280, 720, 16), (1080, 1920, 12)])
def test_chinese_lines_are_counted_in_characters(width: int, height: int, limit: int) -> None:
    _, max_chars = caption_layout(width, height, languages.CHINESE)
    assert max_chars == limit
    cues = segment(_chinese_words(), max_chars=max_chars, norms=languages.CHINESE)
    assert "".join("".join(cue.lines) for cue in cues) == SENTENCE_ZH  # no spaces added, nothing lost
    for cue in cues:
        assert 1 <= len(cue.lines) <= 2
        for line in cue.lines:
            assert len(line) <= max_chars
            assert line[0] not in CLOSING, cue.lines
            assert line[-1] not in OPENING, cue.lines


def test_chinese_cues_close_at_sentence_punctuation() -> None:
    cues = segment(_chinese_words(), max_chars=16, norms=languages.CHINESE)
    texts = ["".join(cue.lines) for cue in cues]
    assert any(text.endswith("。") for text in texts)
    assert texts[-1].endswith("！")


def test_chinese_cues_are_held_for_nine_characters_a_second() -> None:
    # Fast speech (10 characters a second) with room after it: each cue stays up long
    # enough to read at 9 characters a second, not the 20 of Latin scripts.
    words = _chinese_words("这个模型可以识别普通话。", pace=0.1)
    cue = segment(words, max_chars=16, end=10.0, norms=languages.CHINESE)[0]
    assert cue.end - cue.start == pytest.approx(len(cue.text) / 9.0, abs=0.01)
    latin = segment(words, max_chars=16, end=10.0)[0]
    assert latin.end - latin.start < cue.end - cue.start


def test_closing_punctuation_never_starts_a_word_cue_or_line() -> None:
    words = [Word(0.0, 0.2, "你好"), Word(0.2, 0.3, "，"), Word(0.3, 0.5, "」世界"), Word(0.5, 0.6, "。")]
    attached = attach_punctuation(words)
    assert [word.text for word in attached] == ["你好，」", "世界。"]
    assert attached[0].end == 0.3 and attached[1].start == 0.3


def test_japanese_has_its_own_shorter_norms() -> None:
    assert caption_layout(1920, 1080, languages.JAPANESE)[1] == 13
    assert languages.norms("ja").max_cps == 4.0 and languages.norms("de") == languages.SPACED


# --- Simplified and Traditional ---------------------------------------------------------------


def test_traditional_words_become_simplified_with_their_timings() -> None:
    words = [Word(0.0, 0.5, "廣州"), Word(0.5, 0.8, "市"), Word(0.8, 1.2, "歡迎")]
    simplified = convert_words(words, "t2s")
    assert [word.text for word in simplified] == ["广州", "市", "欢迎"]
    assert [(word.start, word.end) for word in simplified] == [(w.start, w.end) for w in words]
    assert convert_text("广州市欢迎你", "s2t") == "廣州市歡迎你"
    assert convert_words([], "t2s") == []


# --- detection listens to speech, not leading silence -----------------------------------------


def test_detection_listens_to_the_first_thirty_seconds_of_speech() -> None:
    speech = [(12.0, 20.0), (25.0, 40.0), (50.0, 60.0)]
    assert first_speech(speech, (0.0, 100.0)) == [(12.0, 20.0), (25.0, 40.0), (50.0, 57.0)]
    assert first_speech(speech, (30.0, 100.0), seconds=5.0) == [(30.0, 35.0)]
    assert first_speech([], (0.0, 10.0)) == []


# --- what nemod check says about this machine -------------------------------------------------


def test_check_reports_burned_cjk_text_without_a_cjk_font(tmp_path: Path) -> None:
    loaded = _load(tmp_path, """\
        - {name: zh, edit: "加中文字幕"}
        - {name: zh-sidecar, edit: "add Chinese captions sidecar only"}
        - {name: de, edit: "add captions", language: de}
        - {name: title, edit: "add title '城市之夜'"}
        """)
    assert [burns_cjk(rule) for rule in loaded.rules] == [True, False, False, True]
    problems = engine_problems(loaded, cjk_font=lambda: None, multilingual_installed=lambda: True)
    assert [p.message.split("'")[1] for p in problems] == ["zh", "title"]
    assert "no CJK font is installed (apt-get install fonts-wqy-zenhei" in problems[0].message
    assert str(problems[0]).startswith(f"{tmp_path / 'nemod.yaml'}:6 edit: rule 'zh' burns")
    font = Font(tmp_path / "wqy-zenhei.ttc", "WenQuanYi Zen Hei")
    assert engine_problems(loaded, cjk_font=lambda: font, multilingual_installed=lambda: True) == []


def test_check_reports_other_languages_without_the_multilingual_model(tmp_path: Path) -> None:
    loaded = _load(tmp_path, """\
        - {name: de, edit: "add captions", language: de}
        - {name: plain, edit: "add captions"}
        """)
    problems = engine_problems(loaded, cjk_font=lambda: None, multilingual_installed=lambda: False)
    assert len(problems) == 1
    assert "rule 'de' captions in de, which needs the Whisper base model: it is not installed" in problems[0].message


def test_korean_keeps_its_spaces_in_full_width_lines() -> None:
    words = [Word(0.0, 0.4, "안녕하세요"), Word(0.5, 0.9, "여러분"), Word(1.0, 1.4, "반갑습니다.")]
    assert segment(words, max_chars=16, norms=languages.KOREAN)[0].text == "안녕하세요 여러분 반갑습니다."
    assert caption_layout(1920, 1080, languages.norms("ko"))[1] == 16
    chinese = [Word(0.0, 0.2, "你好"), Word(0.2, 0.4, "世界"), Word(0.4, 0.6, "Python")]
    assert segment(chinese, max_chars=16, norms=languages.CHINESE)[0].text == "你好世界 Python"


def test_only_a_plainly_other_language_is_worth_a_warning() -> None:
    assert languages.plainly_other("en", "de", 0.99)
    assert not languages.plainly_other("en", "de", 0.5)  # not sure enough
    assert not languages.plainly_other("zh-Hant", "zh", 0.99)
    assert not languages.plainly_other("auto", "de", 0.99)

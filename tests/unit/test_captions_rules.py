"""Caption segmentation, retiming and formats (pure)."""

from __future__ import annotations

from nemod.engine.captions import (
    MAX_CPS,
    Cue,
    Word,
    ass_text,
    caption_layout,
    parse_srt,
    retime,
    segment,
    srt_text,
    vtt_text,
    word_error_rate,
)

SENTENCE = ["Permission", "is", "hereby", "granted,", "free", "of", "charge,", "to", "any", "person", "obtaining", "a", "copy", "of", "this", "software", "and", "associated", "documentation", "files,", "to", "deal", "in", "the", "software", "without", "restriction.", "Including", "without", "limitation", "the", "rights", "to", "use,", "copy,", "modify,", "merge,", "publish,", "distribute."]


def _words(pace: float = 0.3, gap_after: int | None = None) -> list[Word]:
    words, clock = [], 0.0
    for index, text in enumerate(SENTENCE):
        words.append(Word(clock, clock + pace * 0.8, text))
        clock += pace + (1.0 if index == gap_after else 0.0)
    return words


def test_cues_respect_the_reading_rules() -> None:
    words = _words()
    cues = segment(words, max_chars=42)
    assert " ".join(" ".join(c.lines) for c in cues).split() == SENTENCE
    for index, cue in enumerate(cues):
        assert len(cue.lines) <= 2
        assert all(len(line) <= 42 for line in cue.lines)
        assert cue.end - cue.start <= 7.0
        if index + 1 < len(cues):
            assert cue.end <= cues[index + 1].start
            room = cues[index + 1].start - cue.start
            if room >= 1.0:
                assert cue.end - cue.start >= 1.0 - 1e-6
            if room * MAX_CPS >= len(cue.text):
                assert len(cue.text.replace("\n", " ")) / (cue.end - cue.start) <= MAX_CPS + 0.5


def test_breaks_at_sentence_ends_and_pauses() -> None:
    cues = segment(_words(gap_after=SENTENCE.index("granted,")), max_chars=42)
    assert cues[0].text.replace("\n", " ").endswith("granted,")
    ends = [c.text.replace("\n", " ") for c in segment(_words(), max_chars=42)]
    assert any(text.endswith("restriction.") for text in ends)
    assert not any(text.endswith((" a", " the", " of")) for text in ends)


def test_narrow_frames_get_shorter_lines() -> None:
    size, chars = caption_layout(1080, 1920)
    assert chars < 42 and size >= 50
    assert caption_layout(1920, 1080)[1] == 42
    for cue in segment(_words(), max_chars=chars):
        assert all(len(line) <= chars for line in cue.lines)


def test_retime_drops_cut_words_and_shifts_the_rest() -> None:
    words = [Word(0.5, 0.8, "a"), Word(2.5, 2.8, "cut"), Word(5.2, 5.6, "b")]
    moved = retime(words, [(0.0, 2.0), (5.0, 6.0)])
    assert [w.text for w in moved] == ["a", "b"]
    assert moved[1].start == 2.2 and moved[1].joined
    fast = retime(words, [(0.0, 2.0), (5.0, 6.0)], speed=2.0)
    assert fast[1].start == 1.1


def test_srt_and_vtt() -> None:
    cues = [Cue(0.0, 1.5, ("Hello there,",)), Cue(61.25, 3723.5, ("two", "lines"))]
    srt = srt_text(cues)
    assert "1\n00:00:00,000 --> 00:00:01,500\nHello there,\n" in srt
    assert "00:01:01,250 --> 01:02:03,500\ntwo\nlines" in srt
    assert parse_srt(srt) == cues
    vtt = vtt_text(cues)
    assert vtt.startswith("WEBVTT\n") and "00:01:01.250 --> 01:02:03.500" in vtt


def test_ass_escapes_and_styles() -> None:
    text = ass_text(1080, 1920, "DejaVu Sans", [Cue(0, 1, ("a {b}", "c"))], [])
    assert "PlayResX: 1080" in text and "a \\{b\\}\\Nc" in text and "Style: Caption,DejaVu Sans" in text


def test_word_error_rate() -> None:
    assert word_error_rate("The cat sat.", "the cat sat") == 0.0
    assert word_error_rate("a b c d", "a x c") == 0.5


def test_cjk_words_join_without_spaces() -> None:
    words = [Word(0.0, 0.5, "你好"), Word(0.5, 1.0, "世界。")]
    assert segment(words)[0].text == "你好世界。"

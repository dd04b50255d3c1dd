"""Parsing plain-language and structured edits into plans."""

from __future__ import annotations

import pytest

from nemod.edits import (
    Captions,
    Copy,
    Cut,
    EditParseError,
    Export,
    Fade,
    Keep,
    Music,
    Mute,
    Normalize,
    Plan,
    Speed,
    Title,
    TrimPauses,
    parse_edit,
    plan_from_operations,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("trim the pauses, add captions, export 1080p MP4", (TrimPauses(), Captions(), Export(height=1080))),
        ("remove silence longer than 0.8s with 0.1s padding", (TrimPauses(min_pause=0.8, padding=0.1),)),
        ("cut dead air", (TrimPauses(),)),
        ("add subtitles sidecar only", (Captions(burn=False),)),
        ("export 720p vertical with blurred background", (Export(720, "9:16", "pad"),)),
        ("export 1080x1920", (Export(1080, "9:16"),)),
        ("make it square", (Export(None, "1:1"),)),
        ("export 4K 16:9", (Export(2160, "16:9"),)),
        ("add title 'Urban Dreams' at the top for 5 seconds", (Title("Urban Dreams", duration=5.0, position="top"),)),
        ("add BGM music/LoFi.mp3 at 35%", (Music("music/LoFi.mp3", volume=0.35),)),
        ("cut the first 3 seconds, cut the last 2 s", (Cut(first=3.0, last=2.0),)),
        ("keep 0:30-1:45", (Keep(30.0, 105.0),)),
        ("speed up 1.5x", (Speed(1.5),)),
        ("fade in and out", (Fade(1.0, 1.0),)),
        ("mute", (Mute(),)),
        ("normalize loudness", (Normalize(-14.0),)),
        ("normalize audio to -16 LUFS", (Normalize(-16.0),)),
        ("去除停顿，添加字幕，导出1080p", (TrimPauses(), Captions(), Export(height=1080))),
        ("剪掉停顿、加字幕、导出 竖屏", (TrimPauses(), Captions(), Export(aspect="9:16"))),
        ("标题 '城市之梦'", (Title("城市之梦"),)),
        ("剪掉开头3秒", (Cut(first=3.0),)),
        ("加速 1.5倍", (Speed(1.5),)),
        ("淡入淡出", (Fade(1.0, 1.0),)),
        ("copy", (Copy(),)),
        ("keep as is", (Copy(),)),
        ("no edit", (Copy(),)),
    ],
)
def test_phrases(text: str, expected: tuple[object, ...]) -> None:
    assert parse_edit(text).operations == expected


def test_order_of_phrases_does_not_change_the_plan() -> None:
    assert parse_edit("export 1080p, add captions, trim the pauses") == parse_edit(
        "trim the pauses and add captions then export 1080p"
    )


@pytest.mark.parametrize(
    "text", ["make it cinematic", "export in technicolor", "add captions in klingon", "trim the pauses please now"]
)
def test_unknown_phrases_are_named(text: str) -> None:
    with pytest.raises(EditParseError, match=f"does not understand '{text}'"):
        parse_edit(text)


def test_out_of_range_options_are_errors() -> None:
    with pytest.raises(EditParseError, match="speed"):
        parse_edit("speed up 10x")
    with pytest.raises(EditParseError, match="twice the padding"):
        parse_edit("remove pauses longer than 0.2s with 0.3s padding")
    with pytest.raises(EditParseError, match="cannot be combined"):
        parse_edit("copy, add captions")
    with pytest.raises(EditParseError, match="quotes"):
        parse_edit("add title Urban Dreams")


def test_structured_operations_give_the_same_plan() -> None:
    structured = plan_from_operations([
        {"op": "trim_pauses", "min_pause": 0.6},
        {"op": "captions", "burn": False},
        {"op": "export", "height": 1080, "aspect": "9:16", "fit": "pad"},
        {"op": "music", "path": "music/lofi.mp3", "volume": "35%"},
        {"op": "keep", "start": "0:30", "end": "1:45"},
    ])
    text = parse_edit(
        "keep 0:30-1:45, remove pauses longer than 0.6 s, add captions sidecar only, "
        "add BGM music/lofi.mp3 at 35%, export 1080p vertical padded"
    )
    assert structured == text
    assert plan_from_operations([{"op": "copy"}]) == parse_edit("copy")


def test_structured_errors() -> None:
    with pytest.raises(EditParseError, match="does not understand operation 'sparkle'"):
        plan_from_operations([{"op": "sparkle"}])
    with pytest.raises(EditParseError, match="no option 'colour'"):
        plan_from_operations([{"op": "captions", "colour": "red"}])


def test_plan_defaults() -> None:
    assert Plan().export == Export()
    assert not Plan().is_copy
    assert parse_edit("copy").is_copy

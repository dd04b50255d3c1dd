"""Processing windows, evaluated with an injected clock (no sleeping)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nemod import schedule
from nemod.config import load
from nemod.errors import ConfigError
from nemod.schedule import AllOf, Schedule, check, combine, cron_weekdays, parse, parse_days

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def at(text: str, zone: dt.tzinfo = UTC) -> dt.datetime:
    """``"2026-11-27 23:00"`` (a Friday) as an aware datetime."""
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=zone)


def test_no_schedule_is_always_open() -> None:
    for text in (None, "", "always", "  Always "):
        sched = parse(text, UTC)
        assert sched.always
        assert sched.is_open(at("2026-11-27 12:00"))
        assert sched.next_open(at("2026-11-27 12:00")) == at("2026-11-27 12:00")
        assert sched.closes_at(at("2026-11-27 12:00")) is None


def test_weeknight_window_crosses_midnight() -> None:
    sched = parse("mon-fri 22:00-06:00", UTC)
    # 2026-11-27 is a Friday.
    assert not sched.is_open(at("2026-11-27 21:59"))
    assert sched.is_open(at("2026-11-27 22:00"))
    assert sched.is_open(at("2026-11-28 05:59"))  # Saturday morning: Friday's window
    assert not sched.is_open(at("2026-11-28 06:00"))
    assert not sched.is_open(at("2026-11-28 23:00"))  # Saturday night: no window starts
    assert not sched.is_open(at("2026-11-29 23:00"))  # Sunday night
    assert sched.is_open(at("2026-11-30 23:30"))  # Monday night
    assert sched.is_open(at("2026-11-30 01:00")) is False  # Monday 01:00: Sunday had none


def test_next_open_and_closes_at() -> None:
    sched = parse("mon-fri 22:00-06:00", UTC)
    assert sched.next_open(at("2026-11-27 12:00")) == at("2026-11-27 22:00")
    assert sched.next_open(at("2026-11-28 06:00")) == at("2026-11-30 22:00")  # over the weekend
    inside = at("2026-11-27 23:15")
    assert sched.next_open(inside) == inside
    assert sched.closes_at(inside) == at("2026-11-28 06:00")
    assert sched.closes_at(at("2026-11-27 12:00")) is None


def test_days_without_a_list_mean_every_day_and_hours_without_minutes() -> None:
    sched = parse("9-17", UTC)
    assert sched.is_open(at("2026-11-29 09:00"))  # Sunday
    assert not sched.is_open(at("2026-11-29 17:00"))
    assert sched.next_open(at("2026-11-29 18:00")) == at("2026-11-30 09:00")


def test_whole_days_and_several_windows() -> None:
    sched = parse("weekdays 22:00-06:00; sat,sun 00:00-24:00", UTC)
    assert sched.is_open(at("2026-11-28 12:00"))  # Saturday noon
    assert sched.is_open(at("2026-11-29 23:59"))  # Sunday night
    assert not sched.is_open(at("2026-11-30 12:00"))  # Monday noon
    # Friday 22:00 → Monday 00:00 is one stretch of touching windows (Monday's night
    # window starts at 22:00; Sunday, not a weekday, has no 22:00-06:00 window).
    assert sched.closes_at(at("2026-11-27 23:00")) == at("2026-11-30 00:00")


def test_day_ranges_wrap_and_full_names_are_accepted() -> None:
    assert parse_days("fri-mon") == {4, 5, 6, 0}
    assert parse_days("Monday, Wednesday") == {0, 2}
    assert parse_days("weekends") == {5, 6}
    assert parse_days("") == set(range(7))
    with pytest.raises(ValueError, match="unknown day 'funday'"):
        parse_days("funday")
    with pytest.raises(ValueError, match="unknown day"):
        parse_days("mo")  # too short to be unambiguous


def test_wall_clock_window_across_a_dst_change() -> None:
    # Europe/Berlin leaves summer time on Sunday 2026-10-25 at 03:00 → 02:00.
    sched = parse("sat 22:00-06:00", BERLIN)
    assert sched.is_open(at("2026-10-25 05:30", BERLIN))
    assert not sched.is_open(at("2026-10-25 06:00", BERLIN))
    assert sched.closes_at(at("2026-10-24 23:00", BERLIN)) == at("2026-10-25 06:00", BERLIN)
    # The same instant written in UTC is read in the schedule's zone.
    assert sched.is_open(dt.datetime(2026, 10, 25, 4, 30, tzinfo=UTC))  # 05:30 CET
    assert not sched.is_open(dt.datetime(2026, 10, 25, 5, 30, tzinfo=UTC))  # 06:30 CET


def test_naive_now_is_read_in_the_schedule_zone() -> None:
    sched = parse("mon-fri 22:00-06:00", BERLIN)
    assert sched.is_open(dt.datetime(2026, 11, 27, 22, 30))


def test_cron_window() -> None:
    sched = parse("cron: * 0-5 * * 1-5", UTC)  # crontab weekdays: 1-5 = Monday..Friday
    assert sched.is_open(at("2026-11-30 03:00"))  # Monday
    assert not sched.is_open(at("2026-11-30 06:00"))
    assert not sched.is_open(at("2026-11-29 03:00"))  # Sunday
    assert sched.next_open(at("2026-11-28 03:00")) == at("2026-11-30 00:00")
    assert sched.closes_at(at("2026-11-30 03:00")) == at("2026-11-30 06:00")


def test_bare_five_cron_fields_are_a_cron_window() -> None:
    sched = parse("*/30 22 * * 0", UTC)  # Sundays 22:00 and 22:30, one minute each
    assert sched.is_open(at("2026-11-29 22:30"))
    assert not sched.is_open(at("2026-11-29 22:31"))
    assert sched.next_open(at("2026-11-29 22:31")) == at("2026-12-06 22:00")


def test_cron_weekday_numbers_follow_crontab_not_apscheduler() -> None:
    assert cron_weekdays("0") == {6}
    assert cron_weekdays("7") == {6}
    assert cron_weekdays("1-5") == {0, 1, 2, 3, 4}
    assert cron_weekdays("fri-sun") == {4, 5, 6}
    assert cron_weekdays("*/2") == {6, 1, 3, 5}  # Sun, Tue, Thu, Sat
    assert cron_weekdays("*") == set(range(7))
    with pytest.raises(ValueError, match="backwards"):
        cron_weekdays("5-2")
    with pytest.raises(ValueError, match="out of range"):
        cron_weekdays("8")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mon-fri 22:00", "not a processing window"),
        ("mon 25:00-26:00", "not a time of day"),
        ("mon 10:00-10:00", "empty window"),
        ("mon 24:00-02:00", "cannot start at 24:00"),
        ("cron: * * *", "5 fields"),
        ("cron: 99 * * * *", "bad cron schedule"),
        ("xyz 10-12", "unknown day"),
    ],
)
def test_bad_schedules_explain_themselves(text: str, message: str) -> None:
    problem = check(text)
    assert problem is not None
    assert message in problem
    with pytest.raises(ValueError, match=message):
        parse(text, UTC)


def test_good_schedules_check_clean() -> None:
    assert check("mon-fri 22:00-06:00") is None
    assert check("sat,sun 00:00-24:00; cron: * 1 * * *") is None


def test_combine_requires_every_schedule_open() -> None:
    folder_and_rule = combine(["mon-fri 22:00-06:00", "sat-sun 00:00-24:00"], UTC)
    assert isinstance(folder_and_rule, AllOf)
    friday_night = at("2026-11-27 23:00")
    assert not folder_and_rule.is_open(friday_night)
    # Friday's window runs into Saturday, where the rule's weekend window opens.
    assert folder_and_rule.next_open(friday_night) == at("2026-11-28 00:00")
    assert folder_and_rule.is_open(at("2026-11-28 05:00"))


def test_combine_of_disjoint_schedules_never_opens() -> None:
    never = combine(["mon 09:00-10:00", "tue 09:00-10:00"], UTC)
    assert never.next_open(at("2026-11-27 12:00")) is None


def test_combine_skips_missing_schedules() -> None:
    assert combine([None, None], UTC) == Schedule()
    single = combine([None, "mon 09:00-10:00"], UTC)
    assert isinstance(single, Schedule)
    assert single.text == "mon 09:00-10:00"


def test_local_zone_is_a_tzinfo() -> None:
    assert isinstance(schedule.local_zone(), dt.tzinfo)
    assert not parse("mon 09:00-10:00").always


def test_config_reports_bad_schedules_with_their_key_path(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    config = tmp_path / "nemod.yaml"
    config.write_text(
        "watch:\n"
        "  - path: in\n"
        "    output: out\n"
        '    schedule: "mon-fry 22:00-06:00"\n'
        "rules:\n"
        "  - name: a\n"
        '    schedule: "cron: * * *"\n'
        "  - name: b\n"
        '    schedule: "sat,sun 00:00-24:00"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load(config)
    problems = sorted(str(problem) for problem in caught.value.problems)
    assert problems == [
        f"{config}:4 watch[0].schedule: unknown day 'fry' (use mon, tue, wed, thu, fri, sat, sun)",
        f"{config}:7 rules[0].schedule: cron schedule needs 5 fields (minute hour day month "
        "weekday), got 3",
    ]

"""Processing windows: when a job may *start* (files are detected and queued at any time).

A watch folder or a rule may say ``schedule:``. The value is one or more windows
separated by ``;``; a job may start while any of them is open:

=====================================  ==============================================
``mon-fri 22:00-06:00``                weeknights; a window that crosses midnight
                                       belongs to the day it starts (Fri 22:00 → Sat 06:00)
``22:00-06:00``                        every night
``sat,sun 00:00-24:00``                all weekend
``weekdays 9-17; weekends 10:00-12:00``  several windows
``cron: * 0-6 * * 1-5``                cron fields (minute hour day month weekday): the
                                       window is every minute the expression matches;
                                       weekday numbers as in crontab (0 or 7 = Sunday)
``always``                             no restriction (same as no ``schedule:``)
=====================================  ==============================================

Times are wall-clock times in the schedule's time zone (the machine's local zone
unless one is given). Everything here is pure: the clock is the ``now`` argument
(an aware :class:`datetime.datetime`; a naive one is read in the schedule's zone).
Next-start computation uses APScheduler 3.x's :class:`CronTrigger`, which handles
weekday sets and daylight-saving changes.

The daemon uses :meth:`Schedule.is_open` when it picks a job and, when the window is
closed, :meth:`Schedule.next_open` as the job's ``not_before``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import tzlocal
from apscheduler.triggers.cron import CronTrigger

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_ALIASES = {
    "daily": tuple(range(7)),
    "everyday": tuple(range(7)),
    "*": tuple(range(7)),
    "weekdays": (0, 1, 2, 3, 4),
    "weekends": (5, 6),
    "weekend": (5, 6),
}
_WINDOW = re.compile(
    r"^(?P<days>.*?)\s*(?P<start>\d{1,2}(?::\d{2})?)\s*-\s*(?P<end>\d{1,2}(?::\d{2})?)$"
)
_DAY = dt.timedelta(days=1)


class Window(Protocol):
    """One part of a schedule."""

    def is_open(self, now: dt.datetime) -> bool:
        """True when a job may start at ``now`` (aware, in the schedule's zone)."""

    def next_open(self, now: dt.datetime) -> dt.datetime | None:
        """``now`` when open, else the next moment the window opens (None: never)."""

    def closes_at(self, now: dt.datetime) -> dt.datetime | None:
        """When the window that is open at ``now`` closes (None: closed now)."""


_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _day_number(name: str) -> int:
    """``"mon"``/``"Monday"``/``"tues"`` → 0..6 (Monday = 0); raises ValueError."""
    key = name.strip().lower()
    for number, full in enumerate(_FULL_DAY_NAMES):
        if len(key) >= 3 and full.startswith(key):
            return number
    raise ValueError(f"unknown day {name.strip()!r} (use mon, tue, wed, thu, fri, sat, sun)")


def parse_days(text: str) -> frozenset[int]:
    """``"mon-fri"`` → {0..4}; ``"fri-mon"`` wraps; ``"sat,sun"``, ``"weekdays"``;
    ``""`` means every day.

    Raises ValueError naming the unknown day.
    """
    text = text.strip().lower().replace(" ", "")
    if not text:
        return frozenset(range(7))
    days: set[int] = set()
    for item in text.split(","):
        if item in _DAY_ALIASES:
            days.update(_DAY_ALIASES[item])
        elif "-" in item:
            first, _, last = item.partition("-")
            start, end = _day_number(first), _day_number(last)
            days.update((start + offset) % 7 for offset in range((end - start) % 7 + 1))
        elif item:
            days.add(_day_number(item))
    return frozenset(days)


def _parse_time(text: str) -> tuple[int, int]:
    hours, _, minutes = text.partition(":")
    hour, minute = int(hours), int(minutes or 0)
    if hour > 24 or minute > 59 or (hour == 24 and minute):
        raise ValueError(f"not a time of day: {text!r} (use HH:MM, 00:00 to 24:00)")
    return hour, minute


def _localize(now: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    return now.replace(tzinfo=zone) if now.tzinfo is None else now.astimezone(zone)


@dataclass(frozen=True)
class DailyWindow:
    """``days start-end``: opens at ``start`` on each of ``days`` and stays open ``length``.

    ``days`` are weekday numbers (0 = Monday) of the day the window *starts*.
    """

    days: frozenset[int]
    start: dt.time
    length: dt.timedelta
    zone: dt.tzinfo
    _trigger: CronTrigger = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        trigger = CronTrigger(
            day_of_week=",".join(DAY_NAMES[day] for day in sorted(self.days)),
            hour=self.start.hour,
            minute=self.start.minute,
            timezone=self.zone,
        )
        object.__setattr__(self, "_trigger", trigger)

    def _containing(self, local: dt.datetime) -> dt.datetime | None:
        """The start of the occurrence open at ``local`` (wall clock), or None."""
        for back in (0, 1):
            day = local.date() - dt.timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            opened = dt.datetime.combine(day, self.start, tzinfo=self.zone)
            # Same tzinfo on both sides: Python compares wall-clock times, which is what
            # a window written as wall-clock times means across a DST change.
            if opened <= local < opened + self.length:
                return opened
        return None

    def is_open(self, now: dt.datetime) -> bool:
        """True when ``now`` falls inside an occurrence of the window."""
        return self._containing(_localize(now, self.zone)) is not None

    def next_open(self, now: dt.datetime) -> dt.datetime | None:
        """``now`` when open, else the next start (via CronTrigger)."""
        local = _localize(now, self.zone)
        if self._containing(local) is not None:
            return now
        fire: dt.datetime | None = self._trigger.get_next_fire_time(None, local)
        return fire

    def closes_at(self, now: dt.datetime) -> dt.datetime | None:
        """The end of the occurrence open at ``now``, None when closed."""
        opened = self._containing(_localize(now, self.zone))
        return None if opened is None else opened + self.length


@dataclass(frozen=True)
class CronWindow:
    """Open during every minute a crontab expression matches (``* 0-6 * * 1-5``)."""

    expression: str
    zone: dt.tzinfo
    _trigger: CronTrigger = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = self.expression.split()
        if len(fields) != 5:
            raise ValueError(
                f"cron schedule needs 5 fields (minute hour day month weekday), got {len(fields)}"
            )
        minute, hour, day, month, weekday = fields
        weekdays = cron_weekdays(weekday)
        try:
            trigger = CronTrigger(
                minute=minute,
                hour=hour,
                day=day,
                month=month,
                day_of_week=",".join(DAY_NAMES[day] for day in sorted(weekdays)),
                timezone=self.zone,
            )
        except ValueError as exc:
            raise ValueError(f"bad cron schedule {self.expression!r}: {exc}") from exc
        object.__setattr__(self, "_trigger", trigger)

    def _matches(self, local: dt.datetime) -> bool:
        minute = local.replace(second=0, microsecond=0)
        return bool(self._trigger.get_next_fire_time(None, minute) == minute)

    def is_open(self, now: dt.datetime) -> bool:
        """True when the minute of ``now`` matches the expression."""
        return self._matches(_localize(now, self.zone))

    def next_open(self, now: dt.datetime) -> dt.datetime | None:
        """``now`` when open, else the next matching minute (None: never matches)."""
        local = _localize(now, self.zone)
        if self._matches(local):
            return now
        fire: dt.datetime | None = self._trigger.get_next_fire_time(None, local)
        return fire

    def closes_at(self, now: dt.datetime) -> dt.datetime | None:
        """The first minute that no longer matches (searched up to one day ahead).

        None when closed now; a window still open a day later reports ``now + 1 day``.
        """
        local = _localize(now, self.zone)
        if not self._matches(local):
            return None
        minute = local.replace(second=0, microsecond=0)
        limit = minute + _DAY
        while minute < limit:
            minute += dt.timedelta(minutes=1)
            if not self._matches(minute):
                return minute
        return limit


def cron_weekdays(text: str) -> frozenset[int]:
    """A crontab weekday field → weekday numbers (0 = Monday).

    Numbers follow crontab (0 and 7 = Sunday, 1 = Monday), unlike APScheduler 3.x's own
    numbering, which is why nemod translates the field itself. Accepts ``*``, ``*/2``,
    lists, ranges (of numbers or names) and steps. Raises ValueError.
    """
    def crontab_number(token: str) -> int:
        if token.isdigit():
            if int(token) > 7:
                raise ValueError(f"weekday {token} out of range 0-7")
            return int(token)
        return (_day_number(token) + 1) % 7

    days: set[int] = set()
    for item in text.lower().split(","):
        base, slash, step_text = item.partition("/")
        if slash and not (step_text.isdigit() and int(step_text) > 0):
            raise ValueError(f"bad weekday step {item!r}")
        step = int(step_text) if slash else 1
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            first_text, _, last_text = base.partition("-")
            first, last = crontab_number(first_text), crontab_number(last_text)
            if last == 0 and first > 0:
                last = 7  # "fri-sun": Sunday closes the range
            if last < first:
                raise ValueError(f"weekday range {base!r} runs backwards")
        else:
            first = last = crontab_number(base)
        days.update((value - 1) % 7 for value in range(first, last + 1, step))
    return frozenset(days)


@dataclass(frozen=True)
class Schedule:
    """A union of windows; no windows means always open. Build one with :func:`parse`."""

    text: str = "always"
    windows: tuple[Window, ...] = ()

    @property
    def always(self) -> bool:
        """True when the schedule never holds a job back."""
        return not self.windows

    def is_open(self, now: dt.datetime) -> bool:
        """True when any window is open at ``now``."""
        return self.always or any(window.is_open(now) for window in self.windows)

    def next_open(self, now: dt.datetime) -> dt.datetime | None:
        """``now`` when open, else the earliest next opening (None: never opens)."""
        if self.always:
            return now
        candidates = [time for time in (w.next_open(now) for w in self.windows) if time is not None]
        return min(candidates) if candidates else None

    def closes_at(self, now: dt.datetime) -> dt.datetime | None:
        """When the schedule stops being open, following windows that overlap or touch.

        None when closed now or always open.
        """
        if self.always:
            return None
        end: dt.datetime | None = None
        moment = now
        for _ in range(16):  # bounded: touching windows chain at most a couple of weeks
            ends = [t for t in (w.closes_at(moment) for w in self.windows) if t is not None]
            if not ends:
                return end
            end = max(ends)
            moment = end
        return end


@dataclass(frozen=True)
class AllOf:
    """Several schedules that must all be open (a folder's and a rule's)."""

    schedules: tuple[Schedule, ...]

    def is_open(self, now: dt.datetime) -> bool:
        """True when every schedule is open."""
        return all(schedule.is_open(now) for schedule in self.schedules)

    def next_open(self, now: dt.datetime) -> dt.datetime | None:
        """The first moment at or after ``now`` when all are open (searched 64 steps; None)."""
        moment = now
        for _ in range(64):
            opens = [schedule.next_open(moment) for schedule in self.schedules]
            if any(time is None for time in opens):
                return None
            latest = max(time for time in opens if time is not None)
            if self.is_open(latest):
                return latest
            moment = latest + dt.timedelta(minutes=1) if latest == moment else latest
        return None


def local_zone() -> dt.tzinfo:
    """The machine's time zone (as APScheduler finds it)."""
    zone: dt.tzinfo = tzlocal.get_localzone()
    return zone


def parse(text: str | None, zone: dt.tzinfo | None = None) -> Schedule:
    """Parse a ``schedule:`` value (see the module docstring); None or ``always`` → always open.

    ``zone`` defaults to the machine's local zone. Raises ValueError with a message
    fit for a config problem line.
    """
    if text is None or text.strip().lower() in ("", "always", "any", "24/7"):
        return Schedule()
    zone = zone or local_zone()
    windows: list[Window] = []
    for raw in text.split(";"):
        part = raw.strip()
        if not part:
            continue
        windows.append(_parse_window(part, zone))
    if not windows:
        return Schedule()
    return Schedule(text.strip(), tuple(windows))


def _parse_window(part: str, zone: dt.tzinfo) -> Window:
    lowered = part.lower()
    if lowered.startswith("cron:"):
        return CronWindow(part[5:].strip(), zone)
    if len(part.split()) == 5 and not _WINDOW.match(part):
        return CronWindow(part, zone)
    match = _WINDOW.match(part)
    if not match:
        raise ValueError(
            f"not a processing window: {part!r} "
            "(expected e.g. 'mon-fri 22:00-06:00' or 'cron: * 0-6 * * *')"
        )
    days = parse_days(match["days"])
    start_hour, start_minute = _parse_time(match["start"])
    end_hour, end_minute = _parse_time(match["end"])
    if start_hour == 24:
        raise ValueError(f"a window cannot start at 24:00: {part!r}")
    start = start_hour * 60 + start_minute
    end = end_hour * 60 + end_minute
    if start == end % (24 * 60) and end != 24 * 60:
        raise ValueError(f"empty window {part!r} (for a whole day write 00:00-24:00)")
    minutes = (end - start) % (24 * 60) or 24 * 60
    return DailyWindow(days, dt.time(start_hour, start_minute), dt.timedelta(minutes=minutes), zone)


def check(text: str) -> str | None:
    """The problem with a ``schedule:`` value as one line, or None when it parses."""
    try:
        parse(text, dt.UTC)
    except ValueError as exc:
        return str(exc)
    return None


def combine(texts: Iterable[str | None], zone: dt.tzinfo | None = None) -> Schedule | AllOf:
    """The schedule for a job: every given ``schedule:`` (folder's, rule's) must be open."""
    parsed: Sequence[Schedule] = [
        schedule for schedule in (parse(text, zone) for text in texts) if not schedule.always
    ]
    if not parsed:
        return Schedule()
    if len(parsed) == 1:
        return parsed[0]
    return AllOf(tuple(parsed))

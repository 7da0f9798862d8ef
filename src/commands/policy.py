"""A resource's booking rules and opening hours, and the checks that apply them.

Pure functions of a slot, the resource's settings, what already holds it and `now`. The
aggregate decides with them, and the availability view lists bookable start times with the same
checks (the one on room summed up once per window, and tested to agree with the other), so
what availability offers is what a booking request gets.
"""

import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from commands.errors import (
    DomainError,
    InvalidCommandError,
    ResourceClosedError,
    RuleViolationError,
    SlotTakenError,
)

Status = Literal["pending", "confirmed", "cancelled", "rejected", "expired", "completed", "no_show"]
PENDING: Status = "pending"
CONFIRMED: Status = "confirmed"

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Hours = list[dict[str, str]]
"""Open intervals of one day in local wall-clock time: `[{"start": "09:00", "end": "17:00"}]`."""
ALL_DAY: Hours = [{"start": "00:00", "end": "24:00"}]
DEFAULT_STEP_MINUTES = 15
"""The grid of candidate start times in availability when the resource sets no step."""
_CLOCK = re.compile(r"([01]\d|2[0-3]):[0-5]\d|24:00")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TICK = timedelta(microseconds=1)
_TEN_YEARS_IN_DAYS = 10 * 366
_TEN_YEARS_IN_MINUTES = _TEN_YEARS_IN_DAYS * 24 * 60

Span = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Hold:
    """A booking that may hold the resource over `[start, end)`.

    A pending booking must be decided before `decide_by` (its approval deadline or its start,
    whichever comes first), or it expires.
    """

    booking_id: UUID
    start: datetime
    end: datetime
    status: str
    deadline: datetime | None = None

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end

    @property
    def decide_by(self) -> datetime:
        return min(self.deadline, self.start) if self.deadline else self.start


@dataclass(frozen=True, slots=True)
class Closure:
    """Time the owner closed the resource: no booking may overlap it."""

    closure_id: UUID
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Rules:
    """A resource's optional booking rules; the defaults impose nothing."""

    pending_holds_slot: bool = True
    approval_window_minutes: int | None = None
    min_notice_minutes: int = 0
    max_advance_days: int | None = None
    min_duration_minutes: int | None = None
    max_duration_minutes: int | None = None
    start_step_minutes: int | None = None
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    change_notice_minutes: int = 0
    cancel_notice_minutes: int = 0
    opening_hours: dict[str, Hours] | None = None
    date_exceptions: dict[str, Hours] | None = None

    @classmethod
    def of(cls, values: Mapping[str, Any] | None) -> "Rules":
        unknown = set(values or {}) - set(RULE_NAMES)
        if unknown:
            raise InvalidCommandError(f"Unknown rules: {', '.join(sorted(unknown))}.", "rules")
        rules = cls(**(values or {}))
        rules.validate()
        return rules

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in RULE_NAMES}

    def validate(self) -> None:
        """Refuse values no resource can mean (InvalidCommandError naming the field)."""
        limits = {  # no rule reaches further than ten years
            "approval_window_minutes": (1, _TEN_YEARS_IN_MINUTES),
            "min_notice_minutes": (0, _TEN_YEARS_IN_MINUTES),
            "max_advance_days": (1, _TEN_YEARS_IN_DAYS),
            "min_duration_minutes": (1, _TEN_YEARS_IN_MINUTES),
            "max_duration_minutes": (1, _TEN_YEARS_IN_MINUTES),
            "start_step_minutes": (1, _TEN_YEARS_IN_MINUTES),
            "buffer_before_minutes": (0, _TEN_YEARS_IN_MINUTES),
            "buffer_after_minutes": (0, _TEN_YEARS_IN_MINUTES),
            "change_notice_minutes": (0, _TEN_YEARS_IN_MINUTES),
            "cancel_notice_minutes": (0, _TEN_YEARS_IN_MINUTES),
        }
        for name, (least, most) in limits.items():
            value = getattr(self, name)
            if value is not None and not least <= value <= most:
                raise InvalidCommandError(f"{name} must lie between {least} and {most}.", name)
        low, high = self.min_duration_minutes, self.max_duration_minutes
        if low is not None and high is not None and low > high:
            msg = "max_duration_minutes must not be below min_duration_minutes."
            raise InvalidCommandError(msg, "max_duration_minutes")
        for day, hours in (self.opening_hours or {}).items():
            if day not in WEEKDAYS:
                msg = f"{day!r} is not a weekday; use {', '.join(WEEKDAYS)}."
                raise InvalidCommandError(msg, "opening_hours")
            _check_hours(hours, f"opening_hours.{day}")
        for day, hours in (self.date_exceptions or {}).items():
            try:
                date.fromisoformat(day if _DATE.fullmatch(day) else "")
            except ValueError:
                msg = f"{day!r} is not a date (YYYY-MM-DD)."
                raise InvalidCommandError(msg, "date_exceptions") from None
            _check_hours(hours, f"date_exceptions.{day}")


RULE_NAMES = tuple(f.name for f in fields(Rules))


def _check_hours(hours: Hours, field: str) -> None:
    for interval in hours:
        start, end = interval.get("start", ""), interval.get("end", "")
        if set(interval) != {"start", "end"} or not (
            _CLOCK.fullmatch(start) and _CLOCK.fullmatch(end)
        ):
            msg = 'Hours are {"start": "HH:MM", "end": "HH:MM"} (end may be "24:00").'
            raise InvalidCommandError(msg, field)
        if start >= end:
            raise InvalidCommandError(f"{start}-{end}: the end must be after the start.", field)


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything that decides whether a slot may be booked on one resource."""

    resource_id: UUID
    timezone: str
    capacity: int
    rules: Rules

    def occupies(self, hold: Hold, now: datetime) -> bool:
        """Whether a booking keeps its time from others: confirmed, or pending where pending
        bookings hold their slot and still waiting for a decision."""
        if hold.status == CONFIRMED:
            return True
        return hold.status == PENDING and self.rules.pending_holds_slot and now < hold.decide_by

    def check_slot(
        self,
        start: datetime,
        end: datetime,
        now: datetime,
        *,
        holds: Iterable[Hold],
        closures: Iterable[Closure],
        ignoring: UUID | None = None,
        start_changed: bool = True,
        open_spans: Sequence[Span] | None = None,
    ) -> None:
        """Every rule on a slot, in a fixed order: its own shape and timing (422), then the
        owner's closures and the bookings already there (409)."""
        self.check_timing(start, end, now, start_changed=start_changed, open_spans=open_spans)
        self.check_closures(closures, start, end)
        self.check_room(holds, start, end, now, ignoring=ignoring)

    def check_timing(
        self,
        start: datetime,
        end: datetime,
        now: datetime,
        *,
        start_changed: bool = True,
        open_spans: Sequence[Span] | None = None,
    ) -> None:
        """Length, notice, how far ahead, start step and opening hours."""
        r = self.rules
        length = end - start
        if r.min_duration_minutes and length < _minutes(r.min_duration_minutes):
            msg = f"A booking here lasts at least {r.min_duration_minutes} minutes."
            raise RuleViolationError("duration", msg, "end_time")
        if r.max_duration_minutes and length > _minutes(r.max_duration_minutes):
            msg = f"A booking here lasts at most {r.max_duration_minutes} minutes."
            raise RuleViolationError("duration", msg, "end_time")
        if start_changed:
            if start < now + _minutes(r.min_notice_minutes):
                msg = f"A booking here must start at least {r.min_notice_minutes} minutes ahead."
                raise RuleViolationError("min-notice", msg, "start_time")
            if r.max_advance_days is not None and start > now + timedelta(r.max_advance_days):
                msg = f"A booking here may start at most {r.max_advance_days} days ahead."
                raise RuleViolationError("max-advance", msg, "start_time")
            if r.start_step_minutes and not self.aligned(start):
                msg = (
                    f"A booking here starts on a {r.start_step_minutes}-minute step from "
                    f"midnight ({self.timezone})."
                )
                raise RuleViolationError("start-step", msg, "start_time")
        is_open = (
            self.is_open(start, end) if open_spans is None else _within(open_spans, start, end)
        )
        if not is_open:
            msg = f"The resource is not open for all of the slot (hours in {self.timezone})."
            raise RuleViolationError("opening-hours", msg, "start_time")

    def check_closures(self, closures: Iterable[Closure], start: datetime, end: datetime) -> None:
        hit = [c for c in closures if c.start < end and start < c.end]
        if hit:
            ordered = sorted(hit, key=lambda c: (c.start, c.closure_id))
            raise ResourceClosedError(self.resource_id, [c.closure_id for c in ordered])

    def check_room(
        self,
        holds: Iterable[Hold],
        start: datetime,
        end: datetime,
        now: datetime,
        ignoring: UUID | None = None,
    ) -> None:
        """Refuse when the slot would make more than `capacity` bookings occupy the resource at
        any instant; a booking occupies its time widened by the buffers before and after."""
        before, after = self.buffers()
        low, high = start - before, end + after
        occupying = [
            h
            for h in holds
            if h.booking_id != ignoring
            and h.start - before < high
            and low < h.end + after
            and self.occupies(h, now)
        ]
        spans = [(max(h.start - before, low), min(h.end + after, high)) for h in occupying]
        if peak(spans) >= self.capacity:
            ordered = sorted(occupying, key=lambda h: (h.start, h.booking_id))
            raise SlotTakenError(self.resource_id, [h.booking_id for h in ordered])

    def aligned(self, start: datetime) -> bool:
        """Whether `start` lies on the step grid counted from local midnight."""
        step = self.rules.start_step_minutes or 1
        local = start.astimezone(self.zone)
        return (
            local.second == local.microsecond == 0 and (local.hour * 60 + local.minute) % step == 0
        )

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    def is_open(self, start: datetime, end: datetime) -> bool:
        """Whether the resource is open throughout `[start, end)`. Walks the local days from the
        start only until the open time breaks off (skipping to the next date exception when the
        week is open around the clock), so a long slot costs little."""
        r = self.rules
        if r.opening_hours is None and not r.date_exceptions:
            return True
        zone = self.zone
        around_the_clock = all(self._weekly(weekday) == ALL_DAY for weekday in WEEKDAYS)
        special = sorted(date.fromisoformat(d) for d in r.date_exceptions or {})
        day, open_until = start.astimezone(zone).date(), start
        while True:
            # By the instants, not the clock text: a time skipped when clocks go forward is read
            # with the offset before, and can land before an earlier-looking one.
            day_spans = sorted(
                (_local(day, hours["start"], zone), _local(day, hours["end"], zone))
                for hours in self._hours_on(day)
            )
            for opens, closes in day_spans:
                if opens <= open_until < closes:
                    open_until = closes
            if open_until >= end:
                return True
            day += timedelta(days=1)
            if open_until < _local(day, "00:00", zone):  # closed before the day ended
                return False
            if around_the_clock:  # open until the next exception's midnight
                i = bisect_left(special, day)
                if i == len(special):
                    return True
                day = special[i]
                open_until = max(open_until, _local(day, "00:00", zone))
                if open_until >= end:
                    return True

    def open_spans(self, start: datetime, end: datetime) -> list[Span] | None:
        """The open time (in UTC, merged) on the local days that `[start, end)` touches;
        None when the resource is always open."""
        r = self.rules
        if r.opening_hours is None and not r.date_exceptions:
            return None
        zone = self.zone
        day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
        spans = []
        while day <= last:
            for interval in self._hours_on(day):
                spans.append(
                    (_local(day, interval["start"], zone), _local(day, interval["end"], zone))
                )
            day += timedelta(days=1)
        return _merged(spans)

    def _hours_on(self, day: date) -> Hours:
        special = (self.rules.date_exceptions or {}).get(day.isoformat())
        if special is not None:
            return special
        return self._weekly(WEEKDAYS[day.weekday()])

    def _weekly(self, weekday: str) -> Hours:
        if self.rules.opening_hours is None:
            return ALL_DAY
        return self.rules.opening_hours.get(weekday, [])

    def buffers(self) -> tuple[timedelta, timedelta]:
        r = self.rules
        return _minutes(r.buffer_before_minutes), _minutes(r.buffer_after_minutes)

    def bookable(
        self,
        start: datetime,
        end: datetime,
        duration: timedelta,
        now: datetime,
        *,
        holds: Iterable[Hold],
        closures: Iterable[Closure],
    ) -> list[datetime]:
        """The start times in `[start, end)`, on the step grid, where a booking of `duration`
        would be accepted now: `check_slot` for each candidate, with the bookings already there
        summed up once as the times they leave no room (`full`)."""
        closures = list(closures)
        open_spans = self.open_spans(start, end + duration)
        full = self.full(holds, now)
        full_starts = [s for s, _ in full]
        before, after = self.buffers()
        accepted = []
        for candidate in self._grid(start, end):
            try:
                self.check_timing(candidate, candidate + duration, now, open_spans=open_spans)
                self.check_closures(closures, candidate, candidate + duration)
            except DomainError:
                continue
            # The first full stretch starting at or after `low` may be preceded by one that
            # still runs at `low`.
            low, high = candidate - before, candidate + duration + after
            i = bisect_left(full_starts, low)
            near = full[max(i - 1, 0) : i + 1]
            if not any(s < high and low < e for s, e in near):
                accepted.append(candidate)
        return accepted

    def full(self, holds: Iterable[Hold], now: datetime) -> list[Span]:
        """Where the bookings occupying the resource (widened by the buffers) leave no room: the
        stretches where `capacity` of them overlap. A slot whose widened time meets none of them
        passes `check_room`."""
        before, after = self.buffers()
        occupying = [h for h in holds if self.occupies(h, now)]
        # An end sorts before a start at the same instant: touching bookings do not overlap.
        edges = sorted(
            [(h.start - before, 1) for h in occupying] + [(h.end + after, -1) for h in occupying]
        )
        stretches: list[Span] = []
        level, full_since = 0, datetime.min.replace(tzinfo=UTC)
        for at, step in edges:
            level += step
            if step == 1 and level == self.capacity:
                full_since = at
            elif step == -1 and level == self.capacity - 1 and full_since < at:
                stretches.append((full_since, at))
        return _merged(stretches)

    def _grid(self, start: datetime, end: datetime) -> list[datetime]:
        """Candidate start times in `[start, end)`: every step from each local midnight."""
        step = self.rules.start_step_minutes or DEFAULT_STEP_MINUTES
        zone = self.zone
        day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
        found: set[datetime] = set()
        while day <= last:
            for minute in range(0, 24 * 60, step):
                clock = f"{minute // 60:02}:{minute % 60:02}"
                # Both instants of a wall-clock time that occurs twice (clocks going back).
                for fold in (0, 1):
                    at = _local(day, clock, zone, fold)
                    if start <= at < end:
                        found.add(at)
            day += timedelta(days=1)
        return sorted(found)


def peak(spans: Sequence[Span]) -> int:
    """The most spans that overlap at any one instant (touching spans do not overlap)."""
    if len(spans) <= 1:
        return len(spans)
    # An end sorts before a start at the same instant.
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    level = top = 0
    for _, step in edges:
        level += step
        top = max(top, level)
    return top


def _minutes(value: int | None) -> timedelta:
    return timedelta(minutes=value or 0)


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local(day: date, clock: str, zone: ZoneInfo, fold: int = 0) -> datetime:
    """The instant (UTC) of a wall-clock time on a local day; "24:00" is the next midnight.

    A time that occurs twice (clocks going back) is its first instant, or its second with
    `fold=1`; a time that does not occur (clocks going forward) is read with the offset before.
    """
    hour, minute = int(clock[:2]), int(clock[3:])
    if hour == 24:
        day, hour = day + timedelta(days=1), 0
    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone, fold=fold)
    return local.astimezone(UTC)


def _merged(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif start < end:
            merged.append((start, end))
    return merged


def _within(spans: Sequence[Span], start: datetime, end: datetime) -> bool:
    return any(s <= start and end <= e for s, e in spans)

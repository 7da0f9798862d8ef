"""A resource's booking rules, given/when/then on the Resource aggregate, each at its edges."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from test_resource import (
    B1,
    B2,
    B3,
    B4,
    NOW,
    R1,
    Command,
    Given,
    Outcome,
    at,
    book,
    booked,
    cancel,
    closed,
    given,
    ids,
    modify,
    registered,
    reopened,
    retired,
)

from commands.errors import (
    ClosureNotFoundError,
    DomainError,
    InvalidCommandError,
    ResourceClosedError,
    ResourceRetiredError,
    RuleViolationError,
    SlotTakenError,
)
from commands.policy import Closure, Hold, Policy, Rules
from commands.resource import CONFIRMED, PENDING, Resource
from events.resource import (
    BookingCancelled,
    BookingCreated,
    BookingModified,
    ClosureAdded,
    ClosureRemoved,
    ResourceRegistered,
    ResourceRetired,
    ResourceUpdated,
)

K1 = UUID("00000000-0000-4000-8000-0000000000d1")
K2 = UUID("00000000-0000-4000-8000-0000000000d2")
EARLY = datetime(2030, 1, 1, tzinfo=UTC)
"""A clock before every DST change below, so that no notice rule gets in the way."""
Intervals = list[dict[str, str]]


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2030, month, day, hour, minute, tzinfo=UTC)


def hours(*intervals: tuple[str, str]) -> Intervals:
    return [{"start": start, "end": end} for start, end in intervals]


def every_day(*intervals: tuple[str, str]) -> dict[str, Intervals]:
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    return dict.fromkeys(days, hours(*intervals))


def with_rules(capacity: int = 1, timezone: str = "UTC", **rules: Any) -> ResourceRegistered:
    return registered(capacity=capacity, timezone=timezone, rules=rules)


def violated(outcome: Outcome, rule: str, field: str = "start_time") -> None:
    """Assert the command was refused for breaking `rule`."""
    error = outcome.then_raises(RuleViolationError)
    assert (error.rule, error.field) == (rule, field)


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


# -- notice, advance, duration and start step --------------------------------------------------
# NOW is 08:00 UTC on Monday 2030-06-03.

AT_THE_EDGE = {
    "min-notice": ({"min_notice_minutes": 60}, at(9), at(10)),
    "max-advance": ({"max_advance_days": 7}, at(8, day=7), at(9, day=7)),
    "min-duration": ({"min_duration_minutes": 30}, at(9), at(9, 30)),
    "max-duration": ({"max_duration_minutes": 120}, at(9), at(11)),
    "step": ({"start_step_minutes": 15}, at(9, 15), at(10)),
    "step-from-midnight": ({"start_step_minutes": 45}, at(10, 30), at(11)),
}
HALF_MINUTE = timedelta(seconds=30)
PAST_THE_EDGE = {
    "min-notice": ({"min_notice_minutes": 60}, at(8, 59), at(10), "min-notice"),
    "max-advance": ({"max_advance_days": 7}, at(8, 1, day=7), at(9, day=7), "max-advance"),
    "min-duration": ({"min_duration_minutes": 30}, at(9), at(9, 29), "duration"),
    "max-duration": ({"max_duration_minutes": 120}, at(9), at(11, 1), "duration"),
    "step": ({"start_step_minutes": 15}, at(9, 10), at(10), "start-step"),
    "step-not-from-the-hour": ({"start_step_minutes": 45}, at(10), at(11), "start-step"),
    "step-seconds": ({"start_step_minutes": 15}, at(9, 15) + HALF_MINUTE, at(10), "start-step"),
}


@pytest.mark.parametrize(("rules", "start", "end"), AT_THE_EDGE.values(), ids=AT_THE_EDGE.keys())
def test_a_slot_exactly_at_the_limit_of_a_rule_is_accepted(
    rules: dict[str, Any], start: datetime, end: datetime
) -> None:
    [event] = given(with_rules(**rules)).when(book(B1, start, end)).then(BookingCreated)

    assert (event.start_time, event.end_time) == (start, end)


@pytest.mark.parametrize(
    ("rules", "start", "end", "rule"), PAST_THE_EDGE.values(), ids=PAST_THE_EDGE.keys()
)
def test_a_slot_just_past_the_limit_of_a_rule_is_refused(
    rules: dict[str, Any], start: datetime, end: datetime, rule: str
) -> None:
    field = "end_time" if rule == "duration" else "start_time"

    violated(given(with_rules(**rules)).when(book(B1, start, end)), rule, field)


def test_the_longest_max_advance_the_rules_accept_still_lets_a_booking_be_decided() -> None:
    longest = 10 * 366  # the largest value Rules.validate lets through (days)
    Rules.of({"max_advance_days": longest})

    given(with_rules(max_advance_days=longest)).when(book(B1, at(9), at(10))).then(BookingCreated)


STEP_STARTS = [
    ("Asia/Kathmandu", 60, utc(6, 3, 3, 15), True),  # 09:00 at +05:45
    ("Asia/Kathmandu", 60, utc(6, 3, 3, 0), False),  # 08:45
    ("Asia/Kathmandu", 30, utc(6, 3, 3, 45), True),  # 09:30
    ("Asia/Kathmandu", 30, utc(6, 3, 4, 0), False),  # 09:45
    ("America/New_York", 60, utc(1, 7, 14), True),  # 09:00 EST
    ("America/New_York", 60, utc(6, 3, 13), True),  # 09:00 EDT
    ("America/New_York", 60, utc(6, 3, 14, 30), False),  # 10:30 EDT
    ("America/New_York", 90, utc(1, 7, 15, 30), True),  # 10:30 EST: 7 steps from midnight
    ("America/New_York", 90, utc(1, 7, 15), False),  # 10:00 EST
    ("America/New_York", 60, utc(3, 10, 13), True),  # 09:00 EDT on the day clocks change
]


@pytest.mark.parametrize(("timezone", "step", "start", "aligned"), STEP_STARTS)
def test_the_start_step_counts_from_local_midnight(
    timezone: str, step: int, start: datetime, aligned: bool
) -> None:
    outcome = given(with_rules(timezone=timezone, start_step_minutes=step)).when(
        book(B1, start, start + timedelta(hours=1), now=EARLY)
    )

    if aligned:
        outcome.then(BookingCreated)
    else:
        violated(outcome, "start-step")


# -- buffers ------------------------------------------------------------------------------------
# B1 at 12:00-13:00 with 15 minutes before and 30 after occupies 11:45-13:30; a new booking
# occupies its own time widened the same way.

BUFFERS = {"buffer_before_minutes": 15, "buffer_after_minutes": 30}


@pytest.mark.parametrize(
    ("start", "end", "accepted"),
    [
        (at(13, 45), at(14, 30), True),  # its 15 minutes before touch B1's 30 after
        (at(13, 44), at(14, 30), False),
        (at(10), at(11, 15), True),  # its 30 minutes after touch B1's 15 before
        (at(10), at(11, 16), False),
    ],
    ids=["after-touching", "after-one-minute-in", "before-touching", "before-one-minute-in"],
)
def test_buffers_widen_both_bookings(start: datetime, end: datetime, accepted: bool) -> None:
    outcome = given(with_rules(**BUFFERS), booked(B1, at(12), at(13))).when(book(B2, start, end))

    if accepted:
        outcome.then(BookingCreated)
    else:
        assert ids(outcome.then_raises(SlotTakenError)) == [B1]


def test_capacity_two_with_buffers_is_full_only_where_two_widened_bookings_overlap() -> None:
    scenario = given(
        with_rules(capacity=2, buffer_after_minutes=30),
        booked(B1, at(9), at(10)),
        booked(B2, at(9), at(10)),
    )

    error = scenario.when(book(B3, at(10, 29), at(11))).then_raises(SlotTakenError)
    assert ids(error) == [B1, B2]
    scenario.when(book(B3, at(10, 30), at(11))).then(BookingCreated)
    scenario.when(book(B4, at(10, 45), at(11, 15))).then(BookingCreated)  # next to B3: 1 of 2


# -- opening hours and date exceptions ---------------------------------------------------------
# 2030-06-03 (day 0) is a Monday.

MONDAY_NINE_TO_FIVE = {"opening_hours": {"monday": hours(("09:00", "17:00"))}}
SPLIT_DAY = {"opening_hours": {"monday": hours(("09:00", "12:00"), ("12:00", "17:00"))}}
LUNCH_BREAK = {"opening_hours": {"monday": hours(("09:00", "12:00"), ("13:00", "17:00"))}}
NIGHTS = {
    "opening_hours": {"monday": hours(("18:00", "24:00")), "tuesday": hours(("00:00", "02:00"))}
}
MONDAY_NIGHT_ONLY = {"opening_hours": {"monday": hours(("18:00", "24:00"))}}
EXCEPTIONS = {
    "opening_hours": every_day(("09:00", "17:00")),
    "date_exceptions": {"2030-06-03": [], "2030-06-04": hours(("10:00", "12:00"))},
}
ONLY_EXCEPTIONS = {"date_exceptions": {"2030-06-04": []}}

OPENING = [
    ("inside", MONDAY_NINE_TO_FIVE, at(10), at(11), True),
    ("exactly-open", MONDAY_NINE_TO_FIVE, at(9), at(17), True),
    ("across-closing", MONDAY_NINE_TO_FIVE, at(16, 30), at(17, 30), False),
    ("across-opening", MONDAY_NINE_TO_FIVE, at(8, 30), at(9, 30), False),
    ("weekday-without-hours", MONDAY_NINE_TO_FIVE, at(10, day=1), at(11, day=1), False),
    ("adjacent-intervals", SPLIT_DAY, at(11), at(13), True),
    ("across-a-break", LUNCH_BREAK, at(11, 30), at(13, 30), False),
    ("after-a-break", LUNCH_BREAK, at(13), at(14), True),
    ("across-midnight", NIGHTS, at(23), at(1, day=1), True),
    ("past-the-night", NIGHTS, at(23), at(2, 30, day=1), False),
    ("next-day-closed", MONDAY_NIGHT_ONLY, at(23), at(1, day=1), False),
    ("until-24:00", MONDAY_NIGHT_ONLY, at(23), at(0, day=1), True),
    ("closed-date", EXCEPTIONS, at(10), at(11), False),
    ("special-hours", EXCEPTIONS, at(10, day=1), at(12, day=1), True),
    ("outside-special-hours", EXCEPTIONS, at(12, day=1), at(13, day=1), False),
    ("before-special-hours", EXCEPTIONS, at(9, day=1), at(10, day=1), False),
    ("usual-hours-again", EXCEPTIONS, at(9, day=2), at(10, day=2), True),
    ("no-hours-is-always-open", ONLY_EXCEPTIONS, at(22), at(23), True),
    ("exception-without-hours", ONLY_EXCEPTIONS, at(10, day=1), at(11, day=1), False),
]


@pytest.mark.parametrize(
    ("rules", "start", "end", "accepted"), [o[1:] for o in OPENING], ids=[o[0] for o in OPENING]
)
def test_opening_hours(
    rules: dict[str, Any], start: datetime, end: datetime, accepted: bool
) -> None:
    outcome = given(with_rules(**rules)).when(book(B1, start, end))

    if accepted:
        outcome.then(BookingCreated)
    else:
        violated(outcome, "opening-hours")


# -- DST: opening hours stay local ------------------------------------------------------------

NINE_TO_FIVE = {"opening_hours": every_day(("09:00", "17:00"))}
OPENS_AT = [  # 09:00 local, in UTC, on the DST days and the days either side
    ("Europe/Berlin", utc(3, 30, 8)),  # CET: 09:00 = 08:00 UTC
    ("Europe/Berlin", utc(3, 31, 7)),  # CEST from 02:00: 09:00 = 07:00 UTC
    ("Europe/Berlin", utc(4, 1, 7)),
    ("Europe/Berlin", utc(10, 26, 7)),
    ("Europe/Berlin", utc(10, 27, 8)),  # CET again from 03:00
    ("Europe/Berlin", utc(10, 28, 8)),
    ("America/New_York", utc(3, 9, 14)),  # EST: 09:00 = 14:00 UTC
    ("America/New_York", utc(3, 10, 13)),  # EDT from 02:00: 09:00 = 13:00 UTC
    ("America/New_York", utc(3, 11, 13)),
    ("America/New_York", utc(11, 2, 13)),
    ("America/New_York", utc(11, 3, 14)),  # EST again from 02:00
    ("America/New_York", utc(11, 4, 14)),
]
DST_IDS = [f"{zone.split('/')[1]}-{opens:%m-%d}" for zone, opens in OPENS_AT]


@pytest.mark.parametrize(("timezone", "opens"), OPENS_AT, ids=DST_IDS)
def test_a_nine_to_five_day_is_nine_to_five_local_across_dst(
    timezone: str, opens: datetime
) -> None:
    closes = opens + timedelta(hours=8)

    def booking(start: datetime, end: datetime) -> Outcome:
        return given(with_rules(timezone=timezone, **NINE_TO_FIVE)).when(
            book(B1, start, end, now=EARLY)
        )

    outcome = booking(opens, closes)
    outcome.then(BookingCreated)
    assert outcome.resource.policy.open_spans(opens, closes) == [(opens, closes)]
    violated(booking(opens - minutes(1), opens + minutes(60)), "opening-hours")
    violated(booking(closes - minutes(60), closes + minutes(1)), "opening-hours")


@pytest.mark.parametrize("capacity", [1, 2, 3])
def test_capacity_n_on_a_dst_day_accepts_n_overlapping_and_refuses_one_more(
    capacity: int,
) -> None:
    opens, closes = utc(3, 31, 7), utc(3, 31, 15)  # 09:00-17:00 CEST
    earlier = [B1, B2, B3][: capacity - 1]
    scenario = given(
        with_rules(capacity=capacity, timezone="Europe/Berlin", **NINE_TO_FIVE),
        *[booked(b, opens, closes) for b in earlier],
    )

    scenario.when(book(B4, opens, closes, now=EARLY)).then(BookingCreated)
    error = scenario.when(book(UUID(int=5), utc(3, 31, 10), utc(3, 31, 11), now=EARLY))
    assert ids(error.then_raises(SlotTakenError)) == [*earlier, B4]


# -- closures ---------------------------------------------------------------------------------


def test_a_booking_overlapping_a_closure_is_refused_naming_it() -> None:
    error = (
        given(closed(K1, at(10), at(12)))
        .when(book(B1, at(11), at(13)))
        .then_raises(ResourceClosedError)
    )

    assert (error.resource_id, error.closure_ids) == (R1, [K1])


def test_every_closure_in_the_way_is_named_in_start_order() -> None:
    error = (
        given(closed(K2, at(12), at(13)), closed(K1, at(10), at(11)))
        .when(book(B1, at(10, 30), at(12, 30)))
        .then_raises(ResourceClosedError)
    )

    assert error.closure_ids == [K1, K2]


@pytest.mark.parametrize(("start", "end"), [(at(12), at(13)), (at(9), at(10))])
def test_a_booking_touching_a_closure_is_accepted(start: datetime, end: datetime) -> None:
    given(closed(K1, at(10), at(12))).when(book(B1, start, end)).then(BookingCreated)


def test_a_closure_is_checked_before_the_bookings_in_the_way() -> None:
    given(booked(B1, at(10), at(11)), closed(K1, at(10), at(11))).when(
        book(B2, at(10), at(11))
    ).then_raises(ResourceClosedError)


def test_a_removed_closure_frees_its_time() -> None:
    scenario = given(closed(K1, at(10), at(12)))
    scenario.when(lambda r: r.remove_closure(K1, actor="owner", now=NOW)).then(ClosureRemoved)

    scenario.when(book(B1, at(10), at(12))).then(BookingCreated)
    assert scenario.resource.closures == {}


def close(closure_id: UUID, start: datetime, end: datetime, now: datetime = NOW) -> Command:
    return lambda r: r.add_closure(
        closure_id, start=start, end=end, reason="repairs", actor="owner", now=now
    )


def test_adding_a_closure_records_it_and_keeps_the_bookings_there() -> None:
    outcome = given(booked(B1, at(10), at(11))).when(close(K1, at(9), at(12)))

    [event] = outcome.then(ClosureAdded)
    assert (event.closure_id, event.start_time, event.end_time) == (K1, at(9), at(12))
    assert (event.reason, event.actor, event.timestamp) == ("repairs", "owner", NOW)
    assert outcome.resource.closures == {str(K1): Closure(K1, at(9), at(12))}
    assert outcome.resource.holds[str(B1)] == Hold(B1, at(10), at(11), CONFIRMED)


@pytest.mark.parametrize(
    "command",
    [close(K1, at(10), at(10)), close(K1, at(10), at(9)), close(K1, at(7), at(8))],
    ids=["empty", "backwards", "over"],
)
def test_a_closure_must_be_a_span_that_ends_in_the_future(command: Command) -> None:
    error = given().when(command).then_raises(InvalidCommandError)

    assert error.field == "end_time"


def test_removing_an_unknown_closure_is_refused() -> None:
    scenario = given(closed(K1, at(10), at(12)), reopened(K1))

    error = scenario.when(lambda r: r.remove_closure(K1, actor=None, now=NOW))

    assert error.then_raises(ClosureNotFoundError).closure_id == K1


# -- change and cancel notice -----------------------------------------------------------------
# B1 starts at 12:00; changes need 60 minutes' notice, cancellations 120.

NOTICES = {"change_notice_minutes": 60, "cancel_notice_minutes": 120}


@pytest.mark.parametrize(
    ("command", "event_type"),
    [
        (modify(B1, details="x", now=at(11)), BookingModified),
        (modify(B1, at(14), at(15), now=at(11)), BookingModified),
        (modify(B1, details="x", now=at(11, 30), by="owner"), BookingModified),
        (cancel(B1, now=at(10)), BookingCancelled),
        (cancel(B1, now=at(12, 30), by="owner"), BookingCancelled),
    ],
    ids=["change-at-limit", "move-at-limit", "owner-change", "cancel-at-limit", "owner-cancel"],
)
def test_notice_is_met_at_the_limit_and_never_binds_the_owner(
    command: Command, event_type: type
) -> None:
    [event] = (
        given(with_rules(**NOTICES), booked(B1, at(12), at(13))).when(command).then(event_type)
    )

    assert event.booking_id == B1


@pytest.mark.parametrize(
    ("command", "rule"),
    [
        (modify(B1, details="x", now=at(11, 1)), "change-notice"),
        (modify(B1, at(14), at(15), now=at(11, 1)), "change-notice"),
        (cancel(B1, now=at(10, 1)), "cancel-notice"),
    ],
    ids=["change", "move", "cancel"],
)
def test_a_client_within_the_notice_is_refused(command: Command, rule: str) -> None:
    violated(given(with_rules(**NOTICES), booked(B1, at(12), at(13))).when(command), rule)


# -- a modification re-checks every rule ------------------------------------------------------

STRICT = {
    "min_notice_minutes": 60,
    "max_advance_days": 7,
    "min_duration_minutes": 30,
    "max_duration_minutes": 120,
    "start_step_minutes": 15,
    "opening_hours": every_day(("08:00", "18:00")),
}


def strict_day() -> Given:
    """B1 at 10-11 and B2 at 13-14 on a resource with every rule, closed 15-16."""
    return given(
        with_rules(**STRICT),
        booked(B1, at(10), at(11)),
        booked(B2, at(13), at(14)),
        closed(K1, at(15), at(16)),
    )


@pytest.mark.parametrize(
    ("command", "rule"),
    [
        (modify(B1, at(8, 30), at(9, 30)), "min-notice"),
        (modify(B1, at(10, day=8), at(11, day=8)), "max-advance"),
        (modify(B1, end=at(10, 20)), "duration"),
        (modify(B1, end=at(12, 30)), "duration"),
        (modify(B1, at(10, 10), at(11)), "start-step"),
        (modify(B1, at(17, 30), at(18, 30)), "opening-hours"),
    ],
    ids=["min-notice", "max-advance", "too-short", "too-long", "start-step", "opening-hours"],
)
def test_a_modification_re_checks_every_rule(command: Command, rule: str) -> None:
    outcome = strict_day().when(command)

    error = outcome.then_raises(RuleViolationError)
    assert error.rule == rule
    assert outcome.resource.holds[str(B1)] == Hold(B1, at(10), at(11), CONFIRMED)


def test_a_modification_re_checks_closures_and_bookings() -> None:
    scenario = strict_day()

    closure = scenario.when(modify(B1, at(15, 30), at(16, 30))).then_raises(ResourceClosedError)
    taken = scenario.when(modify(B1, at(13, 30), at(14, 30))).then_raises(SlotTakenError)

    assert (closure.closure_ids, ids(taken)) == ([K1], [B2])


def test_a_modification_within_every_rule_is_accepted() -> None:
    [event] = strict_day().when(modify(B1, at(11, 15), at(12, 45))).then(BookingModified)

    assert (event.start_time, event.end_time) == (at(11, 15), at(12, 45))


def test_moving_only_the_end_does_not_re_check_the_start() -> None:
    # B1 starts within the minimum notice and off the step: only its end changes.
    scenario = given(with_rules(**STRICT), booked(B1, at(8, 10), at(9)))

    [event] = scenario.when(modify(B1, end=at(9, 30))).then(BookingModified)

    assert (event.start_time, event.end_time) == (None, at(9, 30))


# -- a retired resource -----------------------------------------------------------------------


def update(**changes: Any) -> Command:
    return lambda r: r.update(changes, actor="owner", now=NOW)


def retire(reason: str | None = None) -> Command:
    return lambda r: r.retire(reason=reason, actor="owner", now=NOW)


def test_retiring_records_the_reason() -> None:
    outcome = given().when(retire("sold"))

    [event] = outcome.then(ResourceRetired)
    assert (event.reason, event.actor, event.timestamp) == ("sold", "owner", NOW)
    assert outcome.resource.retired is True


def test_retiring_twice_records_nothing() -> None:
    given(retired()).when(retire()).then_nothing()


@pytest.mark.parametrize(
    "command",
    [book(B2, at(12), at(13)), update(name="New"), close(K1, at(12), at(13))],
    ids=["book", "update", "close"],
)
def test_a_retired_resource_refuses_new_bookings_and_changes(command: Command) -> None:
    error = given(booked(B1, at(10), at(11)), retired()).when(command)

    assert error.then_raises(ResourceRetiredError).resource_id == R1


def test_a_retired_resource_still_lets_its_bookings_be_cancelled() -> None:
    outcome = given(booked(B1, at(10), at(11)), retired()).when(cancel(B1, reason="closing"))

    [event] = outcome.then(BookingCancelled)
    assert (event.booking_id, event.reason) == (B1, "closing")
    assert outcome.resource.holds == {}


# -- update -----------------------------------------------------------------------------------


def test_update_records_only_the_values_that_change() -> None:
    outcome = given(with_rules(min_notice_minutes=60)).when(
        update(name="Room 1", capacity=2, min_notice_minutes=60, max_advance_days=30)
    )

    [event] = outcome.then(ResourceUpdated)
    assert event.changes == {"capacity": 2, "max_advance_days": 30}
    assert (event.actor, event.timestamp) == ("owner", NOW)
    resource = outcome.resource
    assert (resource.capacity, resource.rules.max_advance_days) == (2, 30)
    assert resource.rules.min_notice_minutes == 60


def test_an_update_that_changes_nothing_records_nothing() -> None:
    outcome = given(with_rules(min_notice_minutes=60)).when(
        update(name="Room 1", timezone="UTC", min_notice_minutes=60, opening_hours=None)
    )

    outcome.then_nothing()
    assert outcome.resource.version == 1


def test_updated_rules_apply_to_the_next_decision() -> None:
    scenario = given(booked(B1, at(9), at(10)))

    scenario.when(update(min_notice_minutes=120, **MONDAY_NINE_TO_FIVE)).then(ResourceUpdated)

    violated(scenario.when(book(B2, at(9, 30), at(10, 30))), "min-notice")
    violated(scenario.when(book(B2, at(16), at(18))), "opening-hours")
    scenario.when(book(B2, at(10), at(11))).then(BookingCreated)
    assert scenario.resource.holds[str(B1)] == Hold(B1, at(9), at(10), CONFIRMED)


def bad_hours(start: str, end: str) -> dict[str, Any]:
    return {"opening_hours": {"monday": hours((start, end))}}


INVALID_UPDATES = {
    "negative-notice": ({"min_notice_minutes": -1}, "min_notice_minutes"),
    "negative-buffer": ({"buffer_after_minutes": -5}, "buffer_after_minutes"),
    "zero-step": ({"start_step_minutes": 0}, "start_step_minutes"),
    "zero-advance": ({"max_advance_days": 0}, "max_advance_days"),
    "zero-approval-window": ({"approval_window_minutes": 0}, "approval_window_minutes"),
    "over-ten-years": ({"min_notice_minutes": 10 * 366 * 24 * 60 + 1}, "min_notice_minutes"),
    "min-over-max": (
        {"min_duration_minutes": 90, "max_duration_minutes": 60},
        "max_duration_minutes",
    ),
    "max-under-current-min": ({"max_duration_minutes": 20}, "max_duration_minutes"),
    "bad-weekday": ({"opening_hours": {"funday": hours(("09:00", "17:00"))}}, "opening_hours"),
    "one-digit-hour": (bad_hours("9:00", "17:00"), "opening_hours.monday"),
    "hour-25": (bad_hours("09:00", "25:00"), "opening_hours.monday"),
    "minute-60": (bad_hours("09:60", "17:00"), "opening_hours.monday"),
    "after-24:00": (bad_hours("09:00", "24:30"), "opening_hours.monday"),
    "end-before-start": (bad_hours("17:00", "09:00"), "opening_hours.monday"),
    "end-equals-start": (bad_hours("09:00", "09:00"), "opening_hours.monday"),
    "missing-end": ({"opening_hours": {"monday": [{"start": "09:00"}]}}, "opening_hours.monday"),
    "extra-key": (
        {"opening_hours": {"monday": [{"start": "09:00", "end": "17:00", "x": "y"}]}},
        "opening_hours.monday",
    ),
    "bad-date": ({"date_exceptions": {"2030-02-30": []}}, "date_exceptions"),
    "date-end-before-start": (
        {"date_exceptions": {"2030-06-04": hours(("12:00", "10:00"))}},
        "date_exceptions.2030-06-04",
    ),
    "zero-capacity": ({"capacity": 0}, "capacity"),
    "unknown-zone": ({"timezone": "Mars/Base"}, "timezone"),
    "unknown-setting": ({"colour": "red"}, "body"),
}


@pytest.mark.parametrize(("changes", "field"), INVALID_UPDATES.values(), ids=INVALID_UPDATES.keys())
def test_update_refuses_invalid_values(changes: dict[str, Any], field: str) -> None:
    outcome = given(with_rules(min_duration_minutes=30)).when(update(**changes))

    assert outcome.then_raises(InvalidCommandError).field == field
    assert outcome.resource.rules == Rules(min_duration_minutes=30)


@pytest.mark.parametrize(
    ("rules", "field"),
    [({"buffer_before_minutes": -1}, "buffer_before_minutes"), ({"colour": "red"}, "rules")],
)
def test_register_refuses_invalid_rules(rules: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidCommandError) as refused:
        Resource.register(R1, name="Room", rules=rules, now=NOW)

    assert refused.value.field == field


@pytest.mark.parametrize("day", ["20300603", "2030-W23-1"], ids=["basic-format", "week-date"])
def test_date_exceptions_must_be_written_yyyy_mm_dd(day: str) -> None:
    # Any other spelling would be stored but never match the day it names.
    with pytest.raises(InvalidCommandError) as refused:
        Rules.of({"date_exceptions": {day: []}})

    assert refused.value.field == "date_exceptions"


def test_a_clock_time_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidCommandError) as refused:
        Rules.of(bad_hours("09:00\n", "17:00"))

    assert refused.value.field == "opening_hours.monday"


# -- bookable: exactly what check_slot accepts --------------------------------------------------


def brute_force(
    policy: Policy,
    start: datetime,
    end: datetime,
    duration: timedelta,
    now: datetime,
    *,
    holds: list[Hold],
    closures: list[Closure],
) -> list[datetime]:
    """Every minute of `[start, end)` where check_slot accepts a booking of `duration`."""
    accepted = []
    candidate = start
    while candidate < end:
        try:
            policy.check_slot(candidate, candidate + duration, now, holds=holds, closures=closures)
        except DomainError:
            pass
        else:
            accepted.append(candidate)
        candidate += minutes(1)
    return accepted


BUSY_BERLIN = Policy(
    R1,
    "Europe/Berlin",
    2,
    Rules.of(
        {
            "pending_holds_slot": False,
            "min_notice_minutes": 120,
            "max_advance_days": 3,
            "min_duration_minutes": 30,
            "max_duration_minutes": 180,
            "start_step_minutes": 30,
            "buffer_before_minutes": 15,
            "buffer_after_minutes": 15,
            "opening_hours": {
                **dict.fromkeys(
                    ["monday", "tuesday", "wednesday", "thursday", "friday"],
                    hours(("09:00", "12:00"), ("13:00", "17:00")),
                ),
                "saturday": hours(("10:00", "14:00")),
            },
            "date_exceptions": {"2030-03-31": hours(("10:00", "16:00"))},  # the DST Sunday
        }
    ),
)
BERLIN_HOLDS = [
    Hold(B1, utc(4, 1, 7), utc(4, 1, 8), CONFIRMED),  # Monday 09:00-10:00 CEST, twice: full
    Hold(B2, utc(4, 1, 7), utc(4, 1, 8), CONFIRMED),
    Hold(B3, utc(3, 31, 9), utc(3, 31, 10), CONFIRMED),  # one of two on Sunday
    Hold(B4, utc(3, 31, 9), utc(3, 31, 10), PENDING),  # does not hold its slot here
]
BERLIN_CLOSURES = [Closure(K1, utc(3, 30, 10), utc(3, 30, 11))]  # Saturday 11:00-12:00 CET


@pytest.mark.parametrize("length", [30, 60, 150])
def test_bookable_lists_exactly_what_check_slot_accepts_across_a_dst_change(length: int) -> None:
    now = utc(3, 29, 12)  # Friday 13:00 CET; three days ahead is Monday 14:00 CEST
    start, end, duration = utc(3, 29, 0), utc(4, 2, 0), minutes(length)
    holds, closures = BERLIN_HOLDS, BERLIN_CLOSURES

    listed = BUSY_BERLIN.bookable(start, end, duration, now, holds=holds, closures=closures)

    assert listed == brute_force(
        BUSY_BERLIN, start, end, duration, now, holds=holds, closures=closures
    )
    assert utc(3, 31, 8) in listed  # Sunday 10:00 CEST
    assert utc(3, 31, 9) in listed  # next to one confirmed booking and one pending: room
    assert utc(3, 30, 10) not in listed  # Saturday 11:00 CET: closed
    assert utc(3, 31, 7, 30) not in listed  # Sunday 09:30 CEST: not open yet
    assert utc(4, 1, 7) not in listed  # Monday 09:00 CEST: two bookings there
    assert not [t for t in listed if t > now + timedelta(days=3)]


@pytest.mark.parametrize(
    ("timezone", "start", "step"),
    [
        ("America/New_York", utc(11, 3, 4), 30),  # 01:00-02:00 happens twice
        ("Europe/Berlin", utc(10, 27, 0), 30),  # 02:00-03:00 happens twice
        ("America/New_York", utc(3, 10, 5), 45),  # 02:00-03:00 never happens
        ("Europe/Berlin", utc(3, 30, 23), 45),
    ],
    ids=["new-york-autumn", "berlin-autumn", "new-york-spring", "berlin-spring"],
)
def test_bookable_lists_every_start_check_slot_accepts_during_the_dst_change(
    timezone: str, start: datetime, step: int
) -> None:
    policy = Policy(R1, timezone, 1, Rules(start_step_minutes=step))
    end, duration = start + timedelta(hours=4), minutes(30)

    listed = policy.bookable(start, end, duration, EARLY, holds=[], closures=[])

    assert listed == brute_force(policy, start, end, duration, EARLY, holds=[], closures=[])

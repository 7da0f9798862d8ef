"""Free time: the parts of a window where the resource is open, not closed, and fewer than
`capacity` busy slots (widened by the buffers) overlap."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from commands.policy import Hold, Policy, Rules
from projections.availability import ClosureView, FreeSlot, free

R1 = UUID("00000000-0000-4000-8000-0000000000a1")
DAY = datetime(2030, 6, 3, tzinfo=UTC)  # a Monday


def at(hour: int, minute: int = 0, *, day: int = 0) -> datetime:
    return DAY + timedelta(days=day, hours=hour, minutes=minute)


def policy(capacity: int = 1, timezone: str = "UTC", **rules: Any) -> Policy:
    return Policy(R1, timezone, capacity, Rules.of(rules))


def closed(*spans: tuple[datetime, datetime]) -> list[ClosureView]:
    return [
        ClosureView(
            closure_id=UUID(int=100 + i),
            resource_id=R1,
            start_time=start,
            end_time=end,
            reason=None,
            created_at=DAY,
        )
        for i, (start, end) in enumerate(spans, start=1)
    ]


def busy(*spans: tuple[datetime, datetime]) -> list[Hold]:
    return [
        Hold(UUID(int=i), start, end, "confirmed") for i, (start, end) in enumerate(spans, start=1)
    ]


def spans(slots: list[FreeSlot]) -> list[tuple[datetime, datetime]]:
    return [(s.start_time, s.end_time) for s in slots]


def test_nothing_busy_leaves_the_whole_window_free() -> None:
    assert spans(free([], [], policy(1), at(9), at(17))) == [(at(9), at(17))]


def test_an_empty_window_has_no_free_time() -> None:
    assert free([], [], policy(1), at(9), at(9)) == []
    assert free(busy((at(8), at(10))), [], policy(1), at(9), at(9)) == []


def test_free_slots_are_free_slot_structs() -> None:
    assert free(busy((at(10), at(11))), [], policy(1), at(9), at(12)) == [
        FreeSlot(start_time=at(9), end_time=at(10)),
        FreeSlot(start_time=at(11), end_time=at(12)),
    ]


@pytest.mark.parametrize(
    "taken",
    [
        [(at(9), at(17))],
        [(at(8), at(18))],
        [(at(9), at(12)), (at(12), at(17))],
        [(at(8), at(13)), (at(11), at(18))],
    ],
    ids=["exactly", "beyond", "back-to-back", "overlapping"],
)
def test_busy_covering_the_window_leaves_nothing_free(
    taken: list[tuple[datetime, datetime]],
) -> None:
    assert free(busy(*taken), [], policy(1), at(9), at(17)) == []


def test_one_slot_in_the_middle_splits_the_window() -> None:
    assert spans(free(busy((at(11), at(12))), [], policy(1), at(9), at(17))) == [
        (at(9), at(11)),
        (at(12), at(17)),
    ]


def test_adjacent_bookings_leave_no_gap_between_them() -> None:
    slots = busy((at(10), at(11)), (at(11), at(12)), (at(12), at(13)))

    assert spans(free(slots, [], policy(1), at(9), at(17))) == [(at(9), at(10)), (at(13), at(17))]


def test_a_gap_between_bookings_is_free() -> None:
    slots = busy((at(10), at(11)), (at(11, 30), at(12)))

    assert spans(free(slots, [], policy(1), at(9), at(13))) == [
        (at(9), at(10)),
        (at(11), at(11, 30)),
        (at(12), at(13)),
    ]


def test_unsorted_busy_slots_give_the_same_free_time() -> None:
    slots = busy((at(14), at(15)), (at(10), at(11)), (at(12), at(13)))

    assert spans(free(slots, [], policy(1), at(9), at(16))) == [
        (at(9), at(10)),
        (at(11), at(12)),
        (at(13), at(14)),
        (at(15), at(16)),
    ]


def test_overlapping_bookings_with_capacity_one_block_their_union() -> None:
    slots = busy((at(10), at(12)), (at(11), at(13)))

    assert spans(free(slots, [], policy(1), at(9), at(14))) == [(at(9), at(10)), (at(13), at(14))]


def test_capacity_two_is_full_only_where_two_bookings_overlap() -> None:
    slots = busy((at(10), at(12)), (at(11), at(13)))

    assert spans(free(slots, [], policy(2), at(9), at(14))) == [(at(9), at(11)), (at(12), at(14))]


def test_capacity_two_with_bookings_that_never_overlap_is_always_free() -> None:
    slots = busy((at(9), at(10)), (at(10), at(11)), (at(11), at(12)))

    assert spans(free(slots, [], policy(2), at(9), at(12))) == [(at(9), at(12))]


def test_capacity_two_with_three_overlapping_is_full_where_any_two_overlap() -> None:
    slots = busy((at(9), at(11)), (at(10), at(12)), (at(11, 30), at(13)))

    assert spans(free(slots, [], policy(2), at(8), at(14))) == [
        (at(8), at(10)),
        (at(11), at(11, 30)),
        (at(12), at(14)),
    ]


def test_one_booking_below_capacity_blocks_nothing() -> None:
    assert spans(free(busy((at(10), at(11))), [], policy(2), at(9), at(12))) == [(at(9), at(12))]


def test_slots_sticking_out_of_the_window_are_clipped() -> None:
    slots = busy((at(7), at(10)), (at(16), at(19)))

    assert spans(free(slots, [], policy(1), at(9), at(17))) == [(at(10), at(16))]


def test_slots_outside_the_window_change_nothing() -> None:
    slots = busy((at(6), at(7)), (at(7), at(9)), (at(17), at(18)), (at(19), at(20)))

    assert spans(free(slots, [], policy(1), at(9), at(17))) == [(at(9), at(17))]


def test_free_time_never_leaves_the_window() -> None:
    slots = busy((at(8), at(9, 30)), (at(12), at(13)), (at(16, 30), at(18)))

    result = spans(free(slots, [], policy(1), at(9), at(17)))

    assert result == [(at(9, 30), at(12)), (at(13), at(16, 30))]
    assert all(at(9) <= start < end <= at(17) for start, end in result)


# -- buffers ------------------------------------------------------------------------------------


def test_buffers_widen_each_busy_slot() -> None:
    slots = busy((at(10), at(11)))
    widened = policy(buffer_before_minutes=15, buffer_after_minutes=30)

    assert spans(free(slots, [], widened, at(9), at(17))) == [
        (at(9), at(9, 45)),
        (at(11, 30), at(17)),
    ]


def test_buffers_of_slots_outside_the_window_reach_into_it() -> None:
    slots = busy((at(7), at(8, 45)), (at(17), at(18)))
    widened = policy(buffer_before_minutes=30, buffer_after_minutes=30)

    assert spans(free(slots, [], widened, at(9), at(17))) == [(at(9, 15), at(16, 30))]


def test_a_gap_narrower_than_the_buffers_is_not_free() -> None:
    slots = busy((at(10), at(11)), (at(11, 30), at(12)))
    widened = policy(buffer_before_minutes=15, buffer_after_minutes=15)

    assert spans(free(slots, [], widened, at(9), at(13))) == [
        (at(9), at(9, 45)),
        (at(12, 15), at(13)),
    ]


def test_capacity_two_with_buffers_is_full_where_the_widened_slots_overlap() -> None:
    slots = busy((at(10), at(11)), (at(11, 15), at(12)))
    widened = policy(2, buffer_after_minutes=30)

    assert spans(free(slots, [], widened, at(9), at(13))) == [
        (at(9), at(11, 15)),
        (at(11, 30), at(13)),
    ]


# -- closures -----------------------------------------------------------------------------------


def test_a_closure_is_not_free() -> None:
    assert spans(free([], closed((at(12), at(13))), policy(1), at(9), at(17))) == [
        (at(9), at(12)),
        (at(13), at(17)),
    ]


def test_a_closure_blocks_all_capacity() -> None:
    assert spans(free([], closed((at(12), at(13))), policy(3), at(9), at(17))) == [
        (at(9), at(12)),
        (at(13), at(17)),
    ]


def test_closures_and_busy_slots_block_together_and_are_clipped_to_the_window() -> None:
    slots = busy((at(11), at(12)))
    closures = closed((at(8), at(10)), (at(11, 30), at(13)), (at(16), at(18)))

    assert spans(free(slots, closures, policy(1), at(9), at(17))) == [
        (at(10), at(11)),
        (at(13), at(16)),
    ]


def test_closures_are_not_widened_by_the_buffers() -> None:
    closures = closed((at(12), at(13)))
    widened = policy(buffer_before_minutes=30, buffer_after_minutes=30)

    assert spans(free([], closures, widened, at(9), at(17))) == [(at(9), at(12)), (at(13), at(17))]


# -- opening hours ------------------------------------------------------------------------------


def hours(*intervals: tuple[str, str]) -> list[dict[str, str]]:
    return [{"start": start, "end": end} for start, end in intervals]


def every_day(*intervals: tuple[str, str]) -> dict[str, list[dict[str, str]]]:
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    return dict.fromkeys(days, hours(*intervals))


def test_time_outside_opening_hours_is_not_free() -> None:
    open_monday = policy(opening_hours={"monday": hours(("09:00", "12:00"), ("13:00", "17:00"))})

    assert spans(free([], [], open_monday, at(8), at(18))) == [
        (at(9), at(12)),
        (at(13), at(17)),
    ]


def test_opening_hours_busy_slots_and_closures_combine() -> None:
    rules = policy(2, opening_hours=every_day(("09:00", "17:00")), buffer_after_minutes=15)
    slots = busy((at(10), at(11)), (at(10, 30), at(11, 30)))
    closures = closed((at(15), at(18)))

    assert spans(free(slots, closures, rules, at(0), at(24))) == [
        (at(9), at(10, 30)),
        (at(11, 15), at(15)),
    ]


def test_adjacent_opening_intervals_give_one_free_span() -> None:
    split = policy(opening_hours={"monday": hours(("09:00", "12:00"), ("12:00", "17:00"))})

    assert spans(free([], [], split, at(0), at(24))) == [(at(9), at(17))]


def test_a_day_without_hours_has_no_free_time() -> None:
    monday_only = policy(opening_hours={"monday": hours(("09:00", "17:00"))})

    assert spans(free([], [], monday_only, at(0), at(0, day=3))) == [(at(9), at(17))]


def test_a_date_exception_replaces_the_weekday_hours() -> None:
    rules = policy(
        opening_hours=every_day(("09:00", "17:00")),
        date_exceptions={"2030-06-03": [], "2030-06-04": hours(("10:00", "12:00"))},
    )

    assert spans(free([], [], rules, at(0), at(0, day=3))) == [
        (at(10, day=1), at(12, day=1)),
        (at(9, day=2), at(17, day=2)),
    ]


def test_opening_hours_run_across_midnight() -> None:
    rules = policy(
        opening_hours={"monday": hours(("18:00", "24:00")), "tuesday": hours(("00:00", "02:00"))}
    )

    assert spans(free([], [], rules, at(0), at(0, day=2))) == [(at(18), at(2, day=1))]


def utc(month: int, day: int, hour: int) -> datetime:
    return datetime(2030, month, day, hour, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timezone", "first_day", "expected"),
    [
        (
            "Europe/Berlin",
            utc(3, 30, 0),
            [
                (utc(3, 30, 8), utc(3, 30, 16)),
                (utc(3, 31, 7), utc(3, 31, 15)),
                (utc(4, 1, 7), utc(4, 1, 15)),
            ],
        ),
        (
            "Europe/Berlin",
            utc(10, 26, 0),
            [
                (utc(10, 26, 7), utc(10, 26, 15)),
                (utc(10, 27, 8), utc(10, 27, 16)),
                (utc(10, 28, 8), utc(10, 28, 16)),
            ],
        ),
        (
            "America/New_York",
            utc(3, 9, 12),
            [
                (utc(3, 9, 14), utc(3, 9, 22)),
                (utc(3, 10, 13), utc(3, 10, 21)),
                (utc(3, 11, 13), utc(3, 11, 21)),
            ],
        ),
        (
            "America/New_York",
            utc(11, 2, 12),
            [
                (utc(11, 2, 13), utc(11, 2, 21)),
                (utc(11, 3, 14), utc(11, 3, 22)),
                (utc(11, 4, 14), utc(11, 4, 22)),
            ],
        ),
    ],
    ids=["berlin-spring", "berlin-autumn", "new-york-spring", "new-york-autumn"],
)
def test_opening_hours_stay_local_across_a_dst_change(
    timezone: str, first_day: datetime, expected: list[tuple[datetime, datetime]]
) -> None:
    nine_to_five = policy(timezone=timezone, opening_hours=every_day(("09:00", "17:00")))

    assert spans(free([], [], nine_to_five, first_day, first_day + timedelta(days=3))) == expected

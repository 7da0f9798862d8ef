"""Free time: the parts of a window where fewer than `capacity` busy slots overlap."""

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from projections.availability import BusySlot, FreeSlot, free

DAY = datetime(2030, 6, 3, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def busy(*spans: tuple[datetime, datetime]) -> list[BusySlot]:
    return [
        BusySlot(booking_id=UUID(int=i), start_time=start, end_time=end, status="confirmed")
        for i, (start, end) in enumerate(spans, start=1)
    ]


def spans(slots: list[FreeSlot]) -> list[tuple[datetime, datetime]]:
    return [(s.start_time, s.end_time) for s in slots]


def test_nothing_busy_leaves_the_whole_window_free() -> None:
    assert spans(free([], 1, at(9), at(17))) == [(at(9), at(17))]


def test_an_empty_window_has_no_free_time() -> None:
    assert free([], 1, at(9), at(9)) == []
    assert free(busy((at(8), at(10))), 1, at(9), at(9)) == []


def test_free_slots_are_free_slot_structs() -> None:
    assert free(busy((at(10), at(11))), 1, at(9), at(12)) == [
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
    assert free(busy(*taken), 1, at(9), at(17)) == []


def test_one_slot_in_the_middle_splits_the_window() -> None:
    assert spans(free(busy((at(11), at(12))), 1, at(9), at(17))) == [
        (at(9), at(11)),
        (at(12), at(17)),
    ]


def test_adjacent_bookings_leave_no_gap_between_them() -> None:
    slots = busy((at(10), at(11)), (at(11), at(12)), (at(12), at(13)))

    assert spans(free(slots, 1, at(9), at(17))) == [(at(9), at(10)), (at(13), at(17))]


def test_a_gap_between_bookings_is_free() -> None:
    slots = busy((at(10), at(11)), (at(11, 30), at(12)))

    assert spans(free(slots, 1, at(9), at(13))) == [
        (at(9), at(10)),
        (at(11), at(11, 30)),
        (at(12), at(13)),
    ]


def test_unsorted_busy_slots_give_the_same_free_time() -> None:
    slots = busy((at(14), at(15)), (at(10), at(11)), (at(12), at(13)))

    assert spans(free(slots, 1, at(9), at(16))) == [
        (at(9), at(10)),
        (at(11), at(12)),
        (at(13), at(14)),
        (at(15), at(16)),
    ]


def test_overlapping_bookings_with_capacity_one_block_their_union() -> None:
    slots = busy((at(10), at(12)), (at(11), at(13)))

    assert spans(free(slots, 1, at(9), at(14))) == [(at(9), at(10)), (at(13), at(14))]


def test_capacity_two_is_full_only_where_two_bookings_overlap() -> None:
    slots = busy((at(10), at(12)), (at(11), at(13)))

    assert spans(free(slots, 2, at(9), at(14))) == [(at(9), at(11)), (at(12), at(14))]


def test_capacity_two_with_bookings_that_never_overlap_is_always_free() -> None:
    slots = busy((at(9), at(10)), (at(10), at(11)), (at(11), at(12)))

    assert spans(free(slots, 2, at(9), at(12))) == [(at(9), at(12))]


def test_capacity_two_with_three_overlapping_is_full_where_any_two_overlap() -> None:
    slots = busy((at(9), at(11)), (at(10), at(12)), (at(11, 30), at(13)))

    assert spans(free(slots, 2, at(8), at(14))) == [
        (at(8), at(10)),
        (at(11), at(11, 30)),
        (at(12), at(14)),
    ]


def test_one_booking_below_capacity_blocks_nothing() -> None:
    assert spans(free(busy((at(10), at(11))), 2, at(9), at(12))) == [(at(9), at(12))]


def test_slots_sticking_out_of_the_window_are_clipped() -> None:
    slots = busy((at(7), at(10)), (at(16), at(19)))

    assert spans(free(slots, 1, at(9), at(17))) == [(at(10), at(16))]


def test_slots_outside_the_window_change_nothing() -> None:
    slots = busy((at(6), at(7)), (at(7), at(9)), (at(17), at(18)), (at(19), at(20)))

    assert spans(free(slots, 1, at(9), at(17))) == [(at(9), at(17))]


def test_free_time_never_leaves_the_window() -> None:
    slots = busy((at(8), at(9, 30)), (at(12), at(13)), (at(16, 30), at(18)))

    result = spans(free(slots, 1, at(9), at(17)))

    assert result == [(at(9, 30), at(12)), (at(13), at(16, 30))]
    assert all(at(9) <= start < end <= at(17) for start, end in result)

"""A resource checks a slot against the holds near it, found by start time, not against every
open booking. Its answers must be those of checking every booking: random bookings, changes,
cancellations, undone decisions and reloads from snapshots, against a plain list of slots."""

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from commands.errors import SlotTakenError
from commands.resource import Resource

NOW = datetime(2030, 6, 3, tzinfo=UTC)
STEP = timedelta(minutes=15)
BUFFERS = {"buffer_before_minutes": 15, "buffer_after_minutes": 30}
MARGIN = timedelta(minutes=45)
"""Both buffers: two bookings conflict when their times, so widened, overlap."""

Slots = dict[UUID, tuple[datetime, datetime]]


def in_the_way(
    slots: Slots, start: datetime, end: datetime, ignoring: UUID | None = None
) -> set[UUID]:
    """Every booking the slot would collide with, by looking at all of them."""
    return {
        b
        for b, (s, e) in slots.items()
        if b != ignoring and s - MARGIN < end and start < e + MARGIN
    }


def random_slot(rng: random.Random) -> tuple[datetime, datetime]:
    start = NOW + STEP * rng.randrange(4, 3000)
    return start, start + STEP * rng.choice([1, 2, 3, 8, 100, 700])  # a few very long


def refused(decision: Callable[[], None]) -> set[UUID]:
    """The bookings a decision was refused for (none: it was taken)."""
    try:
        decision()
    except SlotTakenError as error:
        return set(error.conflicting_booking_ids)
    return set()


def decide(resource: Resource, rng: random.Random, slots: Slots) -> Slots:
    """One random decision on `resource`; the slots it leaves if it is taken."""
    if slots and rng.random() < 0.2:
        booking_id = rng.choice(sorted(slots))
        resource.cancel_booking(booking_id, reason=None, actor=None, now=NOW, by="owner")
        return {b: slot for b, slot in slots.items() if b != booking_id}
    if slots and rng.random() < 0.3:
        booking_id = rng.choice(sorted(slots))
        start, end = random_slot(rng)
        expected = in_the_way(slots, start, end, ignoring=booking_id)
        assert expected == refused(
            lambda: resource.modify_booking(
                booking_id, start=start, end=end, details=None, actor=None, now=NOW, by="owner"
            )
        )
        if expected:
            return slots
        return slots | {booking_id: (start, end)}
    booking_id = uuid4()
    start, end = random_slot(rng)
    expected = in_the_way(slots, start, end)
    assert expected == refused(
        lambda: resource.create_booking(
            booking_id, client_id=uuid4(), start=start, end=end, details=None, actor=None, now=NOW
        )
    )
    if expected:
        return slots
    return slots | {booking_id: (start, end)}


@pytest.mark.parametrize("seed", range(6))
def test_slot_checks_find_exactly_the_bookings_in_the_way(seed: int) -> None:
    rng = random.Random(seed)
    resource = Resource.register(uuid4(), name="Room", rules=BUFFERS, now=NOW)
    resource.collect_events()
    slots: Slots = {}
    for _ in range(600):
        version = resource.version
        after = decide(resource, rng, slots)
        if rng.random() < 0.15:
            resource.revert(version)  # as after a lost race: the decision never happened
        else:
            resource.collect_events()
            slots = after
        if rng.random() < 0.02:  # as loaded from a snapshot
            resource = Resource.Snapshot.take(resource).mutate(None)
    assert {h.booking_id: (h.start, h.end) for h in resource.holds.values()} == slots
    assert len(slots) > 30  # enough bookings that most checks could skip most of them

"""Undoing a decision on the Resource aggregate: every kind of event put back exactly, whether the
events are still pending (a decision refused half-way) or were collected for a save that failed."""

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from commands.resource import Resource

R1 = UUID("00000000-0000-4000-8000-0000000000a1")
R2 = UUID("00000000-0000-4000-8000-0000000000a2")
C1 = UUID("00000000-0000-4000-8000-0000000000c1")
B1 = UUID("00000000-0000-4000-8000-0000000000b1")
B2 = UUID("00000000-0000-4000-8000-0000000000b2")
B3 = UUID("00000000-0000-4000-8000-0000000000b3")
K1 = UUID("00000000-0000-4000-8000-0000000000d1")
K2 = UUID("00000000-0000-4000-8000-0000000000d2")
DAY = datetime(2030, 6, 3, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


NOW = at(8)


def book(r: Resource, booking_id: UUID, start: datetime, end: datetime) -> None:
    r.create_booking(
        booking_id, client_id=C1, start=start, end=end, details=None, actor=None, now=NOW
    )


def saved() -> Resource:
    """A resource with a pending request (B1), a confirmed booking (B2) and a closure (K1)."""
    r = Resource.register(R1, name="Studio", requires_approval=True, now=at(6))
    book(r, B1, at(9), at(10))
    book(r, B2, at(11), at(12))
    r.approve_booking(B2, actor=None, now=NOW)
    r.add_closure(K1, start=at(15), end=at(16), reason=None, actor=None, now=NOW)
    r.collect_events()
    return r


def several(r: Resource) -> None:
    """One decision of several events, two of them on the same booking."""
    book(r, B3, at(17), at(18))
    r.cancel_booking(B3, reason=None, actor=None, now=NOW)
    r.modify_booking(B2, start=at(11, 30), end=None, details="later", actor=None, now=NOW)


DECISIONS: dict[str, Callable[[Resource], Any]] = {
    "create": lambda r: book(r, B3, at(17), at(18)),
    "modify": lambda r: r.modify_booking(
        B1, start=at(9, 30), end=at(10, 30), details="moved", actor=None, now=NOW
    ),
    "cancel": lambda r: r.cancel_booking(B1, reason=None, actor=None, now=NOW),
    "approve": lambda r: r.approve_booking(B1, actor=None, now=NOW),
    "reject": lambda r: r.reject_booking(B1, reason=None, actor=None, now=NOW),
    "complete": lambda r: r.complete_booking(B2, actor=None, now=at(11, 30)),
    "no_show": lambda r: r.mark_no_show(B2, actor=None, now=at(11, 30)),
    "settle": lambda r: r.settle(at(13)),  # B1 expires, B2 completes
    "update": lambda r: r.update(
        {"name": "Hall", "capacity": 2, "max_duration_minutes": 120}, actor=None, now=NOW
    ),
    "retire": lambda r: r.retire(reason=None, actor=None, now=NOW),
    "add_closure": lambda r: r.add_closure(
        K2, start=at(19), end=at(20), reason=None, actor=None, now=NOW
    ),
    "remove_closure": lambda r: r.remove_closure(K1, actor=None, now=NOW),
    "move_out": lambda r: r.move_out(
        B1, Resource.register(R2, name="Other", now=NOW), actor=None, now=NOW, by="owner"
    ),
    "several": several,
}


@pytest.mark.parametrize("collected", [False, True], ids=["pending", "collected"])
@pytest.mark.parametrize("decision", DECISIONS)
def test_a_reverted_decision_leaves_the_resource_as_it_was(decision: str, collected: bool) -> None:
    resource = saved()
    version, before = resource.version, copy.deepcopy(vars(resource))

    DECISIONS[decision](resource)
    assert resource.version > version
    if collected:
        resource.collect_events()
    resource.revert(version)

    assert vars(resource) == before
    assert resource.pending_events == []
    # It decides on from there as if nothing had happened.
    book(resource, B3, at(17), at(18))
    [event] = resource.collect_events()
    assert event.originator_version == version + 1


def test_reverting_to_the_current_version_keeps_a_saved_decision() -> None:
    resource = saved()
    book(resource, B3, at(17), at(18))
    resource.collect_events()  # saved

    resource.revert(resource.version)  # a later command refused before it changed anything

    assert str(B3) in resource.holds


def test_a_resource_cannot_go_back_past_its_last_decision() -> None:
    resource = saved()
    with pytest.raises(ValueError, match="no decision taken at version"):
        resource.revert(resource.version - 1)


def test_the_undo_notes_are_no_part_of_the_state() -> None:
    resource = saved()
    before = dict(vars(resource))
    book(resource, B3, at(17), at(18))

    assert set(vars(resource)) == set(before)
    assert "_undo" not in Resource.Snapshot.take(resource).state

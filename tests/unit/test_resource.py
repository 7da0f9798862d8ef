"""The Resource aggregate, given/when/then on events: every rule and every transition."""

import copy
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

from commands.errors import BookingClosedError, InvalidCommandError, SlotTakenError
from commands.policy import Rules
from commands.resource import CONFIRMED, PENDING, TRANSCODINGS, Hold, Resource, Role
from events.resource import (
    BookingApproved,
    BookingCancelled,
    BookingCompleted,
    BookingCreated,
    BookingExpired,
    BookingModified,
    BookingMovedOut,
    BookingNoShow,
    BookingRejected,
    ClosureAdded,
    ClosureRemoved,
    ResourceRegistered,
    ResourceRetired,
)
from events.store import new_mapper

R1 = UUID("00000000-0000-4000-8000-0000000000a1")
C1 = UUID("00000000-0000-4000-8000-0000000000c1")
B1 = UUID("00000000-0000-4000-8000-0000000000b1")
B2 = UUID("00000000-0000-4000-8000-0000000000b2")
B3 = UUID("00000000-0000-4000-8000-0000000000b3")
B4 = UUID("00000000-0000-4000-8000-0000000000b4")
B5 = UUID("00000000-0000-4000-8000-0000000000b5")
DAY = datetime(2030, 6, 3, tzinfo=UTC)


def at(hour: int, minute: int = 0, *, day: int = 0) -> datetime:
    """A fixed UTC instant on the test day (or `day` days later)."""
    return DAY + timedelta(days=day, hours=hour, minutes=minute)


NOW = at(8)
PAST = at(6)


# -- given: events, as facts -------------------------------------------------------------------

E = TypeVar("E", bound=Aggregate.Event)


def fact(event_type: type[E], **values: Any) -> E:
    """An event that happened in the past; given() sets its resource and version."""
    return event_type(originator_id=R1, originator_version=0, timestamp=PAST, actor=None, **values)


def registered(
    *,
    capacity: int = 1,
    requires_approval: bool = False,
    timezone: str = "UTC",
    name: str = "Room 1",
    rules: dict[str, Any] | None = None,
    resource_id: UUID = R1,
) -> ResourceRegistered:
    return ResourceRegistered(
        originator_id=resource_id,
        originator_version=1,
        timestamp=PAST,
        originator_topic=get_topic(Resource),
        name=name,
        timezone=timezone,
        capacity=capacity,
        requires_approval=requires_approval,
        details=None,
        actor=None,
        rules=Rules.of(rules).to_dict(),
    )


def booked(
    booking_id: UUID,
    start: datetime,
    end: datetime,
    status: str = CONFIRMED,
    *,
    deadline: datetime | None = None,
) -> BookingCreated:
    return fact(
        BookingCreated,
        booking_id=booking_id,
        client_id=C1,
        start_time=start,
        end_time=end,
        details=None,
        status=status,
        approval_deadline=deadline,
    )


def moved(
    booking_id: UUID, start: datetime | None = None, end: datetime | None = None
) -> BookingModified:
    return fact(
        BookingModified, booking_id=booking_id, start_time=start, end_time=end, details=None
    )


def cancelled(booking_id: UUID) -> BookingCancelled:
    return fact(BookingCancelled, booking_id=booking_id, reason=None)


def approved(booking_id: UUID) -> BookingApproved:
    return fact(BookingApproved, booking_id=booking_id)


def rejected(booking_id: UUID) -> BookingRejected:
    return fact(BookingRejected, booking_id=booking_id, reason=None)


def expired(booking_id: UUID) -> BookingExpired:
    return fact(BookingExpired, booking_id=booking_id)


def completed(booking_id: UUID) -> BookingCompleted:
    return fact(BookingCompleted, booking_id=booking_id, automatic=True)


def no_show(booking_id: UUID) -> BookingNoShow:
    return fact(BookingNoShow, booking_id=booking_id)


def moved_out(booking_id: UUID, to: UUID) -> BookingMovedOut:
    return fact(BookingMovedOut, booking_id=booking_id, to_resource_id=to)


def closed(closure_id: UUID, start: datetime, end: datetime) -> ClosureAdded:
    return fact(ClosureAdded, closure_id=closure_id, start_time=start, end_time=end, reason=None)


def reopened(closure_id: UUID) -> ClosureRemoved:
    return fact(ClosureRemoved, closure_id=closure_id)


def retired() -> ResourceRetired:
    return fact(ResourceRetired, reason=None)


# -- when: commands, as functions of the resource ----------------------------------------------


Command = Callable[[Resource], object]


def book(
    booking_id: UUID,
    start: datetime,
    end: datetime,
    *,
    now: datetime = NOW,
    details: str | None = None,
) -> Command:
    return lambda r: r.create_booking(
        booking_id, client_id=C1, start=start, end=end, details=details, actor="alice", now=now
    )


def modify(
    booking_id: UUID,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    details: str | None = None,
    now: datetime = NOW,
    by: Role = "client",
) -> Command:
    return lambda r: r.modify_booking(
        booking_id, start=start, end=end, details=details, actor="alice", now=now, by=by
    )


def cancel(
    booking_id: UUID, *, reason: str | None = None, now: datetime = NOW, by: Role = "client"
) -> Command:
    return lambda r: r.cancel_booking(booking_id, reason=reason, actor="alice", now=now, by=by)


def settle(now: datetime = NOW) -> Command:
    return lambda r: r.settle(now)


# -- the helper ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    resource: Resource
    events: list[Aggregate.Event]
    error: Exception | None

    def then(self, *expected: type[Aggregate.Event]) -> list[Any]:
        """Assert the command succeeded with new events of exactly these types; return them."""
        if self.error is not None:
            raise AssertionError(f"expected {expected}, got an error") from self.error
        assert [type(e) for e in self.events] == list(expected)
        return self.events

    def then_nothing(self) -> None:
        """Assert the command succeeded and decided that nothing happens."""
        self.then()

    def then_raises(self, error_type: type[Exception]) -> Any:
        """Assert the command was refused with this error and no event; return the error."""
        assert isinstance(self.error, error_type), f"expected {error_type}, got {self.error!r}"
        assert self.events == []
        return self.error


@dataclasses.dataclass
class Given:
    resource: Resource

    def when(self, command: Command) -> Outcome:
        version = self.resource.version
        try:
            command(self.resource)
        except Exception as error:
            return Outcome(self.resource, self.resource.collect_events(), error)
        events = self.resource.collect_events()
        versions = [e.originator_version for e in events]
        assert versions == list(range(version + 1, version + 1 + len(events)))
        return Outcome(self.resource, events, None)


def given(*events: Aggregate.Event) -> Given:
    """Fold facts into a Resource; a registration (capacity 1) comes first unless given."""
    if not events or not isinstance(events[0], ResourceRegistered):
        events = (registered(), *events)
    resource_id = events[0].originator_id
    resource: Any = None
    for version, event in enumerate(events, start=1):
        fold = dataclasses.replace(event, originator_id=resource_id, originator_version=version)
        resource = fold.mutate(resource)
    assert isinstance(resource, Resource)
    return Given(resource)


def ids(error: SlotTakenError) -> list[UUID]:
    return list(error.conflicting_booking_ids)


# -- register -----------------------------------------------------------------------------------


def test_register_records_every_value() -> None:
    resource = Resource.register(
        R1,
        name="Studio",
        timezone="Europe/Berlin",
        capacity=3,
        requires_approval=True,
        details="2nd floor",
        actor="admin",
        now=NOW,
    )

    [event] = resource.collect_events()
    assert isinstance(event, ResourceRegistered)
    assert (event.originator_id, event.originator_version, event.timestamp) == (R1, 1, NOW)
    assert (event.name, event.timezone, event.capacity) == ("Studio", "Europe/Berlin", 3)
    assert (event.requires_approval, event.details, event.actor) == (True, "2nd floor", "admin")
    assert (resource.name, resource.timezone, resource.capacity) == ("Studio", "Europe/Berlin", 3)
    assert resource.requires_approval is True
    assert resource.holds == {}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": -1}, "capacity"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "europe/berlin"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"timezone": "/etc/localtime"}, "timezone"),
    ],
)
def test_register_refuses_invalid_values(changes: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {"name": "Room", "timezone": "UTC", "capacity": 1, **changes}

    with pytest.raises(InvalidCommandError) as refused:
        Resource.register(R1, **values, now=NOW)

    assert refused.value.field == field


# -- create_booking -----------------------------------------------------------------------------


def test_booking_is_confirmed_by_default() -> None:
    outcome = given(registered()).when(book(B1, at(9), at(10), details="standup"))

    [event] = outcome.then(BookingCreated)
    assert (event.booking_id, event.client_id, event.status) == (B1, C1, CONFIRMED)
    assert (event.start_time, event.end_time) == (at(9), at(10))
    assert (event.details, event.actor, event.timestamp) == ("standup", "alice", NOW)
    assert outcome.resource.holds == {str(B1): Hold(B1, at(9), at(10), CONFIRMED)}


def test_booking_is_pending_when_the_resource_requires_approval() -> None:
    outcome = given(registered(requires_approval=True)).when(book(B1, at(9), at(10)))

    [event] = outcome.then(BookingCreated)
    assert event.status == PENDING
    assert outcome.resource.holds[str(B1)].status == PENDING


@pytest.mark.parametrize("end", [at(9), at(8, 59)], ids=["end-equals-start", "end-before-start"])
def test_booking_must_end_after_it_starts(end: datetime) -> None:
    error = given().when(book(B1, at(9), end)).then_raises(InvalidCommandError)

    assert error.field == "end_time"


def test_booking_cannot_start_in_the_past() -> None:
    error = given().when(book(B1, at(7, 59), at(9))).then_raises(InvalidCommandError)

    assert error.field == "start_time"


def test_booking_may_start_exactly_now() -> None:
    [event] = given().when(book(B1, NOW, at(9))).then(BookingCreated)

    assert event.start_time == NOW


def test_overlapping_booking_is_refused_naming_the_booking_in_the_way() -> None:
    error = (
        given(booked(B1, at(9), at(10)))
        .when(book(B2, at(9, 30), at(11)))
        .then_raises(SlotTakenError)
    )

    assert ids(error) == [B1]
    assert error.resource_id == R1


def test_slot_taken_names_every_conflicting_booking_in_start_order() -> None:
    error = (
        given(booked(B2, at(10), at(11)), booked(B1, at(9), at(10)), booked(B3, at(12), at(13)))
        .when(book(B4, at(9, 30), at(10, 30)))
        .then_raises(SlotTakenError)
    )

    assert ids(error) == [B1, B2]


def test_booking_inside_another_is_refused() -> None:
    error = given(booked(B1, at(9), at(12))).when(book(B2, at(10), at(11)))

    assert ids(error.then_raises(SlotTakenError)) == [B1]


def test_booking_around_another_is_refused() -> None:
    error = given(booked(B1, at(10), at(11))).when(book(B2, at(9), at(12)))

    assert ids(error.then_raises(SlotTakenError)) == [B1]


@pytest.mark.parametrize(
    ("start", "end"), [(at(10), at(11)), (at(8), at(9))], ids=["right-after", "right-before"]
)
def test_touching_bookings_do_not_overlap(start: datetime, end: datetime) -> None:
    outcome = given(booked(B1, at(9), at(10))).when(book(B2, start, end))

    [event] = outcome.then(BookingCreated)
    assert (event.start_time, event.end_time) == (start, end)
    assert set(outcome.resource.holds) == {str(B1), str(B2)}


BOOKINGS = [B1, B2, B3]


@pytest.mark.parametrize("capacity", [1, 2, 3])
def test_capacity_n_accepts_n_overlapping_bookings(capacity: int) -> None:
    history = [booked(b, at(9), at(10)) for b in BOOKINGS[: capacity - 1]]

    outcome = given(registered(capacity=capacity), *history).when(book(B4, at(9), at(10)))

    outcome.then(BookingCreated)
    assert len(outcome.resource.holds) == capacity


@pytest.mark.parametrize("capacity", [1, 2, 3])
def test_capacity_n_refuses_the_n_plus_first_overlapping_booking(capacity: int) -> None:
    history = [booked(b, at(9), at(10)) for b in BOOKINGS[:capacity]]

    error = (
        given(registered(capacity=capacity), *history)
        .when(book(B4, at(9, 30), at(10, 30)))
        .then_raises(SlotTakenError)
    )

    assert ids(error) == BOOKINGS[:capacity]


def test_capacity_counts_bookings_at_one_instant_not_all_that_overlap() -> None:
    # given two bookings that each overlap the new one, but never each other
    outcome = given(
        registered(capacity=2), booked(B1, at(9), at(10)), booked(B2, at(10), at(11))
    ).when(book(B3, at(9, 30), at(10, 30)))

    outcome.then(BookingCreated)
    assert set(outcome.resource.holds) == {str(B1), str(B2), str(B3)}


def test_capacity_is_full_where_two_bookings_overlap_each_other() -> None:
    error = (
        given(
            registered(capacity=2),
            booked(B1, at(9), at(10)),
            booked(B2, at(10), at(11)),
            booked(B3, at(9, 30), at(10, 30)),
        )
        .when(book(B4, at(10, 15), at(10, 45)))
        .then_raises(SlotTakenError)
    )

    assert ids(error) == [B3, B2]


def test_capacity_is_free_where_the_overlaps_have_ended() -> None:
    given(
        registered(capacity=2),
        booked(B1, at(9), at(10)),
        booked(B2, at(9, 30), at(10, 30)),
    ).when(book(B3, at(10), at(11))).then(BookingCreated)


def test_a_cancelled_booking_frees_its_slot() -> None:
    [event] = (
        given(booked(B1, at(9), at(10)), cancelled(B1))
        .when(book(B2, at(9), at(10)))
        .then(BookingCreated)
    )

    assert event.booking_id == B2


def test_a_moved_booking_frees_its_old_slot_and_holds_its_new_one() -> None:
    scenario = given(booked(B1, at(9), at(10)), moved(B1, at(11), at(12)))

    scenario.when(book(B2, at(9), at(10))).then(BookingCreated)
    assert ids(scenario.when(book(B3, at(11, 30), at(13))).then_raises(SlotTakenError)) == [B1]


def test_pending_bookings_hold_time_too() -> None:
    error = (
        given(registered(requires_approval=True), booked(B1, at(9), at(10), status=PENDING))
        .when(book(B2, at(9), at(10)))
        .then_raises(SlotTakenError)
    )

    assert ids(error) == [B1]


# -- modify_booking -----------------------------------------------------------------------------


def test_moving_a_booking_records_the_new_times() -> None:
    outcome = given(booked(B1, at(9), at(10))).when(modify(B1, at(11), at(12)))

    [event] = outcome.then(BookingModified)
    assert (event.booking_id, event.start_time, event.end_time) == (B1, at(11), at(12))
    assert (event.details, event.actor, event.timestamp) == (None, "alice", NOW)
    assert outcome.resource.holds[str(B1)] == Hold(B1, at(11), at(12), CONFIRMED)


def test_moving_only_the_end_records_only_the_end() -> None:
    outcome = given(booked(B1, at(9), at(10))).when(modify(B1, end=at(11)))

    [event] = outcome.then(BookingModified)
    assert (event.start_time, event.end_time) == (None, at(11))
    assert outcome.resource.holds[str(B1)] == Hold(B1, at(9), at(11), CONFIRMED)


def test_repeating_one_time_records_only_the_one_that_changed() -> None:
    outcome = given(booked(B1, at(9), at(10))).when(modify(B1, at(9), at(9, 45)))

    [event] = outcome.then(BookingModified)
    assert (event.start_time, event.end_time) == (None, at(9, 45))


def test_changing_only_details_records_no_times() -> None:
    outcome = given(booked(B1, at(9), at(10))).when(modify(B1, details="projector"))

    [event] = outcome.then(BookingModified)
    assert (event.start_time, event.end_time, event.details) == (None, None, "projector")
    assert outcome.resource.holds[str(B1)] == Hold(B1, at(9), at(10), CONFIRMED)


@pytest.mark.parametrize(
    "command",
    [modify(B1), modify(B1, at(9)), modify(B1, at(9), at(10))],
    ids=["nothing", "same-start", "same-times"],
)
def test_a_modification_that_changes_nothing_records_nothing(command: Command) -> None:
    outcome = given(booked(B1, at(9), at(10))).when(command)

    outcome.then_nothing()
    assert outcome.resource.holds[str(B1)] == Hold(B1, at(9), at(10), CONFIRMED)
    assert outcome.resource.version == 2


def test_moving_onto_another_booking_is_refused() -> None:
    error = (
        given(booked(B1, at(9), at(10)), booked(B2, at(11), at(12)))
        .when(modify(B1, at(10, 30), at(11, 30)))
        .then_raises(SlotTakenError)
    )

    assert ids(error) == [B2]


def test_moving_partly_onto_its_own_old_slot_is_fine() -> None:
    outcome = given(booked(B1, at(9), at(10))).when(modify(B1, at(9, 30), at(10, 30)))

    [event] = outcome.then(BookingModified)
    assert (event.start_time, event.end_time) == (at(9, 30), at(10, 30))


def test_moving_next_to_another_booking_is_fine() -> None:
    given(booked(B1, at(9), at(10)), booked(B2, at(11), at(12))).when(
        modify(B1, at(10), at(11))
    ).then(BookingModified)


def test_moving_into_the_past_is_refused() -> None:
    error = (
        given(booked(B1, at(9), at(10)))
        .when(modify(B1, at(7), at(9)))
        .then_raises(InvalidCommandError)
    )

    assert error.field == "start_time"


def test_moving_to_start_exactly_now_is_fine() -> None:
    [event] = given(booked(B1, at(9), at(10))).when(modify(B1, NOW, at(9))).then(BookingModified)

    assert (event.start_time, event.end_time) == (NOW, at(9))


@pytest.mark.parametrize("start", [at(10), at(10, 30)], ids=["to-the-end", "past-the-end"])
def test_moving_the_start_onto_or_past_the_end_is_refused(start: datetime) -> None:
    error = (
        given(booked(B1, at(9), at(10)))
        .when(modify(B1, start=start))
        .then_raises(InvalidCommandError)
    )

    assert error.field == "end_time"


def test_a_running_booking_can_be_extended() -> None:
    outcome = given(booked(B1, at(7), at(9))).when(modify(B1, end=at(10)))

    [event] = outcome.then(BookingModified)
    assert (event.start_time, event.end_time) == (None, at(10))


def test_a_running_booking_cannot_be_cut_to_end_in_the_past() -> None:
    error = (
        given(booked(B1, at(7), at(9)))
        .when(modify(B1, end=at(7, 30)))
        .then_raises(InvalidCommandError)
    )

    assert error.field == "end_time"


def test_modifying_a_cancelled_booking_is_refused() -> None:
    error = (
        given(booked(B1, at(9), at(10)), cancelled(B1))
        .when(modify(B1, at(11), at(12)))
        .then_raises(BookingClosedError)
    )

    assert error.booking_id == B1


def test_modifying_an_ended_booking_is_refused() -> None:
    error = (
        given(booked(B1, at(9), at(10)))
        .when(modify(B1, details="late note", now=at(10)))
        .then_raises(BookingClosedError)
    )

    assert error.booking_id == B1


def test_modifying_an_unknown_booking_is_refused() -> None:
    given(booked(B1, at(9), at(10))).when(modify(B2, details="x")).then_raises(BookingClosedError)


# -- cancel_booking -----------------------------------------------------------------------------


def test_cancelling_records_the_reason_and_frees_the_slot() -> None:
    outcome = given(booked(B1, at(9), at(10)), booked(B2, at(11), at(12))).when(
        cancel(B1, reason="ill")
    )

    [event] = outcome.then(BookingCancelled)
    assert (event.booking_id, event.reason, event.actor, event.timestamp) == (
        B1,
        "ill",
        "alice",
        NOW,
    )
    assert set(outcome.resource.holds) == {str(B2)}


def test_cancelling_twice_is_refused() -> None:
    error = (
        given(booked(B1, at(9), at(10)), cancelled(B1))
        .when(cancel(B1))
        .then_raises(BookingClosedError)
    )

    assert error.booking_id == B1


def test_cancelling_an_ended_booking_is_refused() -> None:
    error = (
        given(booked(B1, at(9), at(10)))
        .when(cancel(B1, now=at(10, 1)))
        .then_raises(BookingClosedError)
    )

    assert error.booking_id == B1


def test_cancelling_a_running_booking_is_fine() -> None:
    [event] = given(booked(B1, at(7), at(9))).when(cancel(B1)).then(BookingCancelled)

    assert event.booking_id == B1


# -- settling: the state keeps open bookings only --------------------------------------------


def test_ended_bookings_stay_until_settle_completes_them() -> None:
    scenario = given(
        booked(B1, at(6), at(7)),  # ended an hour ago
        booked(B2, at(7), at(8)),  # ends exactly now: within the settle margin
        booked(B3, at(7, 30), at(8, 30)),  # still running
    )
    scenario.when(book(B4, at(9), at(10))).then(BookingCreated)
    assert set(scenario.resource.holds) == {str(B1), str(B2), str(B3), str(B4)}

    [event] = scenario.when(settle()).then(BookingCompleted)

    assert (event.booking_id, event.automatic, event.timestamp) == (B1, True, NOW)
    assert set(scenario.resource.holds) == {str(B2), str(B3), str(B4)}


def test_an_ended_booking_not_yet_settled_is_closed_all_the_same() -> None:
    given(booked(B1, at(7), at(8))).when(cancel(B1)).then_raises(BookingClosedError)


def test_a_refused_command_leaves_the_state_as_it_was() -> None:
    outcome = given(booked(B1, at(6), at(7)), booked(B2, at(9), at(10))).when(
        book(B3, at(9), at(10))
    )

    outcome.then_raises(SlotTakenError)
    assert set(outcome.resource.holds) == {str(B1), str(B2)}
    assert outcome.resource.version == 3


def test_a_transition_that_closes_a_booking_shrinks_the_state() -> None:
    scenario = given(booked(B1, at(9), at(10)), booked(B2, at(11), at(12)))

    scenario.when(cancel(B1)).then(BookingCancelled)

    assert set(scenario.resource.holds) == {str(B2)}


def snapshot_size(resource: Resource) -> int:
    return len(new_mapper(*TRANSCODINGS).to_stored_event(Resource.Snapshot.take(resource)).state)


def test_state_does_not_grow_with_history_when_settled() -> None:
    resource = Resource.register(R1, name="Room", now=at(0))
    sizes, snapshots = [], []
    for day in range(1000):
        now = at(8, day=day)
        settle(now)(resource)  # completes yesterday's booking
        booking = UUID(int=day + 1)
        book(booking, at(9, day=day), at(10, day=day), now=now)(resource)
        if day % 2:
            modify(booking, end=at(11, day=day), details="longer", now=now)(resource)
        sizes.append(len(resource.holds))
        if day in (9, 999):
            snapshots.append(snapshot_size(resource))

    events = resource.collect_events()
    assert len(events) == 1 + 1000 + 500 + 999
    assert sum(isinstance(e, BookingCompleted) for e in events) == 999
    assert max(sizes) == 1
    assert resource.holds == {
        str(UUID(int=1000)): Hold(UUID(int=1000), at(9, day=999), at(11, day=999), CONFIRMED)
    }
    early, late = snapshots
    assert late - early < 20  # a few more digits in the version and dates, no more holds


def test_unsettled_history_does_grow_the_state() -> None:
    # The counterpart of the test above: without settle nothing leaves the state.
    resource = Resource.register(R1, name="Room", now=at(0))
    for day in range(50):
        book(UUID(int=day + 1), at(9, day=day), at(10, day=day), now=at(8, day=day))(resource)

    assert len(resource.holds) == 50


# -- snapshots and replay -----------------------------------------------------------------------


def lived() -> tuple[Resource, list[Aggregate.Event]]:
    """A resource with some history, decided through its own commands, and its events."""
    resource = Resource.register(
        R1,
        name="Studio",
        timezone="Europe/Berlin",
        capacity=2,
        requires_approval=True,
        details="2nd floor",
        now=PAST,
    )
    kwargs: dict[str, Any] = {"client_id": C1, "details": None, "actor": "alice", "now": NOW}
    resource.create_booking(B1, start=at(9), end=at(10), **kwargs)
    resource.create_booking(B2, start=at(9, 30), end=at(11), **kwargs)
    resource.create_booking(B3, start=at(12), end=at(13), **kwargs)
    resource.modify_booking(B3, start=at(11), end=None, details="moved", actor=None, now=NOW)
    resource.create_booking(B4, start=at(14), end=at(15), **kwargs)
    resource.cancel_booking(B4, reason="not needed", actor=None, now=NOW)
    return resource, resource.collect_events()


def state(resource: Resource) -> dict[str, Any]:
    return {k: v for k, v in vars(resource).items() if k != "_pending_events"}


def decisions(resource: Resource) -> list[Any]:
    """What the resource decides on a few commands, each on a fresh copy."""
    results: list[Any] = []
    for command in [
        book(B5, at(9, 45), at(10, 15)),  # B1 and B2 both hold 9:45: full
        book(B5, at(10), at(12)),  # B2 then B3, never both: room
        modify(B3, at(10, 30), at(12)),  # onto B2 only: room
        cancel(B4),  # already cancelled
        cancel(B1, now=at(10)),  # already over by then
    ]:
        fresh = copy.deepcopy(resource)
        try:
            command(fresh)
        except Exception as error:
            results.append((type(error), vars(error)))
        else:
            results.append(fresh.collect_events())
    return results


def test_snapshot_round_trip_gives_an_equal_resource_that_decides_the_same() -> None:
    resource, _ = lived()
    mapper = new_mapper(*TRANSCODINGS)

    stored = mapper.to_stored_event(Resource.Snapshot.take(resource))
    restored = mapper.to_domain_event(stored).mutate(None)

    assert b'"_type_":"hold"' in stored.state
    assert isinstance(restored, Resource)
    assert state(restored) == state(resource)
    assert restored.holds == {
        str(B1): Hold(B1, at(9), at(10), PENDING),
        str(B2): Hold(B2, at(9, 30), at(11), PENDING),
        str(B3): Hold(B3, at(11), at(13), PENDING),
    }
    assert all(h.start.tzinfo is not None for h in restored.holds.values())
    assert decisions(restored) == decisions(resource)
    assert [type(d) for d in decisions(resource)] == [tuple, list, list, tuple, tuple]
    assert decisions(resource)[0][1]["conflicting_booking_ids"] == [B1, B2]


def test_replaying_stored_events_gives_the_same_resource() -> None:
    resource, events = lived()
    mapper = new_mapper(*TRANSCODINGS)

    replayed: Any = None
    for event in events:
        replayed = mapper.to_domain_event(mapper.to_stored_event(event)).mutate(replayed)

    assert isinstance(replayed, Resource)
    assert [type(e) for e in events] == [
        ResourceRegistered,
        BookingCreated,
        BookingCreated,
        BookingCreated,
        BookingModified,
        BookingCreated,
        BookingCancelled,
    ]
    assert state(replayed) == state(resource)
    assert replayed.version == 7
    assert decisions(replayed) == decisions(resource)


def test_a_replayed_settled_resource_equals_the_live_one() -> None:
    resource = Resource.register(R1, name="Room", requires_approval=True, now=PAST)
    for day in range(3):
        now = at(8, day=day)
        settle(now)(resource)
        booking = UUID(int=day + 1)
        book(booking, at(9, day=day), at(10, day=day), now=now)(resource)
        if day != 1:  # the second day's request is never decided: it expires
            resource.approve_booking(booking, actor="owner", now=now)
    events = resource.collect_events()
    mapper = new_mapper(*TRANSCODINGS)

    replayed: Any = None
    for event in events:
        replayed = mapper.to_domain_event(mapper.to_stored_event(event)).mutate(replayed)

    assert [type(e) for e in events if type(e) in (BookingCompleted, BookingExpired)] == [
        BookingCompleted,
        BookingExpired,
    ]
    assert state(replayed) == state(resource)
    assert list(replayed.holds) == [str(UUID(int=3))]
    later = at(9, 30, day=2)
    for r in (resource, replayed):
        with pytest.raises(SlotTakenError) as refused:
            book(B4, later, at(11, day=2), now=later)(r)
        assert ids(refused.value) == [UUID(int=3)]


def test_a_clock_running_behind_still_sees_what_a_clock_ahead_has_pruned() -> None:
    # A process whose clock runs five minutes ahead decides first (B1 has ended by its clock)...
    ahead = NOW + timedelta(minutes=5)
    outcome = given(booked(B1, at(8), at(8, 4))).when(book(B2, at(9), at(10), now=ahead))
    outcome.then(BookingCreated)

    # ...a process five minutes behind, working from that state, must still refuse B1's slot.
    with pytest.raises(SlotTakenError):
        book(B3, at(8, 1), at(8, 3))(outcome.resource)

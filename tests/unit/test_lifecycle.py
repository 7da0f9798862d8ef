"""A booking's life on the Resource aggregate: approval, rejection, expiry, completion, no-show,
moves between resources, and snapshots of all of it."""

import copy
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from test_resource import (
    B1,
    B2,
    B3,
    B4,
    NOW,
    PAST,
    R1,
    Command,
    Given,
    approved,
    at,
    book,
    booked,
    cancel,
    cancelled,
    closed,
    completed,
    expired,
    given,
    ids,
    modify,
    moved_out,
    no_show,
    registered,
    rejected,
    retired,
    settle,
    state,
)

from commands.errors import (
    BookingClosedError,
    IllegalTransitionError,
    ResourceClosedError,
    ResourceRetiredError,
    RuleViolationError,
    SlotTakenError,
)
from commands.policy import Closure, Rules
from commands.resource import (
    CONFIRMED,
    PENDING,
    SETTLE_MARGIN,
    TRANSCODINGS,
    Hold,
    Resource,
    Role,
)
from events.resource import (
    BookingApproved,
    BookingCompleted,
    BookingCreated,
    BookingExpired,
    BookingMovedIn,
    BookingMovedOut,
    BookingNoShow,
    BookingRejected,
    ResourceUpdated,
)
from events.store import new_mapper

R2 = UUID("00000000-0000-4000-8000-0000000000a2")
K1 = UUID("00000000-0000-4000-8000-0000000000d1")
SECOND = timedelta(seconds=1)

APPROVAL = registered(requires_approval=True)
WINDOW = registered(requires_approval=True, rules={"approval_window_minutes": 60})
"""Requests made at NOW (08:00) must be decided before 09:00."""


# -- when: the owner's decisions and moves ------------------------------------------------------


def approve(booking_id: UUID, *, now: datetime = NOW) -> Command:
    return lambda r: r.approve_booking(booking_id, actor="owner", now=now)


def reject(booking_id: UUID, *, reason: str | None = None, now: datetime = NOW) -> Command:
    return lambda r: r.reject_booking(booking_id, reason=reason, actor="owner", now=now)


def complete(booking_id: UUID, *, now: datetime) -> Command:
    return lambda r: r.complete_booking(booking_id, actor="owner", now=now)


def mark_no_show(booking_id: UUID, *, now: datetime) -> Command:
    return lambda r: r.mark_no_show(booking_id, actor="owner", now=now)


def target(*facts: Any, requires_approval: bool = False, **rules: Any) -> Given:
    """A second resource, R2, to move bookings to."""
    registration = registered(
        resource_id=R2, requires_approval=requires_approval, rules=rules, name="Room 2"
    )
    return given(registration, *facts)


def move_out(
    booking_id: UUID, to: Resource, *, now: datetime = NOW, by: Role = "client"
) -> Command:
    return lambda r: r.move_out(booking_id, to, actor="alice", now=now, by=by)


def move_in(
    booking_id: UUID,
    start: datetime,
    end: datetime,
    *,
    now: datetime = NOW,
    due: datetime | None = None,
) -> Command:
    return lambda r: r.move_in(
        booking_id,
        source=R1,
        start=start,
        end=end,
        details="moved",
        actor="alice",
        now=now,
        due=due,
    )


# -- requests -----------------------------------------------------------------------------------


def test_a_request_waits_for_approval_until_its_deadline() -> None:
    outcome = given(WINDOW).when(book(B1, at(12), at(13)))

    [event] = outcome.then(BookingCreated)
    assert (event.status, event.approval_deadline) == (PENDING, at(9))
    hold = outcome.resource.holds[str(B1)]
    assert (hold, hold.decide_by) == (Hold(B1, at(12), at(13), PENDING, at(9)), at(9))


def test_without_an_approval_window_a_request_waits_until_its_start() -> None:
    outcome = given(APPROVAL).when(book(B1, at(12), at(13)))

    [event] = outcome.then(BookingCreated)
    assert (event.status, event.approval_deadline) == (PENDING, None)
    assert outcome.resource.holds[str(B1)].decide_by == at(12)


def test_a_request_starting_before_its_approval_deadline_must_be_decided_by_its_start() -> None:
    long_window = registered(requires_approval=True, rules={"approval_window_minutes": 600})

    outcome = given(long_window).when(book(B1, at(12), at(13)))

    assert outcome.then(BookingCreated)[0].approval_deadline == at(18)
    assert outcome.resource.holds[str(B1)].decide_by == at(12)


# -- approve and reject -------------------------------------------------------------------------


def test_approving_confirms_a_request() -> None:
    outcome = given(APPROVAL, booked(B1, at(12), at(13), PENDING)).when(approve(B1))

    [event] = outcome.then(BookingApproved)
    assert (event.booking_id, event.actor, event.timestamp) == (B1, "owner", NOW)
    assert outcome.resource.holds == {str(B1): Hold(B1, at(12), at(13), CONFIRMED)}


def test_approving_checks_the_slot_again_as_it_stands_now() -> None:
    scenario = given(registered(requires_approval=True, rules={"pending_holds_slot": False}))
    scenario.when(book(B1, at(9), at(10))).then(BookingCreated)
    scenario.when(book(B2, at(9, 30), at(10, 30))).then(BookingCreated)  # requests overlap
    scenario.when(approve(B1)).then(BookingApproved)

    error = scenario.when(approve(B2)).then_raises(SlotTakenError)

    assert ids(error) == [B1]
    assert scenario.resource.holds[str(B2)].status == PENDING


def test_overlapping_requests_left_by_a_change_of_setting_can_still_be_approved_once() -> None:
    # Requests overlapped while pending ones did not hold their slot; then they started to.
    scenario = given(registered(requires_approval=True, rules={"pending_holds_slot": False}))
    scenario.when(book(B1, at(9), at(10))).then(BookingCreated)
    scenario.when(book(B2, at(9, 30), at(10, 30))).then(BookingCreated)
    update = {"pending_holds_slot": True}
    scenario.when(lambda r: r.update(update, actor=None, now=NOW)).then(ResourceUpdated)

    scenario.when(approve(B2)).then(BookingApproved)
    error = scenario.when(approve(B1)).then_raises(SlotTakenError)

    assert ids(error) == [B2]


def test_approving_checks_closures_added_since_the_request() -> None:
    outcome = given(
        APPROVAL, booked(B1, at(12), at(13), PENDING), closed(K1, at(12, 30), at(14))
    ).when(approve(B1))

    assert outcome.then_raises(ResourceClosedError).closure_ids == [K1]


def test_rejecting_records_the_reason_and_frees_the_slot() -> None:
    scenario = given(APPROVAL, booked(B1, at(12), at(13), PENDING))

    [event] = scenario.when(reject(B1, reason="maintenance")).then(BookingRejected)

    assert (event.booking_id, event.reason, event.actor) == (B1, "maintenance", "owner")
    assert scenario.resource.holds == {}
    scenario.when(book(B2, at(12), at(13))).then(BookingCreated)


@pytest.mark.parametrize("command", [approve(B1), reject(B1)], ids=["approve", "reject"])
def test_a_confirmed_booking_cannot_be_approved_or_rejected(command: Command) -> None:
    error = given(booked(B1, at(12), at(13))).when(command).then_raises(IllegalTransitionError)

    assert (error.booking_id, error.status) == (B1, CONFIRMED)


# -- the approval deadline ----------------------------------------------------------------------


@pytest.mark.parametrize("command", [approve, reject], ids=["approve", "reject"])
@pytest.mark.parametrize(
    ("deadline", "start"),
    [(at(9), at(12)), (None, at(10))],
    ids=["approval-window", "start"],
)
def test_a_request_can_be_decided_until_just_before_it_must_be(
    command: Any, deadline: datetime | None, start: datetime
) -> None:
    facts = (APPROVAL, booked(B1, start, start + timedelta(hours=1), PENDING, deadline=deadline))
    decide_by = deadline or start

    given(*facts).when(command(B1, now=decide_by - SECOND)).then(
        BookingApproved if command is approve else BookingRejected
    )
    for late in (decide_by, decide_by + timedelta(minutes=30)):
        error = given(*facts).when(command(B1, now=late)).then_raises(IllegalTransitionError)
        assert (error.booking_id, error.status) == (B1, PENDING)


# -- settle -------------------------------------------------------------------------------------


def test_settle_expires_a_request_not_decided_by_its_deadline() -> None:
    scenario = given(WINDOW, booked(B1, at(12), at(13), PENDING, deadline=at(9)))

    scenario.when(settle(at(9) - SECOND)).then_nothing()
    [event] = scenario.when(settle(at(9))).then(BookingExpired)

    assert (event.booking_id, event.actor, event.timestamp) == (B1, None, at(9))
    assert scenario.resource.holds == {}


def test_settle_expires_a_request_not_decided_by_its_start() -> None:
    scenario = given(APPROVAL, booked(B1, at(10), at(11), PENDING))

    scenario.when(settle(at(10) - SECOND)).then_nothing()
    scenario.when(settle(at(10))).then(BookingExpired)


def test_settle_completes_a_confirmed_booking_once_it_has_ended_by_the_margin() -> None:
    scenario = given(booked(B1, at(9), at(10)))
    done = at(10) + SETTLE_MARGIN

    scenario.when(settle(at(10))).then_nothing()
    scenario.when(settle(done - SECOND)).then_nothing()
    [event] = scenario.when(settle(done)).then(BookingCompleted)

    assert (event.booking_id, event.automatic, event.actor, event.timestamp) == (
        B1,
        True,
        None,
        done,
    )
    assert scenario.resource.holds == {}


def test_settle_closes_everything_due_in_order_of_end_and_keeps_the_rest() -> None:
    scenario = given(
        APPROVAL,
        booked(B1, at(9), at(10)),
        booked(B2, at(12), at(13), PENDING, deadline=at(9)),
        booked(B3, at(10), at(11)),  # still running at 10:30
        booked(B4, at(8), at(9, 30)),
    )

    events = scenario.when(settle(at(10, 30))).then(
        BookingCompleted, BookingCompleted, BookingExpired
    )

    assert [e.booking_id for e in events] == [B4, B1, B2]
    assert set(scenario.resource.holds) == {str(B3)}


def test_settling_twice_records_nothing_the_second_time() -> None:
    scenario = given(booked(B1, at(9), at(10)), booked(B2, at(10), at(11), PENDING))

    scenario.when(settle(at(11))).then(BookingCompleted, BookingExpired)
    scenario.when(settle(at(11))).then_nothing()


def test_settling_does_not_free_the_buffer_after_a_booking_that_just_ended() -> None:
    # B1 ended at 08:00 and needs 30 minutes of clean-up after it: 08:10 is not free, whether
    # or not settle has run; settle completes B1 only once its buffer is behind.
    rules = {"buffer_before_minutes": 5, "buffer_after_minutes": 30}
    scenario = given(registered(rules=rules), booked(B1, at(7), at(8)))
    scenario.when(book(B2, at(8, 10), at(9), now=at(8))).then_raises(SlotTakenError)

    scenario.when(settle(at(8, 10))).then_nothing()
    scenario.when(book(B2, at(8, 10), at(9), now=at(8, 10))).then_raises(SlotTakenError)

    done = at(8, 35) + SETTLE_MARGIN  # the end, both buffers and the margin
    scenario.when(settle(done - SECOND)).then_nothing()
    scenario.when(settle(done)).then(BookingCompleted)


# -- the owner's complete and no-show -----------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "event_type"),
    [(complete, BookingCompleted), (mark_no_show, BookingNoShow)],
    ids=["complete", "no-show"],
)
def test_the_owner_closes_a_confirmed_booking_only_once_it_has_started(
    command: Any, event_type: type
) -> None:
    facts = booked(B1, at(12), at(13))

    error = given(facts).when(command(B1, now=at(12) - SECOND)).then_raises(IllegalTransitionError)
    assert (error.booking_id, error.status) == (B1, CONFIRMED)
    for now in (at(12), at(13, 30)):  # from its start, and after its end until settled
        outcome = given(facts).when(command(B1, now=now))
        [event] = outcome.then(event_type)
        assert (event.booking_id, event.actor, event.timestamp) == (B1, "owner", now)
        assert outcome.resource.holds == {}


def test_the_owner_completing_a_booking_is_not_automatic() -> None:
    [event] = given(booked(B1, at(7), at(9))).when(complete(B1, now=NOW)).then(BookingCompleted)

    assert event.automatic is False


@pytest.mark.parametrize("command", [complete, mark_no_show], ids=["complete", "no-show"])
def test_a_request_cannot_be_completed_or_marked_no_show(command: Any) -> None:
    outcome = given(APPROVAL, booked(B1, at(7), at(9), PENDING, deadline=at(8, 30)))

    error = outcome.when(command(B1, now=NOW)).then_raises(IllegalTransitionError)

    assert (error.booking_id, error.status) == (B1, PENDING)


def test_a_no_show_frees_the_rest_of_its_slot() -> None:
    scenario = given(booked(B1, at(12), at(13)))
    scenario.when(mark_no_show(B1, now=at(12, 15))).then(BookingNoShow)

    scenario.when(book(B2, at(12, 30), at(13), now=at(12, 15))).then(BookingCreated)


# -- final states -------------------------------------------------------------------------------

FINAL = {
    "cancelled": (CONFIRMED, cancelled(B1)),
    "rejected": (PENDING, rejected(B1)),
    "expired": (PENDING, expired(B1)),
    "completed": (CONFIRMED, completed(B1)),
    "no-show": (CONFIRMED, no_show(B1)),
    "moved-out": (CONFIRMED, moved_out(B1, R2)),
}
ANY_CHANGE = {
    "approve": approve(B1),
    "reject": reject(B1),
    "modify": modify(B1, details="x"),
    "cancel": cancel(B1),
    "owner-cancel": cancel(B1, by="owner"),
    "complete": complete(B1, now=at(12, 30)),
    "no-show": mark_no_show(B1, now=at(12, 30)),
    "move-out": move_out(B1, target().resource),
}


@pytest.mark.parametrize(("status", "final"), FINAL.values(), ids=FINAL.keys())
@pytest.mark.parametrize("command", ANY_CHANGE.values(), ids=ANY_CHANGE.keys())
def test_a_booking_in_a_final_state_cannot_change(
    status: str, final: Any, command: Command
) -> None:
    scenario = given(APPROVAL, booked(B1, at(12), at(13), status), final)

    error = scenario.when(command).then_raises(BookingClosedError)

    assert error.booking_id == B1
    assert scenario.resource.holds == {}


# -- pending_holds_slot -------------------------------------------------------------------------


@pytest.mark.parametrize("pending_holds_slot", [True, False])
def test_whether_a_request_holds_its_slot_against_others(pending_holds_slot: bool) -> None:
    rules = {"pending_holds_slot": pending_holds_slot}
    scenario = given(
        registered(requires_approval=True, rules=rules), booked(B1, at(12), at(13), PENDING)
    )

    outcome = scenario.when(book(B2, at(12, 30), at(13, 30)))

    if pending_holds_slot:
        assert ids(outcome.then_raises(SlotTakenError)) == [B1]
    else:
        assert outcome.then(BookingCreated)[0].status == PENDING
        assert set(scenario.resource.holds) == {str(B1), str(B2)}


def test_an_approved_request_holds_its_slot_even_where_requests_do_not() -> None:
    rules = {"pending_holds_slot": False}
    error = (
        given(
            registered(requires_approval=True, rules=rules),
            booked(B1, at(12), at(13), PENDING),
            approved(B1),
        )
        .when(book(B2, at(12, 30), at(13, 30)))
        .then_raises(SlotTakenError)
    )

    assert ids(error) == [B1]


# -- moving a booking to another resource -------------------------------------------------------


def test_a_moved_booking_leaves_the_source_and_awaits_approval_on_the_target() -> None:
    source = given(booked(B1, at(12), at(13)))
    to = target(requires_approval=True, approval_window_minutes=30)

    [out] = source.when(move_out(B1, to.resource)).then(BookingMovedOut)
    [arrived] = to.when(move_in(B1, at(14), at(15))).then(BookingMovedIn)

    assert (out.booking_id, out.to_resource_id, out.actor) == (B1, R2, "alice")
    assert source.resource.holds == {}
    assert (arrived.booking_id, arrived.from_resource_id, arrived.details) == (B1, R1, "moved")
    assert (arrived.status, arrived.approval_deadline) == (PENDING, at(8, 30))
    assert to.resource.holds == {str(B1): Hold(B1, at(14), at(15), PENDING, at(8, 30))}


def test_move_out_hands_over_the_hold_as_it_was() -> None:
    source = given(APPROVAL, booked(B1, at(12), at(13), PENDING, deadline=at(9))).resource

    hold = source.move_out(B1, target().resource, actor=None, now=NOW, by="client")

    assert hold == Hold(B1, at(12), at(13), PENDING, at(9))


def test_a_request_moved_to_a_resource_without_approval_is_confirmed() -> None:
    to = target()

    [arrived] = to.when(move_in(B1, at(12), at(13))).then(BookingMovedIn)

    assert (arrived.status, arrived.approval_deadline) == (CONFIRMED, None)
    assert to.resource.holds == {str(B1): Hold(B1, at(12), at(13), CONFIRMED)}


@pytest.mark.parametrize(
    ("due", "window", "expected"),
    [
        (at(9), 120, at(9)),  # the request's own deadline comes first
        (at(11), 60, NOW + timedelta(minutes=60)),  # the target's window ends sooner
        (at(9), None, at(9)),  # the target sets no window: the old deadline stands
    ],
)
def test_a_request_moved_between_approval_resources_keeps_its_earlier_deadline(
    due: datetime, window: int | None, expected: datetime
) -> None:
    to = target(requires_approval=True, approval_window_minutes=window)

    [arrived] = to.when(move_in(B1, at(14), at(15), due=due)).then(BookingMovedIn)

    assert (arrived.status, arrived.approval_deadline) == (PENDING, expected)


def test_a_move_into_a_taken_slot_is_refused_by_the_target() -> None:
    error = (
        target(booked(B2, at(12), at(13)))
        .when(move_in(B1, at(12, 30), at(13, 30)))
        .then_raises(SlotTakenError)
    )

    assert (error.resource_id, ids(error)) == (R2, [B2])


def test_a_move_must_meet_the_target_rules() -> None:
    to = target(opening_hours={"monday": [{"start": "09:00", "end": "12:00"}]})

    error = to.when(move_in(B1, at(11), at(13))).then_raises(RuleViolationError)

    assert error.rule == "opening-hours"


def test_a_move_to_a_retired_resource_is_refused() -> None:
    error = target(retired()).when(move_in(B1, at(12), at(13))).then_raises(ResourceRetiredError)

    assert error.resource_id == R2


def test_a_client_moves_a_booking_only_with_the_change_notice() -> None:
    facts = (registered(rules={"change_notice_minutes": 300}), booked(B1, at(12), at(13)))

    error = given(*facts).when(move_out(B1, target().resource)).then_raises(RuleViolationError)
    assert error.rule == "change-notice"
    given(*facts).when(move_out(B1, target().resource, by="owner")).then(BookingMovedOut)


# -- snapshots ----------------------------------------------------------------------------------


def lived() -> Resource:
    """A resource with rules, closures and requests with deadlines, decided by its commands."""
    rules = {
        "approval_window_minutes": 120,
        "buffer_after_minutes": 15,
        "opening_hours": {"monday": [{"start": "08:00", "end": "18:00"}]},
        "date_exceptions": {"2030-06-04": []},
    }
    resource = Resource.register(R1, name="Studio", requires_approval=True, rules=rules, now=PAST)
    for command in [
        lambda r: r.add_closure(K1, start=at(15), end=at(16), reason=None, actor=None, now=NOW),
        book(B1, at(9), at(10)),
        book(B2, at(11), at(12)),
        approve(B2),
        book(B3, at(13), at(14)),
        cancel(B3),
        lambda r: r.update({"capacity": 2, "min_notice_minutes": 30}, actor=None, now=NOW),
    ]:
        command(resource)
    resource.collect_events()
    return resource


def decisions(resource: Resource) -> list[Any]:
    """What the resource decides on a few commands, each on a fresh copy."""
    results: list[Any] = []
    for command in [
        book(B4, at(9, 30), at(11, 30)),  # next to B1 and B2: capacity 2, room
        book(B4, at(14, 30), at(15, 30)),  # into the closure
        approve(B1, now=at(8, 30)),
        approve(B1, now=at(9, 30)),  # after it had to be decided (by its start)
        settle(at(12, 30)),  # B2 ended at 12:00, its buffer at 12:15
    ]:
        fresh = copy.deepcopy(resource)
        try:
            command(fresh)
        except Exception as error:
            results.append((type(error), vars(error)))
        else:
            results.append([(type(e), vars(e)) for e in fresh.collect_events()])
    return results


def test_snapshot_round_trip_keeps_rules_closures_and_deadlines() -> None:
    resource = lived()
    mapper = new_mapper(*TRANSCODINGS)

    stored = mapper.to_stored_event(Resource.Snapshot.take(resource))
    restored = mapper.to_domain_event(stored).mutate(None)

    assert b'"_type_":"rules"' in stored.state
    assert b'"_type_":"closure"' in stored.state
    assert isinstance(restored, Resource)
    assert state(restored) == state(resource)
    assert restored.rules == Rules.of(
        {
            "approval_window_minutes": 120,
            "buffer_after_minutes": 15,
            "min_notice_minutes": 30,
            "opening_hours": {"monday": [{"start": "08:00", "end": "18:00"}]},
            "date_exceptions": {"2030-06-04": []},
        }
    )
    assert restored.capacity == 2
    assert restored.closures == {str(K1): Closure(K1, at(15), at(16))}
    assert restored.holds == {
        str(B1): Hold(B1, at(9), at(10), PENDING, at(10)),
        str(B2): Hold(B2, at(11), at(12), CONFIRMED),
    }
    assert decisions(restored) == decisions(resource)
    assert [d[0] if isinstance(d, tuple) else [e[0] for e in d] for d in decisions(resource)] == [
        [BookingCreated],
        ResourceClosedError,
        [BookingApproved],
        IllegalTransitionError,
        [BookingExpired, BookingCompleted],
    ]

"""End to end over HTTP: the owner's decisions on bookings, moves between resources, retiring
resources and closing them for a while."""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from e2e.helpers import (
    Client,
    assert_invalid,
    assert_problem,
    availability_of,
    book,
    booking_body,
    bookings_of,
    create_resource,
    day,
    history_of,
    hours,
    iso,
    iso_plus_two,
    minutes,
    new_resource,
    slots,
    walk,
)

OWNER = {"X-Actor-Role": "owner"}
ACTIONS = ("approve", "reject", "complete", "no-show")


async def decide(
    client: Client,
    booking_id: str,
    action: str,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """POST /bookings/{id}/<action>, with `?reason=` when given."""
    params = {"reason": reason} if reason is not None else None
    return await client.post(f"/bookings/{booking_id}/{action}", params=params, headers=headers)


async def fetch(client: Client, booking_id: str) -> dict[str, Any]:
    response = await client.get(f"/bookings/{booking_id}")
    assert response.status_code == 200, response.text
    booking: dict[str, Any] = response.json()
    return booking


async def started_booking(client: Client, clock, resource_id: str) -> dict[str, Any]:
    """A booking of an hour that started a minute ago (the clock moves two minutes)."""
    start = clock.now + minutes(1)
    booking = await book(client, resource_id, start, start + hours(1))
    clock.advance(minutes(2))
    return booking


# --- approve and reject ------------------------------------------------------------------------


async def test_approve_confirms_a_pending_booking_and_records_who_and_why(
    client: Client, clock
) -> None:
    resource_id = await new_resource(client, requires_approval=True)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))
    assert booking["status"] == "pending"
    clock.advance(timedelta(seconds=20))

    response = await decide(
        client, booking["booking_id"], "approve", "known client", {"X-Actor": "owner-ann"}
    )

    assert response.status_code == 200, response.text
    approved = booking | {"status": "confirmed", "updated_at": iso(clock.now)}
    assert response.json() == approved
    assert await fetch(client, booking["booking_id"]) == approved
    last = (await history_of(client, booking["booking_id"]))[-1]
    assert (last["type"], last["actor"], last["occurred_at"]) == (
        "booking.approved",
        "owner-ann",
        iso(clock.now),
    )
    assert last["data"] == {"reason": "known client"}
    busy = (await availability_of(client, resource_id, d + hours(9), d + hours(12)))["busy"]
    assert [(b["booking_id"], b["status"]) for b in busy] == [(booking["booking_id"], "confirmed")]


async def test_reject_turns_a_pending_booking_down_and_frees_its_slot(
    client: Client, clock
) -> None:
    resource_id = await new_resource(client, requires_approval=True)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))
    clock.advance(timedelta(seconds=20))

    response = await decide(
        client, booking["booking_id"], "reject", "fully booked", {"X-Actor": "o"}
    )

    assert response.status_code == 200, response.text
    rejected = booking | {"status": "rejected", "updated_at": iso(clock.now)}
    assert response.json() == rejected
    assert await fetch(client, booking["booking_id"]) == rejected
    last = (await history_of(client, booking["booking_id"]))[-1]
    assert (last["type"], last["actor"], last["data"]) == (
        "booking.rejected",
        "o",
        {"reason": "fully booked"},
    )
    availability = await availability_of(client, resource_id, d + hours(10), d + hours(11))
    assert availability["busy"] == []
    again = await book(client, resource_id, d + hours(10), d + hours(11))
    assert again["status"] == "pending"


@pytest.mark.parametrize(
    ("action", "status", "event"),
    [
        pytest.param("approve", "confirmed", "booking.approved", id="approve"),
        pytest.param("reject", "rejected", "booking.rejected", id="reject"),
    ],
)
async def test_a_decision_without_reason_or_actor_records_neither(
    client: Client, clock, action: str, status: str, event: str
) -> None:
    resource_id = await new_resource(client, requires_approval=True)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await decide(client, booking["booking_id"], action)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == status
    last = (await history_of(client, booking["booking_id"]))[-1]
    assert (last["type"], last["actor"], last["data"]) == (event, None, {})


async def test_approval_checks_the_slot_again(client: Client, clock) -> None:
    # given two overlapping requests, which the resource lets coexist while pending
    resource_id = await new_resource(client, requires_approval=True, pending_holds_slot=False)
    d = day(clock.now)
    first = await book(client, resource_id, d + hours(10), d + hours(11))
    second = await book(client, resource_id, d + hours(10.5), d + hours(11.5))
    assert (first["status"], second["status"]) == ("pending", "pending")
    assert (await decide(client, first["booking_id"], "approve")).status_code == 200

    # when the second is approved too
    response = await decide(client, second["booking_id"], "approve")

    # then it collides with the first, now confirmed, and stays pending
    problem = assert_problem(response, 409, "slot-taken")
    assert problem["conflicting_booking_ids"] == [first["booking_id"]]
    assert await fetch(client, second["booking_id"]) == second
    assert [e["type"] for e in await history_of(client, second["booking_id"])] == [
        "booking.created"
    ]
    # it can still be turned down
    rejected = await decide(client, second["booking_id"], "reject")
    assert rejected.json()["status"] == "rejected"


async def test_approval_is_refused_over_a_closure_added_since_the_request(
    client: Client, clock
) -> None:
    resource_id = await new_resource(client, requires_approval=True)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))
    closure = await client.post(
        f"/resources/{resource_id}/closures",
        json={"start_time": iso(d + hours(10.5)), "end_time": iso(d + hours(12))},
    )
    assert closure.status_code == 201, closure.text

    response = await decide(client, booking["booking_id"], "approve")

    problem = assert_problem(response, 409, "resource-closed")
    assert problem["closure_ids"] == [closure.json()["closure_id"]]
    assert (await fetch(client, booking["booking_id"]))["status"] == "pending"


async def test_approval_window_closes_after_its_minutes(client: Client, clock) -> None:
    resource_id = await new_resource(
        client, requires_approval=True, approval_window_minutes=30, capacity=2
    )
    d = day(clock.now)
    in_time = await book(client, resource_id, d + hours(10), d + hours(11))
    too_late = await book(client, resource_id, d + hours(10), d + hours(11))

    # one second before the window closes, the owner may still decide
    clock.advance(minutes(30) - timedelta(seconds=1))
    approved = await decide(client, in_time["booking_id"], "approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "confirmed"

    # at the end of the window, not any more: neither approve nor reject
    clock.advance(timedelta(seconds=1))
    for action in ("approve", "reject"):
        response = await decide(client, too_late["booking_id"], action)
        problem = assert_problem(response, 409, "illegal-transition")
        assert problem["booking_status"] == "pending"
    assert len(await history_of(client, too_late["booking_id"])) == 1


async def test_after_its_deadline_a_request_can_no_longer_change_or_be_cancelled(
    client: Client, clock
) -> None:
    resource_id = await new_resource(client, requires_approval=True, approval_window_minutes=10)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))
    clock.advance(minutes(10))
    path = f"/bookings/{booking['booking_id']}"

    modified = await client.put(path, json={"details": "late"}, headers=OWNER)
    cancelled = await client.delete(path, headers=OWNER)

    assert_problem(modified, 409, "booking-closed")
    assert_problem(cancelled, 409, "booking-closed")
    assert await fetch(client, booking["booking_id"]) == booking


async def test_a_request_past_its_deadline_no_longer_holds_its_slot(client: Client, clock) -> None:
    """Nobody can approve, reject or cancel it any more, so it must not keep others out (the
    background settling that records `expired` may lag, or be switched off as here)."""
    resource_id = await new_resource(client, requires_approval=True, approval_window_minutes=10)
    d = day(clock.now)
    stale = await book(client, resource_id, d + hours(10), d + hours(11))
    clock.advance(minutes(10))
    assert_problem(await decide(client, stale["booking_id"], "approve"), 409, "illegal-transition")

    response = await client.post(
        "/bookings", json=booking_body(resource_id, d + hours(10), d + hours(11))
    )

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"


async def test_a_request_not_decided_before_it_starts_can_no_longer_be_approved(
    client: Client, clock
) -> None:
    resource_id = await new_resource(client, requires_approval=True)
    booking = await started_booking(client, clock, resource_id)

    response = await decide(client, booking["booking_id"], "approve")

    problem = assert_problem(response, 409, "illegal-transition")
    assert problem["booking_status"] == "pending"
    assert booking["booking_id"] in problem["detail"]


# --- complete and no-show ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status", "event", "data"),
    [
        pytest.param(
            "complete",
            "completed",
            "booking.completed",
            {"automatic": False, "reason": "went well"},
            id="complete",
        ),
        pytest.param(
            "no-show", "no_show", "booking.no_show", {"reason": "went well"}, id="no-show"
        ),
    ],
)
async def test_once_started_a_booking_can_be_completed_or_marked_no_show(
    client: Client, clock, *, action: str, status: str, event: str, data: dict[str, Any]
) -> None:
    resource_id = await new_resource(client)
    booking = await started_booking(client, clock, resource_id)

    response = await decide(client, booking["booking_id"], action, "went well", {"X-Actor": "ann"})

    assert response.status_code == 200, response.text
    closed = booking | {"status": status, "updated_at": iso(clock.now)}
    assert response.json() == closed
    assert await fetch(client, booking["booking_id"]) == closed
    last = (await history_of(client, booking["booking_id"]))[-1]
    assert (last["type"], last["actor"], last["data"]) == (event, "ann", data)
    listed = await client.get("/bookings", params={"resource_id": resource_id, "status": status})
    assert [b["booking_id"] for b in listed.json()["items"]] == [booking["booking_id"]]


@pytest.mark.parametrize("action", ["complete", "no-show"])
async def test_closing_a_booking_early_frees_the_rest_of_its_time(
    client: Client, clock, action: str
) -> None:
    resource_id = await new_resource(client)
    booking = await started_booking(client, clock, resource_id)
    rest = (clock.now + minutes(5), clock.now + minutes(30))
    taken = await client.post("/bookings", json=booking_body(resource_id, *rest))
    assert_problem(taken, 409, "slot-taken")

    assert (await decide(client, booking["booking_id"], action)).status_code == 200

    assert (await availability_of(client, resource_id, *rest))["busy"] == []
    await book(client, resource_id, *rest)


async def test_a_booking_that_has_ended_can_still_be_completed(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    start = clock.now + minutes(1)
    booking = await book(client, resource_id, start, start + minutes(5))
    clock.advance(minutes(10))

    response = await decide(client, booking["booking_id"], "complete")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"


@pytest.mark.parametrize("action", ["complete", "no-show"])
async def test_complete_and_no_show_wait_for_the_start(client: Client, clock, action: str) -> None:
    resource_id = await new_resource(client)
    start = clock.now + minutes(1)
    booking = await book(client, resource_id, start, start + hours(1))

    response = await decide(client, booking["booking_id"], action)

    problem = assert_problem(response, 409, "illegal-transition")
    assert problem["booking_status"] == "confirmed"
    assert await fetch(client, booking["booking_id"]) == booking
    # exactly at the start it is allowed
    clock.advance(start - clock.now)
    assert (await decide(client, booking["booking_id"], action)).status_code == 200


@pytest.mark.parametrize("action", ["approve", "reject"])
async def test_a_confirmed_booking_cannot_be_approved_or_rejected(
    client: Client, clock, action: str
) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await decide(client, booking["booking_id"], action)

    problem = assert_problem(response, 409, "illegal-transition")
    assert problem["booking_status"] == "confirmed"
    assert await fetch(client, booking["booking_id"]) == booking
    assert len(await history_of(client, booking["booking_id"])) == 1


@pytest.mark.parametrize("action", ["complete", "no-show"])
async def test_a_pending_booking_cannot_be_completed_or_marked_no_show(
    client: Client, clock, action: str
) -> None:
    resource_id = await new_resource(client, requires_approval=True)
    booking = await started_booking(client, clock, resource_id)

    response = await decide(client, booking["booking_id"], action)

    problem = assert_problem(response, 409, "illegal-transition")
    assert problem["booking_status"] == "pending"
    assert await fetch(client, booking["booking_id"]) == booking


async def _cancelled(client: Client, clock) -> str:
    d = day(clock.now)
    booking = await book(client, await new_resource(client), d + hours(10), d + hours(11))
    assert (await client.delete(f"/bookings/{booking['booking_id']}")).status_code == 200
    return str(booking["booking_id"])


async def _rejected(client: Client, clock) -> str:
    d = day(clock.now)
    resource_id = await new_resource(client, requires_approval=True)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))
    assert (await decide(client, booking["booking_id"], "reject")).status_code == 200
    return str(booking["booking_id"])


async def _completed(client: Client, clock) -> str:
    booking = await started_booking(client, clock, await new_resource(client))
    assert (await decide(client, booking["booking_id"], "complete")).status_code == 200
    return str(booking["booking_id"])


async def _no_show(client: Client, clock) -> str:
    booking = await started_booking(client, clock, await new_resource(client))
    assert (await decide(client, booking["booking_id"], "no-show")).status_code == 200
    return str(booking["booking_id"])


FINAL: dict[str, Callable[[Client, Any], Awaitable[str]]] = {
    "cancelled": _cancelled,
    "rejected": _rejected,
    "completed": _completed,
    "no_show": _no_show,
}


async def _request(client: Client, booking_id: str, what: str) -> Any:
    if what == "cancel":
        return await client.delete(f"/bookings/{booking_id}", headers=OWNER)
    if what == "modify":
        return await client.put(f"/bookings/{booking_id}", json={"details": "x"}, headers=OWNER)
    return await decide(client, booking_id, what)


@pytest.mark.parametrize("what", [*ACTIONS, "cancel", "modify"])
@pytest.mark.parametrize("state", list(FINAL))
async def test_a_final_booking_refuses_every_change(
    client: Client, clock, state: str, what: str
) -> None:
    booking_id = await FINAL[state](client, clock)
    before = await fetch(client, booking_id)
    assert before["status"] == state
    events = len(await history_of(client, booking_id))

    response = await _request(client, booking_id, what)

    problem = assert_problem(response, 409, "booking-closed")
    assert booking_id in problem["detail"]
    assert await fetch(client, booking_id) == before
    assert len(await history_of(client, booking_id)) == events


@pytest.mark.parametrize("action", ACTIONS)
async def test_a_decision_on_an_unknown_booking_is_404(client: Client, action: str) -> None:
    unknown = str(uuid4())

    response = await decide(client, unknown, action)

    assert unknown in assert_problem(response, 404, "not-found")["detail"]


@pytest.mark.parametrize("action", ACTIONS)
async def test_a_decision_on_a_non_uuid_is_422(client: Client, action: str) -> None:
    response = await decide(client, "not-a-uuid", action)

    assert_invalid(response, "booking_id")


@pytest.mark.parametrize(
    ("params", "headers", "field"),
    [
        pytest.param({"reason": "x" * 1001}, {}, "reason", id="reason-too-long"),
        pytest.param({"reason": "a\u0000b"}, {}, "reason", id="reason-nul"),
        pytest.param({}, {"X-Actor": "a" * 201}, "X-Actor", id="actor-too-long"),
    ],
)
async def test_a_decision_with_bad_reason_or_actor_is_422_and_changes_nothing(
    client: Client, clock, params: dict[str, str], headers: dict[str, str], field: str
) -> None:
    resource_id = await new_resource(client, requires_approval=True)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await client.post(
        f"/bookings/{booking['booking_id']}/approve", params=params, headers=headers
    )

    assert_invalid(response, field)
    assert await fetch(client, booking["booking_id"]) == booking


async def test_a_pending_booking_can_be_cancelled_by_its_client(client: Client, clock) -> None:
    resource_id = await new_resource(client, requires_approval=True)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await client.delete(f"/bookings/{booking['booking_id']}", params={"reason": "no"})

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    last = (await history_of(client, booking["booking_id"]))[-1]
    assert (last["type"], last["data"]) == ("booking.cancelled", {"reason": "no", "by": "client"})
    refused = await decide(client, booking["booking_id"], "approve")
    assert_problem(refused, 409, "booking-closed")


# --- moving a booking to another resource ------------------------------------------------------


async def test_move_to_another_resource_carries_the_booking_over(client: Client, clock) -> None:
    source, target = await new_resource(client), await new_resource(client)
    d = day(clock.now)
    booking = await book(client, source, d + hours(10), d + hours(11), details="Demo")
    clock.advance(timedelta(seconds=30))

    response = await client.put(
        f"/bookings/{booking['booking_id']}", json={"resource_id": target}, headers={"X-Actor": "m"}
    )

    assert response.status_code == 200, response.text
    moved = booking | {"resource_id": target, "updated_at": iso(clock.now)}
    assert response.json() == moved
    assert await fetch(client, booking["booking_id"]) == moved
    assert await bookings_of(client, source) == []
    assert await bookings_of(client, target) == [moved]
    window = (d + hours(9), d + hours(12))
    assert (await availability_of(client, source, *window))["busy"] == []
    target_busy = (await availability_of(client, target, *window))["busy"]
    assert [b["booking_id"] for b in target_busy] == [booking["booking_id"]]
    history = await history_of(client, booking["booking_id"])
    assert [(e["type"], e["actor"]) for e in history] == [
        ("booking.created", None),
        ("booking.moved_out", "m"),
        ("booking.moved_in", "m"),
    ]
    assert history[1]["data"] == {"to_resource_id": target}
    assert history[2]["data"] == {
        "from_resource_id": source,
        "start_time": iso(d + hours(10)),
        "end_time": iso(d + hours(11)),
        "status": "confirmed",
    }
    # the old slot is free on the source, the new one taken on the target
    await book(client, source, d + hours(10), d + hours(11))
    taken = await client.post("/bookings", json=booking_body(target, d + hours(10), d + hours(11)))
    assert assert_problem(taken, 409, "slot-taken")["conflicting_booking_ids"] == [
        booking["booking_id"]
    ]


async def test_move_can_change_time_and_details_at_once(client: Client, clock) -> None:
    source, target = await new_resource(client), await new_resource(client)
    d = day(clock.now)
    booking = await book(client, source, d + hours(10), d + hours(11), details="Old")

    response = await client.put(
        f"/bookings/{booking['booking_id']}",
        json={
            "resource_id": target,
            "start_time": iso_plus_two(d + hours(14)),
            "end_time": iso(d + hours(16)),
            "details": "New",
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["resource_id"], body["start_time"], body["end_time"], body["details"]) == (
        target,
        iso(d + hours(14)),
        iso(d + hours(16)),
        "New",
    )
    busy = (await availability_of(client, target, d + hours(9), d + hours(17)))["busy"]
    assert slots(busy) == [(iso(d + hours(14)), iso(d + hours(16)))]


@pytest.mark.parametrize(
    ("source_approval", "target_approval", "status"),
    [
        pytest.param(False, True, "pending", id="into-approval"),
        pytest.param(True, True, "pending", id="approval-to-approval"),
        pytest.param(True, False, "confirmed", id="out-of-approval"),
    ],
)
async def test_move_takes_the_status_the_target_gives(
    client: Client, clock, source_approval: bool, target_approval: bool, status: str
) -> None:
    source = await new_resource(client, requires_approval=source_approval)
    target = await new_resource(client, requires_approval=target_approval)
    d = day(clock.now)
    booking = await book(client, source, d + hours(10), d + hours(11))

    response = await client.put(f"/bookings/{booking['booking_id']}", json={"resource_id": target})

    assert response.status_code == 200, response.text
    assert response.json()["status"] == status
    busy = (await availability_of(client, target, d + hours(10), d + hours(11)))["busy"]
    assert [b["status"] for b in busy] == [status]


async def test_a_booking_moved_into_approval_is_decided_on_its_new_resource(
    client: Client, clock
) -> None:
    source = await new_resource(client)
    target = await new_resource(client, requires_approval=True)
    d = day(clock.now)
    booking = await book(client, source, d + hours(10), d + hours(11))
    moved = await client.put(f"/bookings/{booking['booking_id']}", json={"resource_id": target})
    assert moved.json()["status"] == "pending"

    response = await decide(client, booking["booking_id"], "approve", "ok")

    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["resource_id"]) == ("confirmed", target)
    types = [e["type"] for e in await history_of(client, booking["booking_id"])]
    assert types == ["booking.created", "booking.moved_out", "booking.moved_in", "booking.approved"]


async def test_move_there_and_back_again(client: Client, clock) -> None:
    first, second = await new_resource(client), await new_resource(client)
    d = day(clock.now)
    booking = await book(client, first, d + hours(10), d + hours(11))
    path = f"/bookings/{booking['booking_id']}"

    assert (await client.put(path, json={"resource_id": second})).status_code == 200
    back = await client.put(path, json={"resource_id": first})

    assert back.status_code == 200, back.text
    assert back.json()["resource_id"] == first
    window = (d + hours(10), d + hours(11))
    assert [b["booking_id"] for b in (await availability_of(client, first, *window))["busy"]] == [
        booking["booking_id"]
    ]
    assert (await availability_of(client, second, *window))["busy"] == []
    # and it still changes and cancels where it is now
    assert (await client.delete(path)).json()["status"] == "cancelled"
    assert (await availability_of(client, first, *window))["busy"] == []


async def _snapshot(client: Client, booking_id: str, resources: list[str], d: Any) -> Any:
    """What a refused move must leave as it was: the booking, its history, both resources."""
    window = (d + hours(8), d + hours(18))
    return (
        await fetch(client, booking_id),
        await history_of(client, booking_id),
        [await availability_of(client, r, *window) for r in resources],
        [await bookings_of(client, r) for r in resources],
    )


async def test_a_move_into_a_taken_slot_is_409_and_changes_neither_resource(
    client: Client, clock
) -> None:
    source, target = await new_resource(client), await new_resource(client)
    d = day(clock.now)
    booking = await book(client, source, d + hours(10), d + hours(11))
    blocker = await book(client, target, d + hours(10.5), d + hours(12))
    before = await _snapshot(client, booking["booking_id"], [source, target], d)

    response = await client.put(f"/bookings/{booking['booking_id']}", json={"resource_id": target})

    problem = assert_problem(response, 409, "slot-taken")
    assert problem["conflicting_booking_ids"] == [blocker["booking_id"]]
    assert await _snapshot(client, booking["booking_id"], [source, target], d) == before
    # the write model agrees: the booking still holds the source, and moves on later
    taken = await client.post("/bookings", json=booking_body(source, d + hours(10), d + hours(11)))
    assert_problem(taken, 409, "slot-taken")
    later = await client.put(
        f"/bookings/{booking['booking_id']}",
        json={
            "resource_id": target,
            "start_time": iso(d + hours(12)),
            "end_time": iso(d + hours(13)),
        },
    )
    assert later.status_code == 200, later.text
    assert (await availability_of(client, source, d + hours(10), d + hours(11)))["busy"] == []


async def test_a_move_the_targets_rules_refuse_is_422_and_changes_nothing(
    client: Client, clock
) -> None:
    source = await new_resource(client)
    target = await new_resource(client, max_duration_minutes=30)
    d = day(clock.now)
    booking = await book(client, source, d + hours(10), d + hours(11))
    before = await _snapshot(client, booking["booking_id"], [source, target], d)

    response = await client.put(f"/bookings/{booking['booking_id']}", json={"resource_id": target})

    body = assert_problem(response, 422, "duration")
    assert (body["rule"], body["field"]) == ("duration", "end_time")
    assert await _snapshot(client, booking["booking_id"], [source, target], d) == before


async def test_a_move_into_a_closure_is_409_and_changes_nothing(client: Client, clock) -> None:
    source, target = await new_resource(client), await new_resource(client)
    d = day(clock.now)
    booking = await book(client, source, d + hours(10), d + hours(11))
    closure = await client.post(
        f"/resources/{target}/closures",
        json={"start_time": iso(d + hours(9)), "end_time": iso(d + hours(10.25))},
    )
    before = await _snapshot(client, booking["booking_id"], [source, target], d)

    response = await client.put(f"/bookings/{booking['booking_id']}", json={"resource_id": target})

    problem = assert_problem(response, 409, "resource-closed")
    assert problem["closure_ids"] == [closure.json()["closure_id"]]
    assert await _snapshot(client, booking["booking_id"], [source, target], d) == before


async def test_a_move_to_a_retired_resource_is_409(client: Client, clock) -> None:
    source, target = await new_resource(client), await new_resource(client)
    d = day(clock.now)
    booking = await book(client, source, d + hours(10), d + hours(11))
    assert (await client.delete(f"/resources/{target}")).status_code == 200
    before = await _snapshot(client, booking["booking_id"], [source, target], d)

    response = await client.put(f"/bookings/{booking['booking_id']}", json={"resource_id": target})

    assert target in assert_problem(response, 409, "resource-retired")["detail"]
    assert await _snapshot(client, booking["booking_id"], [source, target], d) == before


async def test_a_move_to_an_unknown_resource_is_404(client: Client, clock) -> None:
    source = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, source, d + hours(10), d + hours(11))
    unknown = str(uuid4())
    before = await _snapshot(client, booking["booking_id"], [source], d)

    response = await client.put(f"/bookings/{booking['booking_id']}", json={"resource_id": unknown})

    assert unknown in assert_problem(response, 404, "not-found")["detail"]
    assert await _snapshot(client, booking["booking_id"], [source], d) == before
    assert (await client.get(f"/resources/{unknown}")).status_code == 404


async def test_a_move_with_a_non_uuid_target_is_422(client: Client, clock) -> None:
    source = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, source, d + hours(10), d + hours(11))

    response = await client.put(f"/bookings/{booking['booking_id']}", json={"resource_id": "r2"})

    assert_invalid(response, "resource_id")
    assert await fetch(client, booking["booking_id"]) == booking


async def test_a_cancelled_booking_cannot_move(client: Client, clock) -> None:
    source, target = await new_resource(client), await new_resource(client)
    d = day(clock.now)
    booking = await book(client, source, d + hours(10), d + hours(11))
    assert (await client.delete(f"/bookings/{booking['booking_id']}")).status_code == 200

    response = await client.put(f"/bookings/{booking['booking_id']}", json={"resource_id": target})

    assert_problem(response, 409, "booking-closed")
    assert (await fetch(client, booking["booking_id"]))["resource_id"] == source
    assert await bookings_of(client, target) == []


async def test_a_move_to_its_own_resource_is_a_plain_change(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await client.put(
        f"/bookings/{booking['booking_id']}",
        json={"resource_id": resource_id, "start_time": iso(d + hours(10.5))},
    )

    assert response.status_code == 200, response.text
    assert response.json()["start_time"] == iso(d + hours(10.5))
    types = [e["type"] for e in await history_of(client, booking["booking_id"])]
    assert types == ["booking.created", "booking.modified"]


# --- retiring a resource -----------------------------------------------------------------------


async def test_retire_answers_the_resource_with_retired_at(client: Client, clock) -> None:
    resource = await create_resource(client)
    resource_id = resource["resource_id"]
    clock.advance(timedelta(seconds=30))

    response = await client.delete(
        f"/resources/{resource_id}", params={"reason": "renovation"}, headers={"X-Actor": "a"}
    )

    assert response.status_code == 200, response.text
    retired = resource | {"retired_at": iso(clock.now), "updated_at": iso(clock.now)}
    assert response.json() == retired
    assert (await client.get(f"/resources/{resource_id}")).json() == retired


async def test_a_retired_resource_takes_no_new_bookings_but_keeps_its_own(
    client: Client, clock
) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    kept = await book(client, resource_id, d + hours(10), d + hours(11))
    assert (await client.delete(f"/resources/{resource_id}")).status_code == 200

    refused = await client.post(
        "/bookings", json=booking_body(resource_id, d + hours(12), d + hours(13))
    )

    assert resource_id in assert_problem(refused, 409, "resource-retired")["detail"]
    assert await bookings_of(client, resource_id) == [kept]
    cancelled = await client.delete(f"/bookings/{kept['booking_id']}", params={"reason": "closed"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    # the freed slot does not become bookable on a retired resource
    again = await client.post(
        "/bookings", json=booking_body(resource_id, d + hours(10), d + hours(11))
    )
    assert_problem(again, 409, "resource-retired")


async def test_the_bookings_of_a_retired_resource_can_still_change_and_be_decided(
    client: Client, clock
) -> None:
    resource_id = await new_resource(client, requires_approval=True)
    d = day(clock.now)
    pending = await book(client, resource_id, d + hours(10), d + hours(11))
    assert (await client.delete(f"/resources/{resource_id}")).status_code == 200

    moved = await client.put(
        f"/bookings/{pending['booking_id']}",
        json={"start_time": iso(d + hours(12)), "end_time": iso(d + hours(13))},
    )
    approved = await decide(client, pending["booking_id"], "approve")

    assert moved.status_code == 200, moved.text
    assert moved.json()["start_time"] == iso(d + hours(12))
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "confirmed"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"capacity": 2}, id="setting"),
        pytest.param({"min_notice_minutes": 60}, id="rule"),
    ],
)
async def test_a_retired_resource_refuses_changes_to_its_settings(
    client: Client, change: dict[str, Any]
) -> None:
    resource_id = await new_resource(client)
    retired = (await client.delete(f"/resources/{resource_id}")).json()

    response = await client.patch(f"/resources/{resource_id}", json=change)

    assert_problem(response, 409, "resource-retired")
    assert (await client.get(f"/resources/{resource_id}")).json() == retired


async def test_retiring_twice_keeps_the_first_retirement(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    first = await client.delete(f"/resources/{resource_id}")
    assert first.status_code == 200, first.text
    clock.advance(timedelta(seconds=30))

    second = await client.delete(f"/resources/{resource_id}")

    assert second.status_code == 200, second.text
    assert second.json() == first.json()


async def test_listing_hides_retired_resources_on_request(client: Client) -> None:
    active, retired = await new_resource(client), await new_resource(client)
    assert (await client.delete(f"/resources/{retired}")).status_code == 200

    async def listed(params: dict[str, Any]) -> list[dict[str, Any]]:
        pages = await walk(client, "/resources", params | {"limit": 500})
        return [r for page in pages for r in page]

    hidden = await listed({"include_retired": "false"})
    assert active in [r["resource_id"] for r in hidden]
    assert retired not in [r["resource_id"] for r in hidden]
    assert all(r["retired_at"] is None for r in hidden)
    for shown in (await listed({}), await listed({"include_retired": "true"})):
        assert {active, retired} <= {r["resource_id"] for r in shown}


async def test_retire_of_an_unknown_resource_is_404(client: Client) -> None:
    unknown = str(uuid4())

    response = await client.delete(f"/resources/{unknown}")

    assert unknown in assert_problem(response, 404, "not-found")["detail"]


async def test_retire_with_a_non_uuid_is_422(client: Client) -> None:
    assert_invalid(await client.delete("/resources/not-a-uuid"), "resource_id")


async def test_retire_with_a_too_long_reason_is_422(client: Client) -> None:
    resource_id = await new_resource(client)

    response = await client.delete(f"/resources/{resource_id}", params={"reason": "x" * 1001})

    assert_invalid(response, "reason")
    assert (await client.get(f"/resources/{resource_id}")).json()["retired_at"] is None


# --- closures ----------------------------------------------------------------------------------


async def close(client: Client, resource_id: str, start: Any, end: Any, **extra: Any) -> Any:
    body = {"start_time": iso(start), "end_time": iso(end)} | extra
    return await client.post(f"/resources/{resource_id}/closures", json=body)


async def test_a_closure_answers_201_with_location_and_is_listed(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)

    response = await close(client, resource_id, d + hours(12), d + hours(14), reason="Cleaning")

    assert response.status_code == 201, response.text
    closure = response.json()
    UUID(closure["closure_id"])
    assert closure == {
        "closure_id": closure["closure_id"],
        "resource_id": resource_id,
        "start_time": iso(d + hours(12)),
        "end_time": iso(d + hours(14)),
        "reason": "Cleaning",
        "created_at": iso(clock.now),
    }
    assert response.headers["location"] == (
        f"/resources/{resource_id}/closures/{closure['closure_id']}"
    )
    fetched = await client.get(response.headers["location"])
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == closure
    listed = await client.get(f"/resources/{resource_id}/closures")
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"items": [closure]}
    availability = await availability_of(client, resource_id, d + hours(10), d + hours(16))
    assert availability["closures"] == [closure]
    assert slots(availability["free"]) == [
        (iso(d + hours(10)), iso(d + hours(12))),
        (iso(d + hours(14)), iso(d + hours(16))),
    ]


async def test_closures_listing_keeps_those_overlapping_the_window(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    ids = []
    for start, end in ((8, 9), (10, 11), (12, 13)):
        response = await close(client, resource_id, d + hours(start), d + hours(end))
        ids.append(response.json()["closure_id"])

    response = await client.get(
        f"/resources/{resource_id}/closures",
        params={"from": iso(d + hours(9)), "to": iso_plus_two(d + hours(12.5))},
    )

    assert response.status_code == 200, response.text
    assert [c["closure_id"] for c in response.json()["items"]] == ids[1:]


async def test_a_booking_over_a_closure_is_409_naming_it(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    first = (await close(client, resource_id, d + hours(12), d + hours(13))).json()
    second = (await close(client, resource_id, d + hours(14), d + hours(15))).json()

    inside = await client.post(
        "/bookings", json=booking_body(resource_id, d + hours(12.5), d + hours(13.5))
    )
    spanning = await client.post(
        "/bookings", json=booking_body(resource_id, d + hours(11), d + hours(16))
    )

    assert assert_problem(inside, 409, "resource-closed")["closure_ids"] == [first["closure_id"]]
    assert assert_problem(spanning, 409, "resource-closed")["closure_ids"] == [
        first["closure_id"],
        second["closure_id"],
    ]
    assert await bookings_of(client, resource_id) == []
    # touching a closure is fine: intervals are half-open
    await book(client, resource_id, d + hours(11), d + hours(12))
    await book(client, resource_id, d + hours(13), d + hours(14))


async def test_a_closure_keeps_the_bookings_already_there(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await close(client, resource_id, d + hours(9), d + hours(12))

    assert response.status_code == 201, response.text
    assert await fetch(client, booking["booking_id"]) == booking
    moved = await client.put(
        f"/bookings/{booking['booking_id']}", json={"start_time": iso(d + hours(10.5))}
    )
    assert assert_problem(moved, 409, "resource-closed")["closure_ids"] == [
        response.json()["closure_id"]
    ]


async def test_removing_a_closure_opens_the_time_again(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    closure = (await close(client, resource_id, d + hours(12), d + hours(14))).json()

    response = await client.delete(f"/resources/{resource_id}/closures/{closure['closure_id']}")

    assert response.status_code == 204, response.text
    assert response.content == b""
    listed = await client.get(f"/resources/{resource_id}/closures")
    assert listed.json() == {"items": []}
    availability = await availability_of(client, resource_id, d + hours(12), d + hours(14))
    assert availability["closures"] == []
    assert slots(availability["free"]) == [(iso(d + hours(12)), iso(d + hours(14)))]
    await book(client, resource_id, d + hours(12), d + hours(14))


async def test_removing_an_unknown_closure_is_refused(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    closure = (await close(client, resource_id, d + hours(12), d + hours(14))).json()
    path = f"/resources/{resource_id}/closures/{closure['closure_id']}"
    assert (await client.delete(path)).status_code == 204

    again = await client.delete(path)
    unknown = await client.delete(f"/resources/{resource_id}/closures/{uuid4()}")

    assert_problem(again, 404, "not-found")
    assert_problem(unknown, 404, "not-found")
    assert_problem(await client.get(path), 404, "not-found")


async def test_a_closure_is_removed_only_through_its_own_resource(client: Client, clock) -> None:
    mine, other = await new_resource(client), await new_resource(client)
    d = day(clock.now)
    closure = (await close(client, mine, d + hours(12), d + hours(14))).json()

    wrong = await client.delete(f"/resources/{other}/closures/{closure['closure_id']}")
    not_a_uuid = await client.delete(f"/resources/{mine}/closures/nope")

    assert_problem(wrong, 404, "not-found")
    assert_invalid(not_a_uuid, "closure_id")
    listed = await client.get(f"/resources/{mine}/closures")
    assert listed.json() == {"items": [closure]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(lambda d, now: {"end_time": iso(d + hours(12))}, "body", id="empty"),
        pytest.param(lambda d, now: {"end_time": iso(d + hours(11))}, "body", id="end-first"),
        pytest.param(
            lambda d, now: {"start_time": "2030-05-18T10:00:00"}, "start_time", id="naive"
        ),
        pytest.param(
            lambda d, now: {"start_time": iso(now - hours(2)), "end_time": iso(now - hours(1))},
            "end_time",
            id="in-the-past",
        ),
        pytest.param(lambda d, now: {"colour": "red"}, "body", id="unknown-field"),
        pytest.param(lambda d, now: {"reason": "x" * 1001}, "reason", id="reason-too-long"),
    ],
)
async def test_an_invalid_closure_is_422_and_closes_nothing(
    client: Client, clock, body: Any, field: str
) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    fields = {"start_time": iso(d + hours(12)), "end_time": iso(d + hours(14))}

    response = await client.post(
        f"/resources/{resource_id}/closures", json=fields | body(d, clock.now)
    )

    assert_invalid(response, field)
    listed = await client.get(
        f"/resources/{resource_id}/closures", params={"from": iso(clock.now - hours(3))}
    )
    assert listed.json() == {"items": []}


async def test_a_closure_that_already_began_but_has_not_ended_is_accepted(
    client: Client, clock
) -> None:
    resource_id = await new_resource(client)

    response = await close(client, resource_id, clock.now - hours(1), clock.now + hours(1))

    assert response.status_code == 201, response.text
    refused = await client.post(
        "/bookings", json=booking_body(resource_id, clock.now + minutes(5), clock.now + hours(2))
    )
    assert_problem(refused, 409, "resource-closed")


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        pytest.param("POST", "closures", id="close"),
        pytest.param("GET", "closures", id="list"),
        pytest.param("DELETE", f"closures/{uuid4()}", id="reopen"),
    ],
)
async def test_closures_of_an_unknown_resource_are_404(
    client: Client, clock, method: str, suffix: str
) -> None:
    d = day(clock.now)
    body = {"start_time": iso(d + hours(12)), "end_time": iso(d + hours(14))}

    response = await client.request(
        method,
        f"/resources/{uuid4()}/{suffix}",
        json=body if method == "POST" else None,
    )

    assert_problem(response, 404, "not-found")


async def test_a_closure_on_a_retired_resource_is_refused(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    assert (await client.delete(f"/resources/{resource_id}")).status_code == 200
    d = day(clock.now)

    response = await close(client, resource_id, d + hours(12), d + hours(14))

    assert_problem(response, 409, "resource-retired")


async def test_openapi_document_lists_the_new_routes(client: Client) -> None:
    response = await client.get("/schema/openapi.json")

    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    for action in ACTIONS:
        assert "post" in paths[f"/bookings/{{booking_id}}/{action}"], action
    assert {"patch", "delete"} <= set(paths["/resources/{resource_id}"])
    assert {"get", "post"} <= set(paths["/resources/{resource_id}/closures"])
    assert "delete" in paths["/resources/{resource_id}/closures/{closure_id}"]
    assert "get" in paths["/availability"]


async def test_a_closures_window_must_end_after_it_starts(client: Client) -> None:
    resource_id = await new_resource(client)
    window = {"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}

    response = await client.get(f"/resources/{resource_id}/closures", params=window)

    assert_invalid(response, "to")

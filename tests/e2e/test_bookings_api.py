"""End to end over HTTP: `/bookings` create, fetch, modify, cancel, list and history."""

from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from e2e.helpers import (
    BOOKING_FIELDS,
    Client,
    assert_invalid,
    assert_problem,
    book,
    booking_body,
    bookings_of,
    create_resource,
    day,
    hours,
    iso,
    iso_plus_two,
    walk,
)


async def new_resource(client: Client, **fields: Any) -> str:
    resource_id: str = (await create_resource(client, **fields))["resource_id"]
    return resource_id


async def history_of(client: Client, booking_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/bookings/{booking_id}/history")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


# --- POST /bookings ----------------------------------------------------------------------------


async def test_create_answers_201_with_location_and_the_booking(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    client_id = str(uuid4())

    response = await client.post(
        "/bookings",
        json={
            "resource_id": resource_id,
            "start_time": iso(d + hours(10)),
            "end_time": iso(d + hours(11)),
            "client_id": client_id,
            "details": "Meeting regarding project updates",
        },
    )

    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    booking = response.json()
    booking_id = booking["booking_id"]
    UUID(booking_id)
    assert response.headers["location"] == f"/bookings/{booking_id}"
    assert booking == {
        "booking_id": booking_id,
        "resource_id": resource_id,
        "start_time": iso(d + hours(10)),
        "end_time": iso(d + hours(11)),
        "client_id": client_id,
        "status": "confirmed",
        "details": "Meeting regarding project updates",
        "created_at": iso(clock.now),
        "updated_at": iso(clock.now),
    }
    fetched = await client.get(response.headers["location"])
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == booking


async def test_create_answers_times_in_utc_whatever_offset_was_sent(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    body = booking_body(resource_id, d + hours(10), d + hours(11))
    body["start_time"] = iso_plus_two(d + hours(10))  # e.g. 2030-01-01T12:00:00+02:00

    response = await client.post("/bookings", json=body)

    assert response.status_code == 201, response.text
    booking = response.json()
    assert booking["start_time"] == iso(d + hours(10))
    assert booking["end_time"] == iso(d + hours(11))
    assert booking["start_time"].endswith("Z")
    assert booking["details"] is None


async def test_create_on_a_resource_requiring_approval_is_pending(client: Client, clock) -> None:
    resource_id = await new_resource(client, requires_approval=True)
    d = day(clock.now)

    booking = await book(client, resource_id, d + hours(10), d + hours(11))

    assert booking["status"] == "pending"
    # a pending booking holds its slot
    refused = await client.post(
        "/bookings", json=booking_body(resource_id, d + hours(10), d + hours(11))
    )
    problem = assert_problem(refused, 409, "slot-taken")
    assert problem["conflicting_booking_ids"] == [booking["booking_id"]]


async def test_overlapping_booking_is_409_naming_the_conflict(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    taken = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await client.post(
        "/bookings", json=booking_body(resource_id, d + hours(10.5), d + hours(12))
    )

    problem = assert_problem(response, 409, "slot-taken")
    assert problem["conflicting_booking_ids"] == [taken["booking_id"]]
    assert taken["booking_id"] in problem["detail"]
    assert await bookings_of(client, resource_id) == [taken], "the refused booking was kept"


async def test_a_booking_spanning_two_others_names_both(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    first = await book(client, resource_id, d + hours(10), d + hours(11))
    second = await book(client, resource_id, d + hours(12), d + hours(13))

    response = await client.post(
        "/bookings", json=booking_body(resource_id, d + hours(9), d + hours(14))
    )

    problem = assert_problem(response, 409, "slot-taken")
    assert problem["conflicting_booking_ids"] == [first["booking_id"], second["booking_id"]]


async def test_touching_slots_are_both_booked(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)

    first = await book(client, resource_id, d + hours(10), d + hours(11))
    after = await book(client, resource_id, d + hours(11), d + hours(12))
    before = await book(client, resource_id, d + hours(9), d + hours(10))

    listed = await bookings_of(client, resource_id)
    assert [b["booking_id"] for b in listed] == [
        before["booking_id"],
        first["booking_id"],
        after["booking_id"],
    ]
    assert {b["status"] for b in listed} == {"confirmed"}


async def test_the_same_slot_on_another_resource_is_free(client: Client, clock) -> None:
    d = day(clock.now)
    first = await book(client, await new_resource(client), d + hours(10), d + hours(11))
    second = await book(client, await new_resource(client), d + hours(10), d + hours(11))

    assert first["booking_id"] != second["booking_id"]


def _past(now: Any) -> dict[str, str]:
    return {"start_time": iso(now - hours(1)), "end_time": iso(now + hours(1))}


INVALID_BODIES = [
    pytest.param(lambda d, now: {"end_time": iso(d + hours(10))}, "body", id="end-equals-start"),
    pytest.param(lambda d, now: {"end_time": iso(d + hours(9))}, "body", id="end-before-start"),
    pytest.param(lambda d, now: {"start_time": "2030-05-18T10:00:00"}, "start_time", id="naive"),
    pytest.param(lambda d, now: {"end_time": "2030-05-18T11:00:00"}, "end_time", id="naive-end"),
    pytest.param(lambda d, now: {"start_time": "tomorrow"}, "start_time", id="not-a-time"),
    pytest.param(lambda d, now: {"colour": "red"}, "body", id="unknown-field"),
    pytest.param(lambda d, now: {"resource_id": "room-1"}, "resource_id", id="bad-resource-uuid"),
    pytest.param(lambda d, now: {"client_id": "alice"}, "client_id", id="bad-client-uuid"),
    pytest.param(lambda d, now: {"client_id": 123}, "client_id", id="client-id-number"),
    pytest.param(lambda d, now: {"client_id": None}, "client_id", id="client-id-null"),
    pytest.param(lambda d, now: {"details": 5}, "details", id="details-number"),
    pytest.param(lambda d, now: {"details": "x" * 10_001}, "details", id="details-too-long"),
    pytest.param(lambda d, now: {"start_time": ["2030"]}, "start_time", id="time-list"),
    pytest.param(lambda d, now: _past(now), "start_time", id="start-in-the-past"),
    pytest.param(
        lambda d, now: {
            "start_time": int((d + hours(10)).timestamp()),
            "end_time": int((d + hours(11)).timestamp()),
        },
        "start_time",
        id="time-as-number",
    ),
]


@pytest.mark.parametrize(("change", "field"), INVALID_BODIES)
async def test_create_refuses_invalid_fields_and_keeps_nothing(
    client: Client, clock, change: Any, field: str
) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    body = booking_body(resource_id, d + hours(10), d + hours(11)) | change(d, clock.now)

    response = await client.post("/bookings", json=body)

    assert_invalid(response, field)
    assert await bookings_of(client, resource_id) == []


@pytest.mark.parametrize("missing", ["resource_id", "start_time", "end_time", "client_id"])
async def test_create_refuses_a_missing_field(client: Client, clock, missing: str) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    body = booking_body(resource_id, d + hours(10), d + hours(11))
    del body[missing]

    response = await client.post("/bookings", json=body)

    problem = assert_invalid(response)
    assert missing in problem["detail"]
    assert await bookings_of(client, resource_id) == []


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        pytest.param(b'{"resource_id": ', {"content-type": "application/json"}, id="truncated"),
        pytest.param(b"{not json", {"content-type": "application/json"}, id="malformed"),
        pytest.param(b"", {"content-type": "application/json"}, id="empty"),
        pytest.param(None, {}, id="no-body"),
        pytest.param(b"\xff\xfe", {"content-type": "application/json"}, id="not-utf8"),
    ],
)
async def test_create_refuses_a_body_that_is_not_json(
    client: Client, content: bytes | None, headers: dict[str, str]
) -> None:
    response = await client.post("/bookings", content=content, headers=headers)

    assert_problem(response, 400, "malformed-request")


@pytest.mark.parametrize(
    "content",
    [pytest.param(b"[1]", id="array"), pytest.param(b"null", id="null")],
)
async def test_create_refuses_json_that_is_not_an_object(client: Client, content: bytes) -> None:
    response = await client.post(
        "/bookings", content=content, headers={"content-type": "application/json"}
    )

    assert_invalid(response, "body")


async def test_create_on_an_unknown_resource_is_404(client: Client, clock) -> None:
    unknown = str(uuid4())
    d = day(clock.now)

    response = await client.post(
        "/bookings", json=booking_body(unknown, d + hours(10), d + hours(11))
    )

    problem = assert_problem(response, 404, "not-found")
    assert unknown in problem["detail"]
    listed = await client.get("/bookings", params={"resource_id": unknown})
    assert listed.json() == {"items": [], "next_cursor": None}


async def test_an_actor_name_longer_than_200_is_422(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)

    response = await client.post(
        "/bookings",
        json=booking_body(resource_id, d + hours(10), d + hours(11)),
        headers={"X-Actor": "a" * 201},
    )

    assert_invalid(response, "X-Actor")
    assert await bookings_of(client, resource_id) == []


async def test_a_nul_character_in_details_is_422(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)

    response = await client.post(
        "/bookings",
        json=booking_body(resource_id, d + hours(10), d + hours(11), details="a\u0000b"),
    )

    assert_invalid(response, "details")


async def test_a_nul_character_in_a_cancel_reason_is_422(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await client.delete(
        f"/bookings/{booking['booking_id']}", params={"reason": "a\u0000b"}
    )

    assert_invalid(response, "reason")


async def test_a_command_the_store_refuses_leaves_the_resource_unchanged(
    client: Client, clock
) -> None:
    """Whatever the answer to an unstorable command, it must not linger in the write model."""
    resource_id = await new_resource(client)
    d = day(clock.now)
    kept = await book(client, resource_id, d + hours(12), d + hours(13))
    refused = await client.post(
        "/bookings",
        json=booking_body(resource_id, d + hours(10), d + hours(11), details="a\u0000b"),
    )
    assert refused.status_code in {422, 500}, refused.text
    not_cancelled = await client.delete(
        f"/bookings/{kept['booking_id']}", params={"reason": "a\u0000b"}
    )
    assert not_cancelled.status_code in {422, 500}, not_cancelled.text

    # the refused booking holds no time, and the booking that was not cancelled still does
    again = await book(client, resource_id, d + hours(10), d + hours(11))
    assert await bookings_of(client, resource_id) == [again, kept]
    overlap = await client.post(
        "/bookings", json=booking_body(resource_id, d + hours(12), d + hours(13))
    )
    assert assert_problem(overlap, 409, "slot-taken")["conflicting_booking_ids"] == [
        kept["booking_id"]
    ]


# --- GET /bookings/{id} ------------------------------------------------------------------------


async def test_fetch_answers_the_booking(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11), details="Checkup")

    response = await client.get(f"/bookings/{booking['booking_id']}")

    assert response.status_code == 200, response.text
    assert set(response.json()) == BOOKING_FIELDS
    assert response.json() == booking


async def test_fetch_of_an_unknown_booking_is_404(client: Client) -> None:
    unknown = str(uuid4())

    response = await client.get(f"/bookings/{unknown}")

    problem = assert_problem(response, 404, "not-found")
    assert unknown in problem["detail"]


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        pytest.param("GET", "", id="get"),
        pytest.param("DELETE", "", id="delete"),
        pytest.param("GET", "/history", id="history"),
    ],
)
async def test_a_non_uuid_booking_id_is_422(client: Client, method: str, suffix: str) -> None:
    response = await client.request(method, f"/bookings/not-a-uuid{suffix}")

    assert_invalid(response, "booking_id")


# --- PUT /bookings/{id} ------------------------------------------------------------------------


async def test_modify_moves_the_booking_and_frees_the_old_slot(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11), details="Standup")
    booking_id = booking["booking_id"]
    clock.advance(timedelta(seconds=30))

    response = await client.put(
        f"/bookings/{booking_id}",
        json={"start_time": iso_plus_two(d + hours(14)), "end_time": iso(d + hours(15))},
    )

    assert response.status_code == 200, response.text
    moved = booking | {
        "start_time": iso(d + hours(14)),
        "end_time": iso(d + hours(15)),
        "updated_at": iso(clock.now),
    }
    assert response.json() == moved
    assert moved["created_at"] != moved["updated_at"]
    # read-your-writes: the next GET, the listing and availability all show the new time
    fetched = await client.get(f"/bookings/{booking_id}")
    assert fetched.json() == moved
    assert await bookings_of(client, resource_id) == [moved]
    availability = await client.get(
        f"/resources/{resource_id}/availability",
        params={"from": iso(d + hours(9)), "to": iso(d + hours(16))},
    )
    assert [(b["start_time"], b["end_time"]) for b in availability.json()["busy"]] == [
        (iso(d + hours(14)), iso(d + hours(15)))
    ]
    await book(client, resource_id, d + hours(10), d + hours(11))  # the old slot is free


async def test_modify_one_end_keeps_the_other(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await client.put(
        f"/bookings/{booking['booking_id']}", json={"end_time": iso(d + hours(12))}
    )

    assert response.status_code == 200, response.text
    assert response.json()["start_time"] == iso(d + hours(10))
    assert response.json()["end_time"] == iso(d + hours(12))


async def test_modify_details_only_keeps_the_time(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11), details="Old")

    response = await client.put(
        f"/bookings/{booking['booking_id']}", json={"details": "Updated meeting"}
    )

    assert response.status_code == 200, response.text
    assert response.json() == booking | {"details": "Updated meeting"}
    fetched = await client.get(f"/bookings/{booking['booking_id']}")
    assert fetched.json()["details"] == "Updated meeting"


async def test_modify_onto_another_booking_is_409_and_changes_nothing(
    client: Client, clock
) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    mine = await book(client, resource_id, d + hours(10), d + hours(11))
    other = await book(client, resource_id, d + hours(12), d + hours(13))

    response = await client.put(
        f"/bookings/{mine['booking_id']}",
        json={"start_time": iso(d + hours(11.5)), "end_time": iso(d + hours(12.5))},
    )

    problem = assert_problem(response, 409, "slot-taken")
    assert problem["conflicting_booking_ids"] == [other["booking_id"]]
    assert (await client.get(f"/bookings/{mine['booking_id']}")).json() == mine
    assert [e["type"] for e in await history_of(client, mine["booking_id"])] == ["booking.created"]


async def test_modify_within_its_own_slot_does_not_collide_with_itself(
    client: Client, clock
) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(12))

    response = await client.put(
        f"/bookings/{booking['booking_id']}", json={"start_time": iso(d + hours(11))}
    )

    assert response.status_code == 200, response.text
    assert response.json()["start_time"] == iso(d + hours(11))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(lambda d, now: {}, "body", id="empty"),
        pytest.param(lambda d, now: {"details": None}, "body", id="only-null"),
        pytest.param(
            lambda d, now: {"start_time": iso(d + hours(11)), "end_time": iso(d + hours(11))},
            "body",
            id="end-equals-start",
        ),
        pytest.param(
            lambda d, now: {"start_time": iso(d + hours(12)), "end_time": iso(d + hours(11))},
            "body",
            id="end-before-start",
        ),
        pytest.param(
            lambda d, now: {"end_time": iso(d + hours(9))}, "end_time", id="end-before-kept-start"
        ),
        pytest.param(
            lambda d, now: {"start_time": iso(now - hours(1))}, "start_time", id="into-the-past"
        ),
        pytest.param(
            lambda d, now: {"start_time": "2030-05-18T10:00:00"}, "start_time", id="naive"
        ),
        pytest.param(lambda d, now: {"colour": "red"}, "body", id="unknown-field"),
        pytest.param(lambda d, now: {"details": 7}, "details", id="details-number"),
    ],
)
async def test_modify_refuses_invalid_changes_and_keeps_the_booking(
    client: Client, clock, body: Any, field: str
) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await client.put(f"/bookings/{booking['booking_id']}", json=body(d, clock.now))

    assert_invalid(response, field)
    assert (await client.get(f"/bookings/{booking['booking_id']}")).json() == booking
    assert len(await history_of(client, booking["booking_id"])) == 1


@pytest.mark.parametrize(
    "content", [pytest.param(b"{bad", id="malformed"), pytest.param(b"", id="empty")]
)
async def test_modify_refuses_a_body_that_is_not_json(
    client: Client, clock, content: bytes
) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await client.put(
        f"/bookings/{booking['booking_id']}",
        content=content,
        headers={"content-type": "application/json"},
    )

    assert_problem(response, 400, "malformed-request")


async def test_modify_of_an_unknown_booking_is_404(client: Client) -> None:
    response = await client.put(f"/bookings/{uuid4()}", json={"details": "x"})

    assert_problem(response, 404, "not-found")


async def test_modify_with_a_non_uuid_id_is_422(client: Client) -> None:
    response = await client.put("/bookings/not-a-uuid", json={"details": "x"})

    assert_invalid(response, "booking_id")


async def test_modify_of_a_cancelled_booking_is_409(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))
    assert (await client.delete(f"/bookings/{booking['booking_id']}")).status_code == 200

    response = await client.put(f"/bookings/{booking['booking_id']}", json={"details": "x"})

    assert_problem(response, 409, "booking-closed")
    assert (await client.get(f"/bookings/{booking['booking_id']}")).json()["details"] is None


# --- DELETE /bookings/{id} ---------------------------------------------------------------------


async def test_cancel_answers_the_cancelled_booking_which_stays_retrievable(
    client: Client, clock
) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))
    clock.advance(timedelta(seconds=30))

    response = await client.delete(f"/bookings/{booking['booking_id']}")

    assert response.status_code == 200, response.text
    cancelled = booking | {"status": "cancelled", "updated_at": iso(clock.now)}
    assert response.json() == cancelled
    assert (await client.get(f"/bookings/{booking['booking_id']}")).json() == cancelled
    assert await bookings_of(client, resource_id) == [cancelled]


async def test_a_cancelled_slot_can_be_booked_again(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))
    assert (await client.delete(f"/bookings/{booking['booking_id']}")).status_code == 200

    again = await book(client, resource_id, d + hours(10), d + hours(11))

    assert again["status"] == "confirmed"
    assert again["booking_id"] != booking["booking_id"]


async def test_a_second_cancel_is_409(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))
    assert (await client.delete(f"/bookings/{booking['booking_id']}")).status_code == 200

    response = await client.delete(f"/bookings/{booking['booking_id']}")

    problem = assert_problem(response, 409, "booking-closed")
    assert booking["booking_id"] in problem["detail"]
    assert len(await history_of(client, booking["booking_id"])) == 2


async def test_cancel_of_an_unknown_booking_is_404(client: Client) -> None:
    response = await client.delete(f"/bookings/{uuid4()}")

    assert_problem(response, 404, "not-found")


async def test_cancel_reason_and_actor_are_recorded(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await client.delete(
        f"/bookings/{booking['booking_id']}",
        params={"reason": "Client is ill"},
        headers={"X-Actor": "bob"},
    )

    assert response.status_code == 200, response.text
    last = (await history_of(client, booking["booking_id"]))[-1]
    assert last["type"] == "booking.cancelled"
    assert last["actor"] == "bob"
    assert last["data"] == {"reason": "Client is ill", "by": "client"}


async def test_a_cancel_reason_longer_than_1000_is_422(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await client.delete(
        f"/bookings/{booking['booking_id']}", params={"reason": "x" * 1001}
    )

    assert_invalid(response, "reason")


async def test_a_booking_that_has_ended_can_no_longer_change(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    start = clock.now + timedelta(minutes=1)
    booking = await book(client, resource_id, start, start + timedelta(minutes=1))
    booking_id = booking["booking_id"]

    clock.advance(timedelta(minutes=3))

    modified = await client.put(f"/bookings/{booking_id}", json={"details": "too late"})
    assert_problem(modified, 409, "booking-closed")
    cancelled = await client.delete(f"/bookings/{booking_id}")
    assert_problem(cancelled, 409, "booking-closed")
    fetched = await client.get(f"/bookings/{booking_id}")
    assert fetched.json()["status"] != "cancelled"
    assert fetched.json()["details"] is None
    assert len(await history_of(client, booking_id)) == 1


# --- GET /bookings -----------------------------------------------------------------------------


async def test_listing_without_filters_answers_a_page_of_bookings(client: Client, clock) -> None:
    d = day(clock.now)
    await book(client, await new_resource(client), d + hours(10), d + hours(11))

    response = await client.get("/bookings")

    assert response.status_code == 200, response.text
    page = response.json()
    assert set(page) == {"items", "next_cursor"}
    assert 1 <= len(page["items"]) <= 50
    assert all(set(b) == BOOKING_FIELDS for b in page["items"])


async def test_listing_filters_by_resource(client: Client, clock) -> None:
    d = day(clock.now)
    resource_id = await new_resource(client)
    mine = await book(client, resource_id, d + hours(10), d + hours(11))
    await book(client, await new_resource(client), d + hours(10), d + hours(11))

    response = await client.get("/bookings", params={"resource_id": resource_id})

    assert response.status_code == 200, response.text
    assert response.json() == {"items": [mine], "next_cursor": None}


async def test_listing_filters_by_client_across_resources(client: Client, clock) -> None:
    d = day(clock.now)
    client_id = str(uuid4())
    first = await book(
        client, await new_resource(client), d + hours(12), d + hours(13), client_id=client_id
    )
    second = await book(
        client, await new_resource(client), d + hours(10), d + hours(11), client_id=client_id
    )
    await book(client, await new_resource(client), d + hours(10), d + hours(11))

    response = await client.get("/bookings", params={"client_id": client_id})

    assert response.status_code == 200, response.text
    assert response.json() == {"items": [second, first], "next_cursor": None}


async def test_listing_filters_by_status(client: Client, clock) -> None:
    d = day(clock.now)
    resource_id = await new_resource(client)
    kept = await book(client, resource_id, d + hours(10), d + hours(11))
    dropped = await book(client, resource_id, d + hours(12), d + hours(13))
    gone = await client.delete(f"/bookings/{dropped['booking_id']}")
    assert gone.status_code == 200, gone.text

    async def listed(status: str) -> list[str]:
        response = await client.get(
            "/bookings", params={"resource_id": resource_id, "status": status}
        )
        assert response.status_code == 200, response.text
        return [b["booking_id"] for b in response.json()["items"]]

    assert await listed("confirmed") == [kept["booking_id"]]
    assert await listed("cancelled") == [dropped["booking_id"]]
    assert await listed("pending") == []


async def test_listing_filters_pending(client: Client, clock) -> None:
    d = day(clock.now)
    resource_id = await new_resource(client, requires_approval=True)
    pending = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await client.get(
        "/bookings", params={"resource_id": resource_id, "status": "pending"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["items"] == [pending]


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        pytest.param((11, 13), ["b"], id="touching-edges-excluded"),
        pytest.param((10.5, 13.5), ["a", "b", "c"], id="partial-overlaps-included"),
        pytest.param((11.25, 11.75), ["b"], id="inside-one"),
        pytest.param((8, 10), [], id="before-all"),
        pytest.param((14, 15), [], id="after-all"),
        pytest.param((None, 11), ["a"], id="only-to"),
        pytest.param((12, None), ["c"], id="only-from"),
    ],
)
async def test_listing_window_keeps_bookings_that_overlap_it(
    client: Client, clock, window: tuple[float | None, float | None], expected: list[str]
) -> None:
    d = day(clock.now)
    resource_id = await new_resource(client)
    slots = {"a": (10, 11), "b": (11, 12), "c": (13, 14)}
    ids = {
        name: (await book(client, resource_id, d + hours(s), d + hours(e)))["booking_id"]
        for name, (s, e) in slots.items()
    }
    start, end = window
    params: dict[str, Any] = {"resource_id": resource_id}
    if start is not None:
        params["from"] = iso(d + hours(start))
    if end is not None:
        params["to"] = iso_plus_two(d + hours(end))

    response = await client.get("/bookings", params=params)

    assert response.status_code == 200, response.text
    assert [b["booking_id"] for b in response.json()["items"]] == [ids[n] for n in expected]


async def test_listing_pages_walk_every_booking_once_by_start_time(client: Client, clock) -> None:
    d = day(clock.now, days=5)
    resource_id = await new_resource(client, capacity=3)
    starts = [15, 9, 12, 9, 10, 14, 11]  # out of order, and two share a start time
    made = [await book(client, resource_id, d + hours(s), d + hours(s + 1)) for s in starts]

    pages = await walk(client, "/bookings", {"resource_id": resource_id, "limit": 2})

    assert [len(p) for p in pages] == [2, 2, 2, 1]
    items = [b for page in pages for b in page]
    ids = [b["booking_id"] for b in items]
    assert len(ids) == len(set(ids)), "a booking was listed twice"
    assert set(ids) == {b["booking_id"] for b in made}
    keys = [(b["start_time"], UUID(b["booking_id"])) for b in items]
    assert keys == sorted(keys), "not ordered by start time"


async def test_listing_pages_keep_the_filters(client: Client, clock) -> None:
    d = day(clock.now)
    resource_id = await new_resource(client)
    confirmed = [
        await book(client, resource_id, d + hours(h), d + hours(h + 1)) for h in (8, 10, 12)
    ]
    cancelled = await book(client, resource_id, d + hours(9), d + hours(10))
    assert (await client.delete(f"/bookings/{cancelled['booking_id']}")).status_code == 200

    pages = await walk(
        client, "/bookings", {"resource_id": resource_id, "status": "confirmed", "limit": 1}
    )

    assert [b for page in pages for b in page] == confirmed


async def test_listing_page_of_exactly_limit_items_has_no_next_cursor(
    client: Client, clock
) -> None:
    d = day(clock.now)
    resource_id = await new_resource(client)
    for h in (10, 12):
        await book(client, resource_id, d + hours(h), d + hours(h + 1))

    response = await client.get("/bookings", params={"resource_id": resource_id, "limit": 2})

    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 2
    assert response.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"cursor": "garbage"}, "cursor", id="cursor-garbage"),
        pytest.param({"cursor": "eyJhIjoxfQ=="}, "cursor", id="cursor-other-json"),
        pytest.param({"from": "2030-01-01T10:00:00"}, "from", id="naive-from"),
        pytest.param({"to": "2030-01-01T10:00:00"}, "to", id="naive-to"),
        pytest.param({"status": "weird"}, "status", id="bad-status"),
        pytest.param({"limit": 0}, "limit", id="limit-0"),
        pytest.param({"limit": 1000}, "limit", id="limit-1000"),
        pytest.param({"limit": "many"}, "limit", id="limit-text"),
        pytest.param({"resource_id": "room-1"}, "resource_id", id="bad-resource-uuid"),
        pytest.param({"client_id": "alice"}, "client_id", id="bad-client-uuid"),
        pytest.param({"from": "soon"}, None, id="from-not-a-time"),
    ],
)
async def test_listing_refuses_bad_query_values(
    client: Client, params: dict[str, Any], field: str | None
) -> None:
    response = await client.get("/bookings", params=params)

    assert_invalid(response, field)


async def test_listing_names_the_query_parameter_of_a_malformed_time(client: Client) -> None:
    response = await client.get("/bookings", params={"from": "soon"})

    assert_invalid(response, "from")


# --- GET /bookings/{id}/history ----------------------------------------------------------------


async def test_history_lists_every_event_oldest_first(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    alice = {"X-Actor": "alice"}
    created_at = clock.now
    booking = await book(
        client, resource_id, d + hours(10), d + hours(11), headers=alice, details="Kick-off"
    )
    booking_id = booking["booking_id"]
    clock.advance(timedelta(seconds=10))
    moved_at = clock.now
    moved = await client.put(
        f"/bookings/{booking_id}",
        json={"start_time": iso(d + hours(12)), "end_time": iso(d + hours(13))},
        headers=alice,
    )
    assert moved.status_code == 200, moved.text
    clock.advance(timedelta(seconds=10))
    retitled_at = clock.now
    retitled = await client.put(f"/bookings/{booking_id}", json={"details": "Retro"})
    assert retitled.status_code == 200, retitled.text
    clock.advance(timedelta(seconds=10))
    cancelled_at = clock.now
    cancelled = await client.delete(
        f"/bookings/{booking_id}", params={"reason": "moved to Tuesday"}, headers=alice
    )
    assert cancelled.status_code == 200, cancelled.text

    response = await client.get(f"/bookings/{booking_id}/history")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["booking_id"] == booking_id
    items = body["items"]
    assert [(e["type"], e["occurred_at"], e["actor"]) for e in items] == [
        ("booking.created", iso(created_at), "alice"),
        ("booking.modified", iso(moved_at), "alice"),
        ("booking.modified", iso(retitled_at), None),
        ("booking.cancelled", iso(cancelled_at), "alice"),
    ]
    assert items[0]["data"] == {
        "client_id": booking["client_id"],
        "start_time": iso(d + hours(10)),
        "end_time": iso(d + hours(11)),
        "status": "confirmed",
        "details": "Kick-off",
    }
    assert items[1]["data"] == {"start_time": iso(d + hours(12)), "end_time": iso(d + hours(13))}
    assert items[2]["data"] == {"details": "Retro"}
    assert items[3]["data"] == {"reason": "moved to Tuesday", "by": "client"}


async def test_history_of_an_unknown_booking_is_404(client: Client) -> None:
    response = await client.get(f"/bookings/{uuid4()}/history")

    assert_problem(response, 404, "not-found")

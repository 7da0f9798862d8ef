"""End to end over HTTP: a resource's booking rules, changing them, opening hours across DST,
and availability (free and bookable time) of one resource or many."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from e2e.helpers import (
    Client,
    assert_invalid,
    assert_problem,
    assert_rule,
    availability_of,
    book,
    booking_body,
    bookings_of,
    create_resource,
    day,
    history_of,
    hours,
    iso,
    minutes,
    new_resource,
    slots,
    walk,
)

OWNER = {"X-Actor-Role": "owner"}
NINE_TO_FIVE = [{"start": "09:00", "end": "17:00"}]
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
DEFAULT_RULES = {
    "pending_holds_slot": True,
    "approval_window_minutes": None,
    "min_notice_minutes": 0,
    "max_advance_days": None,
    "min_duration_minutes": None,
    "max_duration_minutes": None,
    "start_step_minutes": None,
    "buffer_before_minutes": 0,
    "buffer_after_minutes": 0,
    "change_notice_minutes": 0,
    "cancel_notice_minutes": 0,
    "opening_hours": None,
    "date_exceptions": None,
}
SOME_RULES = {
    "pending_holds_slot": False,
    "approval_window_minutes": 60,
    "min_notice_minutes": 30,
    "max_advance_days": 365,
    "min_duration_minutes": 15,
    "max_duration_minutes": 240,
    "start_step_minutes": 15,
    "buffer_before_minutes": 5,
    "buffer_after_minutes": 10,
    "change_notice_minutes": 120,
    "cancel_notice_minutes": 1440,
    "opening_hours": {"monday": NINE_TO_FIVE, "saturday": [{"start": "10:00", "end": "24:00"}]},
    "date_exceptions": {"2030-12-25": [], "2030-12-24": [{"start": "09:00", "end": "12:00"}]},
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def attempt(client: Client, resource_id: str, start: datetime, end: datetime) -> Any:
    return await client.post("/bookings", json=booking_body(resource_id, start, end))


async def fetch_resource(client: Client, resource_id: str) -> dict[str, Any]:
    response = await client.get(f"/resources/{resource_id}")
    assert response.status_code == 200, response.text
    resource: dict[str, Any] = response.json()
    return resource


# --- rules at registration ---------------------------------------------------------------------


async def test_a_new_resource_imposes_no_rules(client: Client) -> None:
    resource = await create_resource(client)

    assert {k: resource[k] for k in DEFAULT_RULES} == DEFAULT_RULES
    assert resource["retired_at"] is None


async def test_register_keeps_every_rule(client: Client) -> None:
    resource = await create_resource(client, requires_approval=True, **SOME_RULES)

    assert {k: resource[k] for k in SOME_RULES} == SOME_RULES
    assert await fetch_resource(client, resource["resource_id"]) == resource


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        pytest.param({"min_duration_minutes": 0}, "min_duration_minutes", id="min-duration-0"),
        pytest.param(
            {"min_duration_minutes": 60, "max_duration_minutes": 30},
            "max_duration_minutes",
            id="max-below-min",
        ),
        pytest.param({"start_step_minutes": 0}, "start_step_minutes", id="step-0"),
        pytest.param({"buffer_after_minutes": -5}, "buffer_after_minutes", id="negative-buffer"),
        pytest.param({"max_advance_days": 0}, "max_advance_days", id="advance-0"),
        pytest.param(
            {"opening_hours": {"monday": [{"start": "17:00", "end": "09:00"}]}},
            "opening_hours.monday",
            id="hours-backwards",
        ),
        pytest.param({"date_exceptions": {"2030-02-30": []}}, "date_exceptions", id="no-such-date"),
    ],
)
async def test_register_refuses_invalid_rules(
    client: Client, rules: dict[str, Any], field: str
) -> None:
    name = f"Room {uuid4()}"

    response = await client.post("/resources", json={"name": name} | rules)

    assert_invalid(response, field)
    pages = await walk(client, "/resources", {"limit": 500})
    assert name not in [r["name"] for page in pages for r in page]


# --- each rule on a new booking ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "accepted"),
    [
        pytest.param(29, False, id="below-min"),
        pytest.param(30, True, id="exactly-min"),
        pytest.param(120, True, id="exactly-max"),
        pytest.param(121, False, id="above-max"),
    ],
)
async def test_duration_rule(client: Client, clock, length: int, accepted: bool) -> None:
    resource_id = await new_resource(client, min_duration_minutes=30, max_duration_minutes=120)
    start = day(clock.now) + hours(10)

    response = await attempt(client, resource_id, start, start + minutes(length))

    if accepted:
        assert response.status_code == 201, response.text
    else:
        body = assert_rule(response, "duration", "end_time")
        assert "30" in body["detail"] or "120" in body["detail"]
        assert await bookings_of(client, resource_id) == []


async def test_min_notice_rule(client: Client, clock) -> None:
    resource_id = await new_resource(client, min_notice_minutes=120)

    too_soon = await attempt(
        client, resource_id, clock.now + minutes(119), clock.now + minutes(179)
    )
    just_in_time = await attempt(
        client, resource_id, clock.now + minutes(120), clock.now + minutes(180)
    )

    assert_rule(too_soon, "min-notice", "start_time")
    assert just_in_time.status_code == 201, just_in_time.text


async def test_min_notice_binds_a_new_start_but_not_a_new_end(client: Client, clock) -> None:
    resource_id = await new_resource(client, min_notice_minutes=120)
    start = clock.now + hours(3)
    booking = await book(client, resource_id, start, start + hours(1))
    clock.advance(hours(2))  # an hour before the start
    path = f"/bookings/{booking['booking_id']}"

    longer = await client.put(path, json={"end_time": iso(start + hours(2))})
    later = await client.put(path, json={"start_time": iso(start + minutes(30))})

    assert longer.status_code == 200, longer.text
    assert_rule(later, "min-notice", "start_time")
    assert (await client.get(path)).json()["start_time"] == iso(start)


async def test_max_advance_rule(client: Client, clock) -> None:
    resource_id = await new_resource(client, max_advance_days=7)
    last = clock.now + timedelta(days=7)

    too_far = await attempt(client, resource_id, last + minutes(1), last + minutes(61))
    at_the_limit = await attempt(client, resource_id, last, last + minutes(60))

    assert_rule(too_far, "max-advance", "start_time")
    assert at_the_limit.status_code == 201, at_the_limit.text


@pytest.mark.parametrize(
    ("zone", "step", "on_step", "off_step"),
    [
        pytest.param("UTC", 15, 10.25, 10 + 5 / 60, id="utc-15"),
        # India is UTC+05:30: local midnight is 18:30Z, so whole local hours fall on :30Z
        pytest.param("Asia/Kolkata", 60, 10.5, 10, id="kolkata-60"),
        # Nepal is UTC+05:45
        pytest.param("Asia/Kathmandu", 30, 10.25, 10.5, id="kathmandu-30"),
    ],
)
async def test_start_step_rule_counts_from_local_midnight(
    client: Client, clock, *, zone: str, step: int, on_step: float, off_step: float
) -> None:
    resource_id = await new_resource(client, timezone=zone, start_step_minutes=step)
    d = day(clock.now)

    off = await attempt(client, resource_id, d + hours(off_step), d + hours(off_step + 1))
    on = await attempt(client, resource_id, d + hours(on_step), d + hours(on_step + 1))

    assert_rule(off, "start-step", "start_time")
    assert on.status_code == 201, on.text


async def test_start_step_applies_to_the_start_only(client: Client, clock) -> None:
    resource_id = await new_resource(client, start_step_minutes=60)
    d = day(clock.now)

    booking = await book(client, resource_id, d + hours(10), d + minutes(10 * 60 + 47))
    moved_end = await client.put(
        f"/bookings/{booking['booking_id']}", json={"end_time": iso(d + minutes(11 * 60 + 3))}
    )
    moved_start = await client.put(
        f"/bookings/{booking['booking_id']}", json={"start_time": iso(d + minutes(10 * 60 + 1))}
    )

    assert moved_end.status_code == 200, moved_end.text
    assert_rule(moved_start, "start-step", "start_time")


MONDAY = utc("2030-06-03T00:00:00")  # a Monday


@pytest.mark.parametrize(
    ("start", "end", "accepted"),
    [
        pytest.param(9, 12, True, id="exactly-morning"),
        pytest.param(13, 17, True, id="exactly-afternoon"),
        pytest.param(9 - 1 / 60, 10, False, id="a-minute-early"),
        pytest.param(16, 17 + 1 / 60, False, id="a-minute-late"),
        pytest.param(11, 14, False, id="over-lunch"),
        pytest.param(24 + 10, 24 + 11, False, id="tuesday-closed"),
        pytest.param(-14, -13, False, id="sunday-closed"),
    ],
)
async def test_opening_hours_rule(client: Client, start: float, end: float, accepted: bool) -> None:
    hours_ = [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}]
    resource_id = await new_resource(client, opening_hours={"monday": hours_})

    response = await attempt(client, resource_id, MONDAY + hours(start), MONDAY + hours(end))

    if accepted:
        assert response.status_code == 201, response.text
    else:
        assert_rule(response, "opening-hours", "start_time")


async def test_a_booking_may_run_over_midnight_into_another_open_day(client: Client) -> None:
    all_day = [{"start": "00:00", "end": "24:00"}]
    both = await new_resource(client, opening_hours={"monday": all_day, "tuesday": all_day})
    monday_only = await new_resource(client, opening_hours={"monday": all_day})

    overnight = (MONDAY + hours(23), MONDAY + hours(25))

    assert (await attempt(client, both, *overnight)).status_code == 201
    assert_rule(await attempt(client, monday_only, *overnight), "opening-hours", "start_time")


async def test_touching_stretches_join(client: Client) -> None:
    split = [{"start": "09:00", "end": "12:00"}, {"start": "12:00", "end": "17:00"}]
    resource_id = await new_resource(client, opening_hours={"monday": split})

    response = await attempt(client, resource_id, MONDAY + hours(11), MONDAY + hours(13))

    assert response.status_code == 201, response.text


async def test_buffers_may_extend_outside_the_opening_hours(client: Client) -> None:
    resource_id = await new_resource(
        client,
        opening_hours={"monday": NINE_TO_FIVE},
        buffer_before_minutes=30,
        buffer_after_minutes=30,
    )

    first = await attempt(client, resource_id, MONDAY + hours(9), MONDAY + hours(10))
    last = await attempt(client, resource_id, MONDAY + hours(16), MONDAY + hours(17))

    assert first.status_code == 201, first.text
    assert last.status_code == 201, last.text


async def test_date_exceptions_close_a_date_or_give_it_special_hours(client: Client) -> None:
    resource_id = await new_resource(
        client,
        opening_hours=dict.fromkeys(WEEKDAYS, NINE_TO_FIVE),
        date_exceptions={
            "2030-12-25": [],
            "2030-12-24": [{"start": "09:00", "end": "12:00"}],
            "2030-12-28": [{"start": "10:00", "end": "14:00"}],  # a Saturday
        },
    )

    async def booked(start: str, end: str) -> bool:
        response = await attempt(client, resource_id, utc(start), utc(end))
        if response.status_code == 201:
            return True
        assert_rule(response, "opening-hours", "start_time")
        return False

    assert not await booked("2030-12-25T10:00:00", "2030-12-25T11:00:00")  # closed
    assert await booked("2030-12-24T11:00:00", "2030-12-24T12:00:00")  # special hours
    assert not await booked("2030-12-24T12:00:00", "2030-12-24T13:00:00")
    assert await booked("2030-12-28T10:00:00", "2030-12-28T14:00:00")  # opened on a Saturday
    assert await booked("2030-12-26T16:00:00", "2030-12-26T17:00:00")  # an ordinary Thursday


async def test_date_exceptions_are_local_dates(client: Client) -> None:
    # always open but on Christmas Day in Berlin (UTC+1 in winter)
    resource_id = await new_resource(
        client, timezone="Europe/Berlin", date_exceptions={"2030-12-25": []}
    )

    before = await attempt(
        client, resource_id, utc("2030-12-24T22:00:00"), utc("2030-12-24T23:00:00")
    )
    christmas = await attempt(
        client, resource_id, utc("2030-12-24T23:00:00"), utc("2030-12-25T00:00:00")
    )
    after = await attempt(
        client, resource_id, utc("2030-12-25T23:00:00"), utc("2030-12-26T00:00:00")
    )

    assert before.status_code == 201, before.text
    assert_rule(christmas, "opening-hours", "start_time")
    assert after.status_code == 201, after.text


@pytest.mark.parametrize(
    ("start", "end", "accepted"),
    [
        pytest.param(11.5, 12.5, False, id="after-buffer-overlaps"),
        pytest.param(11.75, 12.75, True, id="exactly-after-both-buffers"),
        pytest.param(8.5, 9.5, False, id="before-buffer-overlaps"),
        pytest.param(8.25, 9.25, True, id="exactly-before-both-buffers"),
    ],
)
async def test_buffers_keep_bookings_apart(
    client: Client, clock, start: float, end: float, accepted: bool
) -> None:
    # each booking occupies 15 minutes before and 30 after its own time
    resource_id = await new_resource(client, buffer_before_minutes=15, buffer_after_minutes=30)
    d = day(clock.now)
    existing = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await attempt(client, resource_id, d + hours(start), d + hours(end))

    if accepted:
        assert response.status_code == 201, response.text
    else:
        problem = assert_problem(response, 409, "slot-taken")
        assert problem["conflicting_booking_ids"] == [existing["booking_id"]]


async def test_change_notice_binds_the_client_not_the_owner(client: Client, clock) -> None:
    resource_id = await new_resource(client, change_notice_minutes=60)
    other = await new_resource(client)
    start = clock.now + hours(2)
    booking = await book(client, resource_id, start, start + hours(1))
    path = f"/bookings/{booking['booking_id']}"

    # exactly 60 minutes before the start the client may still change it
    clock.advance(hours(1))
    edge = await client.put(path, json={"details": "at the limit"})
    assert edge.status_code == 200, edge.text

    clock.advance(timedelta(seconds=1))
    changes = [
        {"details": "too late"},
        {"end_time": iso(start + hours(2))},
        {"resource_id": other},
    ]
    for change in changes:
        refused = await client.put(path, json=change, headers={"X-Actor-Role": "client"})
        assert_rule(refused, "change-notice", "start_time")
    assert (await client.get(path)).json() == edge.json()
    assert await bookings_of(client, other) == []

    by_owner = await client.put(path, json={"details": "owner"}, headers=OWNER)
    assert by_owner.status_code == 200, by_owner.text
    assert by_owner.json()["details"] == "owner"


async def test_cancel_notice_binds_the_client_not_the_owner(client: Client, clock) -> None:
    resource_id = await new_resource(client, cancel_notice_minutes=60, capacity=2)
    start = clock.now + hours(2)
    at_limit = await book(client, resource_id, start, start + hours(1))
    late = await book(client, resource_id, start, start + hours(1))

    clock.advance(hours(1))
    edge = await client.delete(f"/bookings/{at_limit['booking_id']}")
    assert edge.status_code == 200, edge.text

    clock.advance(timedelta(seconds=1))
    refused = await client.delete(f"/bookings/{late['booking_id']}", params={"reason": "ill"})
    assert_rule(refused, "cancel-notice", "start_time")
    assert (await client.get(f"/bookings/{late['booking_id']}")).json()["status"] == "confirmed"

    by_owner = await client.delete(
        f"/bookings/{late['booking_id']}",
        params={"reason": "ill"},
        headers=OWNER | {"X-Actor": "desk"},
    )
    assert by_owner.status_code == 200, by_owner.text
    assert by_owner.json()["status"] == "cancelled"
    last = (await history_of(client, late["booking_id"]))[-1]
    assert (last["type"], last["actor"], last["data"]) == (
        "booking.cancelled",
        "desk",
        {"reason": "ill", "by": "owner"},
    )
    first = (await history_of(client, at_limit["booking_id"]))[-1]
    assert first["data"] == {"by": "client"}


@pytest.mark.parametrize("role", ["admin", "Owner", ""])
async def test_an_unknown_actor_role_is_422(client: Client, clock, role: str) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))
    path = f"/bookings/{booking['booking_id']}"
    headers = {"X-Actor-Role": role}

    modified = await client.put(path, json={"details": "x"}, headers=headers)
    cancelled = await client.delete(path, headers=headers)

    assert_invalid(modified, "X-Actor-Role")
    assert_invalid(cancelled, "X-Actor-Role")
    assert (await client.get(path)).json() == booking


async def test_a_refused_rule_leaves_the_booking_as_it_was(client: Client, clock) -> None:
    resource_id = await new_resource(client, max_duration_minutes=60, start_step_minutes=30)
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))

    too_long = await client.put(
        f"/bookings/{booking['booking_id']}", json={"end_time": iso(d + hours(12))}
    )
    off_step = await client.put(
        f"/bookings/{booking['booking_id']}",
        json={"start_time": iso(d + hours(10.25)), "end_time": iso(d + hours(11))},
    )

    assert_rule(too_long, "duration", "end_time")
    assert_rule(off_step, "start-step", "start_time")
    assert (await client.get(f"/bookings/{booking['booking_id']}")).json() == booking
    assert len(await history_of(client, booking["booking_id"])) == 1


# --- PATCH /resources/{id} ---------------------------------------------------------------------


async def test_patch_changes_only_the_given_fields(client: Client, clock) -> None:
    resource = await create_resource(client, capacity=2, **SOME_RULES)
    clock.advance(timedelta(seconds=30))
    changes = {
        "name": "Renamed",
        "min_notice_minutes": 0,
        "opening_hours": {"tuesday": NINE_TO_FIVE},
    }

    response = await client.patch(f"/resources/{resource['resource_id']}", json=changes)

    assert response.status_code == 200, response.text
    changed = resource | changes | {"updated_at": iso(clock.now)}
    assert response.json() == changed
    assert await fetch_resource(client, resource["resource_id"]) == changed


async def test_patch_with_null_lifts_a_limit(client: Client, clock) -> None:
    resource_id = await new_resource(
        client,
        max_duration_minutes=60,
        max_advance_days=1,
        opening_hours={"monday": NINE_TO_FIVE},
        details="Old",
    )
    far = day(clock.now, days=30) + hours(2)
    refused = await attempt(client, resource_id, far, far + hours(3))
    assert refused.status_code == 422, refused.text

    response = await client.patch(
        f"/resources/{resource_id}",
        json={
            "max_duration_minutes": None,
            "max_advance_days": None,
            "opening_hours": None,
            "details": None,
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (
        body["max_duration_minutes"],
        body["max_advance_days"],
        body["opening_hours"],
        body["details"],
    ) == (None, None, None, None)
    accepted = await attempt(client, resource_id, far, far + hours(3))
    assert accepted.status_code == 201, accepted.text


async def test_patch_rules_apply_to_the_next_decision(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)

    response = await client.patch(
        f"/resources/{resource_id}", json={"min_duration_minutes": 90, "requires_approval": True}
    )

    assert response.status_code == 200, response.text
    assert_rule(
        await attempt(client, resource_id, d + hours(10), d + hours(11)), "duration", "end_time"
    )
    booking = await book(client, resource_id, d + hours(10), d + hours(11.5))
    assert booking["status"] == "pending"


async def test_patch_with_the_same_values_changes_nothing(client: Client, clock) -> None:
    resource = await create_resource(client, min_notice_minutes=30)
    clock.advance(timedelta(seconds=30))

    response = await client.patch(
        f"/resources/{resource['resource_id']}",
        json={"min_notice_minutes": 30, "name": resource["name"]},
    )

    assert response.status_code == 200, response.text
    assert response.json() == resource


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"min_duration_minutes": 0}, "min_duration_minutes", id="min-duration-0"),
        pytest.param({"min_duration_minutes": 90}, "max_duration_minutes", id="min-above-max"),
        pytest.param({"max_duration_minutes": 10}, "max_duration_minutes", id="max-below-min"),
        pytest.param({"start_step_minutes": 0}, "start_step_minutes", id="step-0"),
        pytest.param({"approval_window_minutes": 0}, "approval_window_minutes", id="window-0"),
        pytest.param({"min_notice_minutes": -1}, "min_notice_minutes", id="notice-negative"),
        pytest.param({"min_notice_minutes": None}, "min_notice_minutes", id="notice-null"),
        pytest.param({"buffer_before_minutes": "15"}, "buffer_before_minutes", id="text"),
        pytest.param({"cancel_notice_minutes": 1.5}, "cancel_notice_minutes", id="float"),
        pytest.param(
            {"change_notice_minutes": 10**9}, "change_notice_minutes", id="notice-too-long"
        ),
        pytest.param({"max_advance_days": 0}, "max_advance_days", id="advance-0"),
        pytest.param({"pending_holds_slot": None}, "pending_holds_slot", id="flag-null"),
        pytest.param(
            {"opening_hours": {"monday": [{"start": "25:00", "end": "26:00"}]}},
            "opening_hours",
            id="hours-bad-clock",
        ),
        pytest.param(
            {"opening_hours": {"monday": [{"start": "12:00", "end": "12:00"}]}},
            "opening_hours.monday",
            id="hours-empty",
        ),
        pytest.param(
            {"opening_hours": {"monday": [{"start": "09:00"}]}}, "opening_hours", id="no-end"
        ),
        pytest.param(
            {"opening_hours": {"monday": [{"start": "09:00", "end": "10:00", "x": 1}]}},
            "opening_hours",
            id="hours-extra-key",
        ),
        pytest.param({"date_exceptions": {"2030-13-01": []}}, "date_exceptions", id="not-a-date"),
        pytest.param({"capacity": 0}, "capacity", id="capacity-0"),
        pytest.param({"name": None}, "name", id="name-null"),
        pytest.param({"name": "  "}, "name", id="name-blank"),
        pytest.param({"timezone": "Mars/Base"}, "timezone", id="bad-zone"),
        pytest.param({"colour": "red"}, "body", id="unknown-field"),
        pytest.param({"resource_id": str(uuid4())}, "body", id="resource-id"),
        pytest.param({"retired_at": None}, "body", id="retired-at"),
    ],
)
async def test_patch_refuses_invalid_values_and_changes_nothing(
    client: Client, clock, changes: dict[str, Any], field: str
) -> None:
    resource = await create_resource(client, min_duration_minutes=30, max_duration_minutes=60)
    clock.advance(timedelta(seconds=1))

    response = await client.patch(
        f"/resources/{resource['resource_id']}", json={"details": "changed"} | changes
    )

    problem = assert_invalid(response)
    named = [e["field"] for e in problem["errors"]]
    assert any(f == field or f.startswith((f"{field}.", f"{field}[")) for f in named), problem
    assert await fetch_resource(client, resource["resource_id"]) == resource


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"opening_hours": {"funday": NINE_TO_FIVE}}, "opening_hours", id="weekday"),
        pytest.param({"date_exceptions": {"30.12.2030": []}}, "date_exceptions", id="date"),
    ],
)
async def test_a_bad_day_key_is_422_naming_its_field(
    client: Client, changes: dict[str, Any], field: str
) -> None:
    """Like every other invalid value, a bad weekday or date names the field it is in."""
    resource = await create_resource(client)

    patched = await client.patch(f"/resources/{resource['resource_id']}", json=changes)
    registered = await client.post("/resources", json={"name": "Room"} | changes)

    for response in (patched, registered):
        problem = assert_invalid(response)
        named = [e["field"] for e in problem["errors"]]
        assert any(f.startswith(field) for f in named), problem
    assert await fetch_resource(client, resource["resource_id"]) == resource


async def test_patch_of_an_unknown_resource_is_404(client: Client) -> None:
    unknown = str(uuid4())

    response = await client.patch(f"/resources/{unknown}", json={"capacity": 2})

    assert unknown in assert_problem(response, 404, "not-found")["detail"]


async def test_patch_with_a_non_uuid_is_422(client: Client) -> None:
    assert_invalid(await client.patch("/resources/nope", json={"capacity": 2}), "resource_id")


async def test_patch_with_a_body_that_is_not_json_is_400(client: Client) -> None:
    resource_id = await new_resource(client)

    response = await client.patch(
        f"/resources/{resource_id}", content=b"{", headers={"content-type": "application/json"}
    )

    assert_problem(response, 400, "malformed-request")


# --- opening hours across a change of daylight saving time -------------------------------------

DST_WEEKS = [
    # zone, (Friday, Sunday, Monday) around a change, each day's 09:00 local in UTC
    pytest.param(
        "Europe/Berlin",
        ("2030-03-29T08:00:00", "2030-03-31T07:00:00", "2030-04-01T07:00:00"),
        id="berlin-spring",
    ),
    pytest.param(
        "Europe/Berlin",
        ("2030-10-25T07:00:00", "2030-10-27T08:00:00", "2030-10-28T08:00:00"),
        id="berlin-autumn",
    ),
    pytest.param(
        "America/New_York",
        ("2030-03-08T14:00:00", "2030-03-10T13:00:00", "2030-03-11T13:00:00"),
        id="new-york-spring",
    ),
    pytest.param(
        "America/New_York",
        ("2030-11-01T13:00:00", "2030-11-03T14:00:00", "2030-11-04T14:00:00"),
        id="new-york-autumn",
    ),
]


@pytest.mark.parametrize(("zone", "openings"), DST_WEEKS)
async def test_nine_to_five_follows_local_time_across_a_dst_change(
    client: Client, zone: str, openings: tuple[str, str, str]
) -> None:
    friday, sunday, monday = (utc(o) for o in openings)
    resource_id = await new_resource(
        client,
        timezone=zone,
        opening_hours=dict.fromkeys(WEEKDAYS, NINE_TO_FIVE),
        date_exceptions={sunday.date().isoformat(): NINE_TO_FIVE},  # the day of the change
        start_step_minutes=60,
    )
    window = (friday.replace(hour=0), monday.replace(hour=0) + timedelta(days=1))

    availability = await availability_of(client, resource_id, *window, duration=8 * 60)

    expected = [(iso(o), iso(o + hours(8))) for o in (friday, sunday, monday)]
    assert slots(availability["free"]) == expected
    assert slots(availability["bookable"]) == expected
    for opening in (friday, sunday, monday):
        early = await attempt(client, resource_id, opening - hours(1), opening + hours(1))
        late = await attempt(client, resource_id, opening + hours(7), opening + hours(9))
        assert_rule(early, "opening-hours", "start_time")
        assert_rule(late, "opening-hours", "start_time")
        whole_day = await attempt(client, resource_id, opening, opening + hours(8))
        assert whole_day.status_code == 201, whole_day.text
        assert whole_day.json()["start_time"] == iso(opening)


# --- availability: free and bookable time ------------------------------------------------------


async def accepted_starts(
    client: Client, resource_id: str, starts: list[datetime], duration: timedelta
) -> list[str]:
    """The starts POST /bookings accepts, each tried alone (an accepted one is cancelled by
    the owner before the next is tried)."""
    accepted = []
    for start in starts:
        response = await attempt(client, resource_id, start, start + duration)
        if response.status_code == 201:
            accepted.append(iso(start))
            cancel = await client.delete(
                f"/bookings/{response.json()['booking_id']}", headers=OWNER
            )
            assert cancel.status_code == 200, cancel.text
        else:
            assert response.status_code in {409, 422}, response.text
    return accepted


def grid(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    found = []
    while start < end:
        found.append(start)
        start += step
    return found


async def test_availability_honours_hours_closures_and_buffers(client: Client) -> None:
    resource_id = await new_resource(
        client,
        opening_hours={"monday": NINE_TO_FIVE},
        buffer_after_minutes=30,
        start_step_minutes=30,
    )
    booking = await book(client, resource_id, MONDAY + hours(10), MONDAY + hours(11))
    closure = await client.post(
        f"/resources/{resource_id}/closures",
        json={"start_time": iso(MONDAY + hours(13)), "end_time": iso(MONDAY + hours(14))},
    )
    assert closure.status_code == 201, closure.text
    window = (MONDAY + hours(8), MONDAY + hours(18))

    availability = await availability_of(client, resource_id, *window, duration=60)

    assert [b["booking_id"] for b in availability["busy"]] == [booking["booking_id"]]
    assert availability["closures"] == [closure.json()]
    assert slots(availability["free"]) == [
        (iso(MONDAY + hours(9)), iso(MONDAY + hours(10))),
        (iso(MONDAY + hours(11.5)), iso(MONDAY + hours(13))),
        (iso(MONDAY + hours(14)), iso(MONDAY + hours(17))),
    ]
    starts = [11.5, 12, 14, 14.5, 15, 15.5, 16]
    assert slots(availability["bookable"]) == [
        (iso(MONDAY + hours(s)), iso(MONDAY + hours(s + 1))) for s in starts
    ]
    # what is bookable is exactly what POST /bookings accepts
    candidates = grid(*window, minutes(30))
    assert await accepted_starts(client, resource_id, candidates, hours(1)) == [
        b["start_time"] for b in availability["bookable"]
    ]
    assert_problem(await attempt(client, resource_id, *_hour(9)), 409, "slot-taken")
    assert_problem(await attempt(client, resource_id, *_hour(12.5)), 409, "resource-closed")
    assert_rule(await attempt(client, resource_id, *_hour(16.5)), "opening-hours", "start_time")


def _hour(start: float) -> tuple[datetime, datetime]:
    return MONDAY + hours(start), MONDAY + hours(start + 1)


async def test_availability_honours_buffers_on_both_sides(client: Client, clock) -> None:
    resource_id = await new_resource(client, buffer_before_minutes=15, buffer_after_minutes=30)
    d = day(clock.now)
    await book(client, resource_id, d + hours(10), d + hours(11))
    window = (d + hours(9), d + hours(14))

    availability = await availability_of(client, resource_id, *window, duration=60)

    assert slots(availability["free"]) == [
        (iso(d + hours(9)), iso(d + hours(9.75))),
        (iso(d + hours(11.5)), iso(d + hours(14))),
    ]
    bookable = [b["start_time"] for b in availability["bookable"]]
    assert bookable == [iso(d + hours(11.75) + minutes(15 * i)) for i in range(9)]
    candidates = grid(*window, minutes(15))
    assert await accepted_starts(client, resource_id, candidates, hours(1)) == bookable


async def test_free_time_counts_the_buffers_of_bookings_outside_the_window(
    client: Client, clock
) -> None:
    resource_id = await new_resource(client, buffer_before_minutes=30, buffer_after_minutes=30)
    d = day(clock.now)
    await book(client, resource_id, d + hours(8), d + hours(9))  # occupies 07:30-09:30
    await book(client, resource_id, d + hours(12), d + hours(13))  # occupies 11:30-13:30

    wide = await availability_of(client, resource_id, d + hours(7), d + hours(14))
    narrow = await availability_of(client, resource_id, d + hours(9), d + hours(12))

    assert slots(wide["free"]) == [
        (iso(d + hours(7)), iso(d + hours(7.5))),
        (iso(d + hours(9.5)), iso(d + hours(11.5))),
        (iso(d + hours(13.5)), iso(d + hours(14))),
    ]
    # the same day seen through a narrower window: the neighbours' buffers still occupy it
    assert slots(narrow["free"]) == [(iso(d + hours(9.5)), iso(d + hours(11.5)))]


async def test_availability_honours_capacity(client: Client, clock) -> None:
    resource_id = await new_resource(client, capacity=2, start_step_minutes=30)
    d = day(clock.now)
    await book(client, resource_id, d + hours(10), d + hours(12))
    await book(client, resource_id, d + hours(11), d + hours(13))
    window = (d + hours(9), d + hours(14))

    availability = await availability_of(client, resource_id, *window, duration=60)

    assert slots(availability["free"]) == [
        (iso(d + hours(9)), iso(d + hours(11))),
        (iso(d + hours(12)), iso(d + hours(14))),
    ]
    bookable = [b["start_time"] for b in availability["bookable"]]
    assert bookable == [iso(d + hours(h)) for h in (9, 9.5, 10, 12, 12.5, 13, 13.5)]
    candidates = grid(*window, minutes(30))
    assert await accepted_starts(client, resource_id, candidates, hours(1)) == bookable


async def test_bookable_honours_notice_and_advance(client: Client, clock) -> None:
    resource_id = await new_resource(
        client, min_notice_minutes=120, max_advance_days=1, start_step_minutes=60
    )
    base = clock.now.replace(minute=0, second=0)
    window = (base, base + timedelta(days=2))

    availability = await availability_of(client, resource_id, *window, duration=60)

    bookable = [b["start_time"] for b in availability["bookable"]]
    earliest, latest = clock.now + hours(2), clock.now + timedelta(days=1)
    assert bookable == [iso(t) for t in grid(*window, hours(1)) if earliest <= t <= latest], (
        "whole hours from two hours to a day ahead"
    )
    assert slots(availability["free"]) == [(iso(window[0]), iso(window[1]))]
    candidates = grid(*window, hours(1))
    assert await accepted_starts(client, resource_id, candidates, hours(1)) == bookable


async def test_pending_bookings_that_do_not_hold_their_slot_leave_it_bookable(
    client: Client, clock
) -> None:
    resource_id = await new_resource(
        client, requires_approval=True, pending_holds_slot=False, start_step_minutes=60
    )
    d = day(clock.now)
    pending = await book(client, resource_id, d + hours(10), d + hours(11))
    window = (d + hours(10), d + hours(11))

    availability = await availability_of(client, resource_id, *window, duration=60)

    assert availability["busy"] == []
    assert slots(availability["free"]) == [(iso(window[0]), iso(window[1]))]
    assert slots(availability["bookable"]) == [(iso(window[0]), iso(window[1]))]
    other = await book(client, resource_id, *window)
    assert (await client.post(f"/bookings/{pending['booking_id']}/approve")).status_code == 200
    after = await availability_of(client, resource_id, *window, duration=60)
    assert [b["booking_id"] for b in after["busy"]] == [pending["booking_id"]]
    assert after["bookable"] == []
    assert (await client.get(f"/bookings/{other['booking_id']}")).json()["status"] == "pending"


@pytest.mark.parametrize(
    ("zone", "window", "starts"),
    [
        # Berlin turns its clocks back from 03:00 to 02:00 on 2030-10-27: 02:00 happens twice,
        # at 00:00Z (CEST) and at 01:00Z (CET)
        pytest.param(
            "Europe/Berlin",
            ("2030-10-26T22:00:00", "2030-10-27T03:00:00"),
            [
                "2030-10-26T22:00:00",
                "2030-10-26T23:00:00",
                "2030-10-27T00:00:00",
                "2030-10-27T01:00:00",
                "2030-10-27T02:00:00",
            ],
            id="berlin",
        ),
        # New York turns back from 02:00 to 01:00 on 2030-11-03: 01:00 is 05:00Z and 06:00Z
        pytest.param(
            "America/New_York",
            ("2030-11-03T04:00:00", "2030-11-03T08:00:00"),
            [
                "2030-11-03T04:00:00",
                "2030-11-03T05:00:00",
                "2030-11-03T06:00:00",
                "2030-11-03T07:00:00",
            ],
            id="new-york",
        ),
    ],
)
async def test_bookable_lists_both_hours_of_a_repeated_local_hour(
    client: Client, zone: str, window: tuple[str, str], starts: list[str]
) -> None:
    resource_id = await new_resource(client, timezone=zone, start_step_minutes=60)
    low, high = utc(window[0]), utc(window[1])

    availability = await availability_of(client, resource_id, low, high, duration=60)

    # POST accepts a booking at every whole local hour, the repeated one included ...
    candidates = grid(low, high, minutes(30))
    accepted = await accepted_starts(client, resource_id, candidates, hours(1))
    assert accepted == [iso(utc(s)) for s in starts]
    # ... and bookable must list the same starts
    assert [b["start_time"] for b in availability["bookable"]] == accepted


async def test_availability_of_a_retired_resource_has_nothing_bookable(
    client: Client, clock
) -> None:
    resource_id = await new_resource(client)
    assert (await client.delete(f"/resources/{resource_id}")).status_code == 200
    d = day(clock.now)

    availability = await availability_of(client, resource_id, d + hours(10), d + hours(12), 60)

    refused = await attempt(client, resource_id, d + hours(10), d + hours(11))
    assert_problem(refused, 409, "resource-retired")
    assert availability["bookable"] == []
    assert availability["free"] == []


async def test_availability_without_duration_lists_no_bookable(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)

    availability = await availability_of(client, resource_id, d, d + timedelta(days=40))

    assert availability["bookable"] is None


async def test_bookable_window_may_span_31_days_at_most(client: Client, clock) -> None:
    resource_id = await new_resource(client, start_step_minutes=24 * 60)
    d = day(clock.now)

    exactly = await availability_of(client, resource_id, d, d + timedelta(days=31), 60)
    too_long = await client.get(
        f"/resources/{resource_id}/availability",
        params={"from": iso(d), "to": iso(d + timedelta(days=31, seconds=1)), "duration": 60},
    )

    assert len(exactly["bookable"]) == 31
    assert_invalid(too_long, "to")


@pytest.mark.parametrize("duration", [0, -5, "hour", 60 * 24 * 31 + 1])
async def test_bookable_refuses_a_bad_duration(client: Client, clock, duration: Any) -> None:
    resource_id = await new_resource(client)
    d = day(clock.now)

    response = await client.get(
        f"/resources/{resource_id}/availability",
        params={"from": iso(d), "to": iso(d + hours(1)), "duration": duration},
    )

    assert_invalid(response, "duration")


# --- GET /availability: many resources at once -------------------------------------------------


async def search(client: Client, params: dict[str, Any]) -> dict[str, Any]:
    response = await client.get("/availability", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_search_by_ids_lists_each_resource_with_its_bookable_starts(
    client: Client, clock
) -> None:
    d = day(clock.now)
    window = (d + hours(9), d + hours(12))
    free = await new_resource(client, name="Free", start_step_minutes=60)
    partly = await new_resource(client, name="Partly", start_step_minutes=60)
    full = await new_resource(client, name="Full", start_step_minutes=60)
    await book(client, partly, d + hours(10), d + hours(11))
    await book(client, full, *window)
    ids = [partly, full, free, partly]  # in this order, once each

    body = await search(
        client, {"from": iso(window[0]), "to": iso(window[1]), "duration": 60, "resource_id": ids}
    )

    assert (body["from"], body["to"], body["duration_minutes"], body["next_cursor"]) == (
        iso(window[0]),
        iso(window[1]),
        60,
        None,
    )
    assert [(i["resource_id"], i["name"]) for i in body["items"]] == [
        (partly, "Partly"),
        (free, "Free"),
    ]
    for item in body["items"]:
        one = await availability_of(client, item["resource_id"], *window, duration=60)
        assert item["bookable"] == one["bookable"]
    assert [b["start_time"] for b in body["items"][0]["bookable"]] == [
        iso(d + hours(9)),
        iso(d + hours(11)),
    ]


async def test_search_leaves_out_retired_resources(client: Client, clock) -> None:
    active, retired = await new_resource(client), await new_resource(client)
    assert (await client.delete(f"/resources/{retired}")).status_code == 200
    d = day(clock.now)

    body = await search(
        client,
        {
            "from": iso(d + hours(9)),
            "to": iso(d + hours(10)),
            "duration": 60,
            "resource_id": [retired, active],
        },
    )

    assert [i["resource_id"] for i in body["items"]] == [active]


async def test_search_with_an_unknown_id_is_404(client: Client, clock) -> None:
    known, unknown = await new_resource(client), str(uuid4())
    d = day(clock.now)

    response = await client.get(
        "/availability",
        params={
            "from": iso(d + hours(9)),
            "to": iso(d + hours(10)),
            "duration": 60,
            "resource_id": [known, unknown],
        },
    )

    assert unknown in assert_problem(response, 404, "not-found")["detail"]


async def test_search_of_every_resource_walks_pages_and_skips_retired(
    client: Client, clock
) -> None:
    d = day(clock.now, days=4)
    mine = []
    for _ in range(3):
        mine.append(await new_resource(client, start_step_minutes=60))
        clock.advance(timedelta(seconds=1))  # registration order is by time, then id
    closed = await new_resource(client, opening_hours={})  # never open: nothing bookable
    retired = await new_resource(client)
    assert (await client.delete(f"/resources/{retired}")).status_code == 200
    listed = await client.get("/resources", params={"limit": 500, "include_retired": "false"})
    active = len(listed.json()["items"])
    limit = min(100, max(1, active // 3))
    params = {"from": iso(d + hours(9)), "to": iso(d + hours(11)), "duration": 60, "limit": limit}

    pages, cursor = [], None
    while True:
        body = await search(client, params | ({"cursor": cursor} if cursor else {}))
        assert len(body["items"]) <= limit
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(pages) < 10_000, "the cursor does not advance"

    assert len(pages) >= 2
    found = [i["resource_id"] for page in pages for i in page]
    assert len(found) == len(set(found)), "a resource was listed twice"
    assert set(mine) <= set(found)
    assert [r for r in found if r in mine] == mine, "not in registration order"
    assert retired not in found
    assert closed not in found
    item = next(i for page in pages for i in page if i["resource_id"] == mine[0])
    assert [b["start_time"] for b in item["bookable"]] == [iso(d + hours(9)), iso(d + hours(10))]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"duration": None}, None, id="no-duration"),
        pytest.param({"duration": 0}, "duration", id="duration-0"),
        pytest.param({"to": "2030-02-02T00:00:01Z"}, "to", id="more-than-31-days"),
        pytest.param({"to": "2030-01-01T00:00:00Z"}, "to", id="empty-window"),
        pytest.param({"from": "2030-01-01T00:00:00"}, "from", id="naive"),
        pytest.param({"resource_id": ["room-1"]}, "resource_id", id="bad-id"),
        pytest.param({"limit": 0}, "limit", id="limit-0"),
        pytest.param({"limit": 101}, "limit", id="limit-101"),
        pytest.param({"cursor": "garbage"}, "cursor", id="bad-cursor"),
    ],
)
async def test_search_refuses_bad_queries(
    client: Client, change: dict[str, Any], field: str
) -> None:
    params = {"from": "2030-01-01T00:00:00Z", "to": "2030-01-02T00:00:00Z", "duration": 60}
    query = {k: v for k, v in (params | change).items() if v is not None}

    response = await client.get("/availability", params=query)

    problem = assert_invalid(response, field)
    assert (field or "duration") in problem["detail"]


async def test_search_takes_at_most_100_ids(client: Client) -> None:
    ids = [await new_resource(client) for _ in range(101)]
    params = {"from": "2030-01-01T00:00:00Z", "to": "2030-01-01T01:00:00Z", "duration": 60}

    too_many = await client.get("/availability", params=params | {"resource_id": ids})
    enough = await client.get("/availability", params=params | {"resource_id": ids[:100]})

    assert_invalid(too_many, "resource_id")
    assert enough.status_code == 200, enough.text
    assert len(enough.json()["items"]) == 100

"""Inputs at the edges: each gets a problem answer, never a 500, and changes nothing."""

import base64
import json
from uuid import uuid4

import pytest

from e2e.helpers import (
    Client,
    assert_invalid,
    assert_problem,
    booking_body,
    create_resource,
    day,
    hours,
)


async def test_deeply_nested_json_is_a_malformed_request(client: Client) -> None:
    nested = "[" * 5000 + "]" * 5000

    response = await client.post(
        "/bookings", content=nested, headers={"content-type": "application/json"}
    )

    assert_problem(response, 400, "malformed-request")


@pytest.mark.parametrize(
    "end_time",
    ["9999-12-31T23:59:59.999999Z", "9000-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00"],
)
async def test_times_near_the_ends_of_the_calendar_are_refused(
    client: Client, clock, end_time: str
) -> None:
    resource = await create_resource(client)
    body = booking_body(resource["resource_id"], day(clock.now), day(clock.now) + hours(1))
    body["end_time"] = end_time

    response = await client.post("/bookings", json=body)

    assert_invalid(response)
    listing = await client.get("/bookings", params={"resource_id": resource["resource_id"]})
    assert listing.json()["items"] == []


@pytest.mark.parametrize(
    "at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1899-12-31T23:59:59Z"]
)
@pytest.mark.parametrize("path", ["/bookings", "/resources"])
async def test_forged_cursors_with_extreme_times_are_refused(
    client: Client, path: str, at: str
) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps([at, str(uuid4())]).encode()).decode()

    response = await client.get(path, params={"cursor": cursor})

    assert_invalid(response, "cursor")


@pytest.mark.parametrize("value", ["253402300800", "1798190527", "0.5", "2030-05-18"])
async def test_from_must_be_an_rfc3339_time_not_a_number(client: Client, value: str) -> None:
    resource = await create_resource(client)

    listing = await client.get("/bookings", params={"from": value})
    availability = await client.get(
        f"/resources/{resource['resource_id']}/availability",
        params={"from": value, "to": "2030-06-01T00:00:00Z"},
    )

    assert_invalid(listing, "from")
    assert_invalid(availability, "from")


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/resources"), ("PATCH", "/resources/{id}")],
    ids=["post", "patch"],
)
async def test_invalid_utf8_inside_a_json_string_is_a_malformed_request(
    client: Client, method: str, path: str
) -> None:
    resource = await create_resource(client)
    body = b'{"name": "\xff\xfe"}'

    response = await client.request(
        method,
        path.format(id=resource["resource_id"]),
        content=body,
        headers={"content-type": "application/json"},
    )

    assert_problem(response, 400, "malformed-request")
    after = await client.get(f"/resources/{resource['resource_id']}")
    assert after.json() == resource


async def test_bookable_times_are_refused_when_the_window_holds_too_many_candidates(
    client: Client, clock
) -> None:
    fine_grained = [
        (await client.post("/resources", json={"name": "R", "start_step_minutes": 1})).json()
        for _ in range(3)
    ]
    ids = [r["resource_id"] for r in fine_grained]
    start = day(clock.now)

    def window(days: int) -> dict[str, str | int]:
        return {"from": start.isoformat(), "to": (start + hours(24 * days)).isoformat()}

    one = f"/resources/{ids[0]}/availability"
    fine = await client.get(one, params=window(13) | {"duration": 30})
    too_many = await client.get(one, params=window(14) | {"duration": 30})
    two = await client.get(
        "/availability", params=window(6) | {"duration": 30, "resource_id": ids[:2]}
    )
    three = await client.get(
        "/availability", params=window(6) | {"duration": 30, "resource_id": ids}
    )

    assert fine.status_code == 200, fine.text
    assert len(fine.json()["bookable"]) == 13 * 24 * 60
    assert_invalid(too_many, "to")
    assert two.status_code == 200, two.text
    assert [len(item["bookable"]) for item in two.json()["items"]] == [6 * 24 * 60] * 2
    assert_invalid(three, "to")

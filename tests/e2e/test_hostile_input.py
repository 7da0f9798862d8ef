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

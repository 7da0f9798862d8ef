"""Helpers for the API end-to-end tests: times, fixtures-as-functions, problem-detail checks."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

from httpx import Response
from litestar.testing import AsyncTestClient

PROBLEM_JSON = "application/problem+json"
PLUS_TWO = timezone(timedelta(hours=2))
BOOKING_FIELDS = {
    "booking_id",
    "resource_id",
    "start_time",
    "end_time",
    "client_id",
    "status",
    "details",
    "created_at",
    "updated_at",
}

Client = AsyncTestClient  # type: ignore[type-arg]


def iso(at: datetime) -> str:
    """RFC 3339 in UTC with `Z`, the way the API answers."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_plus_two(at: datetime) -> str:
    """The same instant written with a `+02:00` offset."""
    return at.astimezone(PLUS_TWO).isoformat()


def day(now: datetime, days: int = 3) -> datetime:
    """Midnight (UTC) `days` ahead of `now`: a base for readable slots like `day + 10h`."""
    return (now + timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def assert_problem(response: Response, status: int, kind: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem of this status and `/problems/<kind>` type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{kind}", body
    assert body["status"] == status, body
    assert isinstance(body["title"], str), body
    assert body["title"], body
    assert isinstance(body["detail"], str), body
    assert body["detail"], body
    return body


def assert_invalid(response: Response, field: str | None = None) -> dict[str, Any]:
    """A 422 invalid-field problem, naming `field` among its errors when given."""
    body = assert_problem(response, 422, "invalid-field")
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


async def create_resource(client: Client, **fields: Any) -> dict[str, Any]:
    """Register a resource (name defaults to a unique one); returns its JSON."""
    response = await client.post("/resources", json={"name": f"Room {uuid4()}"} | fields)
    assert response.status_code == 201, response.text
    resource: dict[str, Any] = response.json()
    return resource


def booking_body(resource_id: str, start: datetime, end: datetime, **fields: Any) -> dict[str, Any]:
    body = {
        "resource_id": resource_id,
        "start_time": iso(start),
        "end_time": iso(end),
        "client_id": str(uuid4()),
    }
    return body | fields


async def book(
    client: Client,
    resource_id: str,
    start: datetime,
    end: datetime,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Create a booking that must succeed; returns its JSON."""
    body = booking_body(resource_id, start, end, **fields)
    response = await client.post("/bookings", json=body, headers=headers)
    assert response.status_code == 201, response.text
    booking: dict[str, Any] = response.json()
    return booking


async def bookings_of(client: Client, resource_id: str) -> list[dict[str, Any]]:
    """Every booking of a resource, as the listing shows them (one page is enough here)."""
    response = await client.get("/bookings", params={"resource_id": resource_id, "limit": 500})
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None
    items: list[dict[str, Any]] = page["items"]
    return items


async def walk(client: Client, path: str, params: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Follow `next_cursor` from the first page to the last; returns the pages."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(page["items"]) == params["limit"], "only the last page may be short"
        assert len(pages) < 10_000, "the cursor does not advance"


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def slots(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """`[{start_time, end_time, ...}]` as `(start, end)` pairs, for short comparisons."""
    return [(item["start_time"], item["end_time"]) for item in items]


def assert_rule(response: Response, rule: str, field: str) -> dict[str, Any]:
    """A 422 problem of type `/problems/<rule>` naming the rule and the field it faults."""
    body = assert_problem(response, 422, rule)
    assert (body["rule"], body["field"]) == (rule, field), body
    return body


async def new_resource(client: Client, **fields: Any) -> str:
    """Register a resource; returns its id."""
    resource_id: str = (await create_resource(client, **fields))["resource_id"]
    return resource_id


async def history_of(client: Client, booking_id: str) -> list[dict[str, Any]]:
    """A booking's history entries, oldest first."""
    response = await client.get(f"/bookings/{booking_id}/history")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def availability_of(
    client: Client, resource_id: str, start: datetime, end: datetime, duration: int | None = None
) -> dict[str, Any]:
    """A resource's availability over `[start, end)`, with `bookable` when `duration` is given."""
    params: dict[str, Any] = {"from": iso(start), "to": iso(end)}
    if duration is not None:
        params["duration"] = duration
    response = await client.get(f"/resources/{resource_id}/availability", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body

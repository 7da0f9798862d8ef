"""End to end over HTTP: `/resources`, availability, and what all routes share (errors, OpenAPI)."""

from datetime import datetime, timedelta
from uuid import UUID, uuid4

import pytest

from e2e.helpers import (
    Client,
    assert_invalid,
    assert_problem,
    book,
    create_resource,
    day,
    hours,
    iso,
    iso_plus_two,
    walk,
)


async def count_resources(client: Client) -> int:
    return sum(len(page) for page in await walk(client, "/resources", {"limit": 500}))


RESOURCE_FIELDS = {
    "resource_id",
    "name",
    "timezone",
    "capacity",
    "requires_approval",
    "details",
    "pending_holds_slot",
    "approval_window_minutes",
    "min_notice_minutes",
    "max_advance_days",
    "min_duration_minutes",
    "max_duration_minutes",
    "start_step_minutes",
    "buffer_before_minutes",
    "buffer_after_minutes",
    "change_notice_minutes",
    "cancel_notice_minutes",
    "opening_hours",
    "date_exceptions",
    "retired_at",
    "created_at",
    "updated_at",
}


# --- POST /resources ---------------------------------------------------------------------------


async def test_register_answers_201_with_location_and_defaults(client: Client, clock) -> None:
    response = await client.post("/resources", json={"name": "Room 1"})

    assert response.status_code == 201, response.text
    resource = response.json()
    assert set(resource) == RESOURCE_FIELDS
    UUID(resource["resource_id"])
    assert response.headers["location"] == f"/resources/{resource['resource_id']}"
    assert resource["name"] == "Room 1"
    assert resource["timezone"] == "UTC"
    assert resource["capacity"] == 1
    assert resource["requires_approval"] is False
    assert resource["details"] is None
    assert resource["created_at"] == iso(clock.now)
    assert resource["updated_at"] == resource["created_at"]


async def test_register_keeps_every_given_field(client: Client) -> None:
    fields = {
        "name": "Dr. Weiss",
        "timezone": "Europe/Berlin",
        "capacity": 3,
        "requires_approval": True,
        "details": "Second floor",
    }

    resource = await create_resource(client, **fields)

    assert {k: resource[k] for k in fields} == fields


async def test_location_leads_to_the_same_resource(client: Client) -> None:
    response = await client.post("/resources", json={"name": "Lab"})
    assert response.status_code == 201, response.text

    fetched = await client.get(response.headers["location"])

    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == response.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"name": "Room", "timezone": "Mars/Olympus_Mons"}, "timezone", id="bad-zone"),
        pytest.param({"name": "Room", "timezone": "../../etc/passwd"}, "timezone", id="path-zone"),
        pytest.param({"name": "Room", "timezone": ""}, "timezone", id="empty-zone"),
        pytest.param({"name": "Room", "capacity": 0}, "capacity", id="capacity-0"),
        pytest.param({"name": "Room", "capacity": -3}, "capacity", id="capacity-negative"),
        pytest.param({"name": "Room", "colour": "red"}, "body", id="unknown-field"),
        pytest.param({"name": ""}, "name", id="empty-name"),
        pytest.param({"name": "   "}, "name", id="blank-name"),
        pytest.param({"name": "x" * 201}, "name", id="long-name"),
        pytest.param({}, "body", id="no-name"),
        pytest.param({"name": 5}, "name", id="name-not-text"),
        pytest.param({"name": "Room", "requires_approval": "yes"}, "requires_approval", id="flag"),
        pytest.param({"name": "Room", "capacity": 1.5}, "capacity", id="capacity-float"),
        pytest.param(
            {"name": "Room", "capacity": "2"},
            "capacity",
            id="capacity-as-text",
        ),
        pytest.param(
            {"name": "Room", "requires_approval": 1},
            "requires_approval",
            id="flag-as-number",
        ),
    ],
)
async def test_register_refuses_invalid_fields(
    client: Client, body: dict[str, object], field: str
) -> None:
    before = await count_resources(client)

    response = await client.post("/resources", json=body)

    assert_invalid(response, field)
    assert await count_resources(client) == before, "a refused registration left a resource"


async def test_a_nul_character_in_a_resource_name_is_422(client: Client) -> None:
    before = await count_resources(client)

    response = await client.post("/resources", json={"name": "Room\u00001"})

    assert_invalid(response, "name")
    assert await count_resources(client) == before


@pytest.mark.parametrize(
    "content",
    [pytest.param(b"{not json", id="malformed"), pytest.param(b"", id="empty")],
)
async def test_register_refuses_a_body_that_is_not_json(client: Client, content: bytes) -> None:
    response = await client.post(
        "/resources", content=content, headers={"content-type": "application/json"}
    )

    assert_problem(response, 400, "malformed-request")


# --- GET /resources/{id} and GET /resources ----------------------------------------------------


async def test_fetch_answers_the_registered_resource(client: Client) -> None:
    created = await create_resource(client, timezone="America/New_York", capacity=2)

    response = await client.get(f"/resources/{created['resource_id']}")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == created


async def test_fetch_of_an_unknown_resource_is_404(client: Client) -> None:
    unknown = uuid4()

    response = await client.get(f"/resources/{unknown}")

    body = assert_problem(response, 404, "not-found")
    assert str(unknown) in body["detail"]


async def test_fetch_with_a_non_uuid_id_is_422(client: Client) -> None:
    response = await client.get("/resources/not-a-uuid")

    assert_invalid(response, "resource_id")


async def test_listing_walks_every_page_once_in_order(client: Client) -> None:
    mine = {(await create_resource(client))["resource_id"] for _ in range(5)}

    pages = await walk(client, "/resources", {"limit": 2})

    items = [r for page in pages for r in page]
    ids = [r["resource_id"] for r in items]
    assert len(pages) >= 3
    assert all(0 < len(page) <= 2 for page in pages)
    assert len(ids) == len(set(ids)), "a resource was listed twice"
    assert mine <= set(ids)
    keys = [(datetime.fromisoformat(r["created_at"]), UUID(r["resource_id"])) for r in items]
    assert keys == sorted(keys), "not in registration order"
    assert all(set(r) == RESOURCE_FIELDS for r in items)


async def test_listing_with_a_large_limit_answers_one_page(client: Client) -> None:
    mine = (await create_resource(client))["resource_id"]

    response = await client.get("/resources", params={"limit": 500})

    assert response.status_code == 200, response.text
    page = response.json()
    assert mine in [r["resource_id"] for r in page["items"]]


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"limit": 0}, id="limit-0"),
        pytest.param({"limit": 1000}, id="limit-1000"),
        pytest.param({"limit": "ten"}, id="limit-text"),
        pytest.param({"cursor": "garbage"}, id="cursor"),
    ],
)
async def test_listing_refuses_bad_paging(client: Client, params: dict[str, object]) -> None:
    response = await client.get("/resources", params=params)

    assert_invalid(response, next(iter(params)))


# --- GET /resources/{id}/availability ----------------------------------------------------------


async def test_availability_shows_busy_slots_and_the_free_time_between(
    client: Client, clock
) -> None:
    resource_id = (await create_resource(client))["resource_id"]
    d = day(clock.now)
    first = await book(client, resource_id, d + hours(10), d + hours(11))
    second = await book(client, resource_id, d + hours(12), d + hours(13))

    response = await client.get(
        f"/resources/{resource_id}/availability",
        params={"from": iso(d + hours(9)), "to": iso(d + hours(14))},
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "resource_id": resource_id,
        "from": iso(d + hours(9)),
        "to": iso(d + hours(14)),
        "capacity": 1,
        "busy": [
            {
                "booking_id": first["booking_id"],
                "start_time": iso(d + hours(10)),
                "end_time": iso(d + hours(11)),
                "status": "confirmed",
            },
            {
                "booking_id": second["booking_id"],
                "start_time": iso(d + hours(12)),
                "end_time": iso(d + hours(13)),
                "status": "confirmed",
            },
        ],
        "free": [
            {"start_time": iso(d + hours(9)), "end_time": iso(d + hours(10))},
            {"start_time": iso(d + hours(11)), "end_time": iso(d + hours(12))},
            {"start_time": iso(d + hours(13)), "end_time": iso(d + hours(14))},
        ],
        "closures": [],
        "bookable": None,
    }


async def test_availability_window_is_answered_in_utc(client: Client, clock) -> None:
    resource_id = (await create_resource(client))["resource_id"]
    d = day(clock.now)

    response = await client.get(
        f"/resources/{resource_id}/availability",
        params={"from": iso_plus_two(d + hours(9)), "to": iso_plus_two(d + hours(10))},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["from"], body["to"]) == (iso(d + hours(9)), iso(d + hours(10)))
    assert body["busy"] == []
    assert body["free"] == [{"start_time": body["from"], "end_time": body["to"]}]


async def test_availability_counts_a_slot_overlapping_the_window_edge(
    client: Client, clock
) -> None:
    resource_id = (await create_resource(client))["resource_id"]
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(8), d + hours(10))

    response = await client.get(
        f"/resources/{resource_id}/availability",
        params={"from": iso(d + hours(9)), "to": iso(d + hours(12))},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert [b["booking_id"] for b in body["busy"]] == [booking["booking_id"]]
    assert body["free"] == [{"start_time": iso(d + hours(10)), "end_time": iso(d + hours(12))}]


async def test_slots_touching_the_window_are_not_in_it(client: Client, clock) -> None:
    resource_id = (await create_resource(client))["resource_id"]
    d = day(clock.now)
    await book(client, resource_id, d + hours(8), d + hours(9))
    await book(client, resource_id, d + hours(12), d + hours(13))

    response = await client.get(
        f"/resources/{resource_id}/availability",
        params={"from": iso(d + hours(9)), "to": iso(d + hours(12))},
    )

    assert response.status_code == 200, response.text
    assert response.json()["busy"] == []
    assert response.json()["free"] == [
        {"start_time": iso(d + hours(9)), "end_time": iso(d + hours(12))}
    ]


async def test_cancelled_time_is_free_again(client: Client, clock) -> None:
    resource_id = (await create_resource(client))["resource_id"]
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))
    window = {"from": iso(d + hours(9)), "to": iso(d + hours(12))}
    before = await client.get(f"/resources/{resource_id}/availability", params=window)
    assert [b["booking_id"] for b in before.json()["busy"]] == [booking["booking_id"]]

    cancelled = await client.delete(f"/bookings/{booking['booking_id']}")
    assert cancelled.status_code == 200, cancelled.text

    after = await client.get(f"/resources/{resource_id}/availability", params=window)
    assert after.status_code == 200, after.text
    assert after.json()["busy"] == []
    assert after.json()["free"] == [{"start_time": window["from"], "end_time": window["to"]}]


async def test_pending_bookings_hold_time_too(client: Client, clock) -> None:
    resource_id = (await create_resource(client, requires_approval=True))["resource_id"]
    d = day(clock.now)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))

    response = await client.get(
        f"/resources/{resource_id}/availability",
        params={"from": iso(d + hours(10)), "to": iso(d + hours(11))},
    )

    assert response.status_code == 200, response.text
    assert response.json()["busy"] == [
        {
            "booking_id": booking["booking_id"],
            "start_time": iso(d + hours(10)),
            "end_time": iso(d + hours(11)),
            "status": "pending",
        }
    ]
    assert response.json()["free"] == []


async def test_capacity_two_is_full_only_where_two_overlap(client: Client, clock) -> None:
    resource_id = (await create_resource(client, capacity=2))["resource_id"]
    d = day(clock.now)
    first = await book(client, resource_id, d + hours(10), d + hours(12))
    second = await book(client, resource_id, d + hours(11), d + hours(13))

    response = await client.get(
        f"/resources/{resource_id}/availability",
        params={"from": iso(d + hours(9)), "to": iso(d + hours(14))},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["capacity"] == 2
    assert [b["booking_id"] for b in body["busy"]] == [first["booking_id"], second["booking_id"]]
    assert body["free"] == [
        {"start_time": iso(d + hours(9)), "end_time": iso(d + hours(11))},
        {"start_time": iso(d + hours(12)), "end_time": iso(d + hours(14))},
    ]
    # the free time can be booked; the full hour cannot
    third = await book(client, resource_id, d + hours(9), d + hours(11))
    refused = await client.post(
        "/bookings",
        json={
            "resource_id": resource_id,
            "start_time": iso(d + hours(11)),
            "end_time": iso(d + hours(12)),
            "client_id": str(uuid4()),
        },
    )
    problem = assert_problem(refused, 409, "slot-taken")
    assert set(problem["conflicting_booking_ids"]) >= {first["booking_id"], second["booking_id"]}
    assert third["booking_id"] not in problem["conflicting_booking_ids"]


@pytest.mark.parametrize(
    ("window", "field"),
    [
        pytest.param({"from": 10, "to": 10}, "to", id="empty-window"),
        pytest.param({"from": 11, "to": 10}, "to", id="to-before-from"),
        pytest.param({"from": 10, "to": 10 + 366 * 24 + 1}, "to", id="more-than-366-days"),
    ],
)
async def test_availability_refuses_bad_windows(
    client: Client, clock, window: dict[str, int], field: str
) -> None:
    resource_id = (await create_resource(client))["resource_id"]
    d = day(clock.now)
    params = {k: iso(d + hours(v)) for k, v in window.items()}

    response = await client.get(f"/resources/{resource_id}/availability", params=params)

    assert_invalid(response, field)


async def test_availability_allows_exactly_366_days(client: Client, clock) -> None:
    resource_id = (await create_resource(client))["resource_id"]
    d = day(clock.now)

    response = await client.get(
        f"/resources/{resource_id}/availability",
        params={"from": iso(d), "to": iso(d + timedelta(days=366))},
    )

    assert response.status_code == 200, response.text
    assert response.json()["free"] == [
        {"start_time": iso(d), "end_time": iso(d + timedelta(days=366))}
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param(
            {"from": "2030-01-01T10:00:00", "to": "2030-01-02T10:00:00Z"}, "from", id="naive-from"
        ),
        pytest.param(
            {"from": "2030-01-01T10:00:00Z", "to": "2030-01-02T10:00:00"}, "to", id="naive-to"
        ),
        pytest.param({"to": "2030-01-02T10:00:00Z"}, None, id="missing-from"),
        pytest.param({"from": "2030-01-01T10:00:00Z"}, None, id="missing-to"),
        pytest.param({}, None, id="missing-both"),
        pytest.param({"from": "soon", "to": "2030-01-02T10:00:00Z"}, None, id="not-a-time"),
    ],
)
async def test_availability_refuses_bad_times(
    client: Client, params: dict[str, str], field: str | None
) -> None:
    resource_id = (await create_resource(client))["resource_id"]

    response = await client.get(f"/resources/{resource_id}/availability", params=params)

    assert_invalid(response, field)


async def test_availability_names_the_query_parameter_of_a_malformed_time(client: Client) -> None:
    resource_id = (await create_resource(client))["resource_id"]

    response = await client.get(
        f"/resources/{resource_id}/availability",
        params={"from": "soon", "to": "2030-01-02T10:00:00Z"},
    )

    assert_invalid(response, "from")


async def test_availability_of_an_unknown_resource_is_404(client: Client) -> None:
    response = await client.get(
        f"/resources/{uuid4()}/availability",
        params={"from": "2030-01-01T10:00:00Z", "to": "2030-01-02T10:00:00Z"},
    )

    assert_problem(response, 404, "not-found")


async def test_availability_with_a_non_uuid_id_is_422(client: Client) -> None:
    response = await client.get(
        "/resources/nope/availability",
        params={"from": "2030-01-01T10:00:00Z", "to": "2030-01-02T10:00:00Z"},
    )

    assert_invalid(response, "resource_id")


# --- what every route shares -------------------------------------------------------------------


async def test_openapi_document_is_served_and_lists_the_routes(client: Client) -> None:
    response = await client.get("/schema/openapi.json")

    assert response.status_code == 200, response.text
    document = response.json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in (
        "/bookings",
        "/bookings/{booking_id}",
        "/bookings/{booking_id}/history",
        "/resources",
        "/resources/{resource_id}",
        "/resources/{resource_id}/availability",
        "/resources/{resource_id}/closures",
        "/resources/{resource_id}/closures/{closure_id}",
        "/availability",
        "/bookings/{booking_id}/approve",
        "/bookings/{booking_id}/reject",
        "/bookings/{booking_id}/complete",
        "/bookings/{booking_id}/no-show",
    ):
        assert path in paths, path
    assert {"get", "post"} <= set(paths["/bookings"])
    assert {"get", "put", "delete"} <= set(paths["/bookings/{booking_id}"])
    assert {"get", "patch", "delete"} <= set(paths["/resources/{resource_id}"])
    update = paths["/resources/{resource_id}"]["patch"]["requestBody"]["content"]
    schema = update["application/json"]["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert {"capacity", "opening_hours", "min_notice_minutes"} <= set(schema["properties"])
    # `POST /bookings` answers with a response of its own making: it is still documented.
    create = paths["/bookings"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    created = create["responses"]["201"]["content"]["application/json"]["schema"]
    assert (body["$ref"], created["$ref"]) == (
        "#/components/schemas/BookingCreate",
        "#/components/schemas/BookingView",
    )
    assert "X-Actor" in {parameter["name"] for parameter in create["parameters"]}


async def test_unknown_route_is_a_404_problem(client: Client) -> None:
    response = await client.get("/no/such/route")

    assert_problem(response, 404, "not-found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("PATCH", "/bookings", id="patch-bookings"),
        pytest.param("DELETE", "/resources", id="delete-resources"),
        pytest.param("POST", f"/bookings/{uuid4()}", id="post-booking"),
        pytest.param("PUT", f"/resources/{uuid4()}", id="put-resource"),
    ],
)
async def test_wrong_method_is_a_405_problem(client: Client, method: str, path: str) -> None:
    response = await client.request(method, path)

    assert_problem(response, 405, "method-not-allowed")

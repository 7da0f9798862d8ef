"""`/subscriptions` over HTTP: subscribe, inspect, list, unsubscribe, redrive, replay, and every
refusal as a problem answer. Delivery itself is tested in tests/integration/test_webhooks.py.

The app is `create_app`, with the subscriptions controller registered on it if it lacks it.
Receiver URLs point at a closed port on localhost; every subscription made here is deleted
after its test.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.settings import Settings
from api.subscriptions import SubscriptionController
from e2e.helpers import Client, assert_invalid, assert_problem, iso, new_resource, walk
from events.resource import EVENT_TYPES
from events.store import EventStore

URL = "http://127.0.0.1:9/hooks/bookings"
"""Nothing listens there: should anything deliver, it fails at once and reaches nobody."""
VIEW_FIELDS = {
    "subscription_id",
    "url",
    "event_types",
    "status",
    "position",
    "failures",
    "last_error",
    "failed_position",
    "next_attempt_at",
    "created_at",
    "updated_at",
}
NOW = datetime.now(UTC).replace(microsecond=0)
TOO_FAR = 2**63

Subscribe = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[Client]:
    app = create_app(settings, clock=lambda: NOW)
    if not any(route.path == "/subscriptions" for route in app.routes):  # not yet in create_app
        app.register(SubscriptionController)
    async with AsyncTestClient(app) as client:
        yield client


@pytest.fixture
async def made(pool: asyncpg.Pool) -> AsyncIterator[list[str]]:
    """Ids of the subscriptions a test made; deleted after it."""
    ids: list[str] = []
    yield ids
    await pool.execute("DELETE FROM subscriptions WHERE subscription_id = ANY($1::uuid[])", ids)


@pytest.fixture
def subscribe(api: Client, made: list[str]) -> Subscribe:
    async def post(**body: Any) -> dict[str, Any]:
        response = await api.post("/subscriptions", json={"url": URL} | body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        made.append(created["subscription_id"])
        return created

    return post


async def newest_position(api: Client, store: EventStore) -> int:
    """Record an event (a new resource) and return its feed position."""
    resource_id = await new_resource(api)
    recorded = await store.read_stream(UUID(resource_id))
    return recorded[-1].position


async def kill(pool: asyncpg.Pool, subscription_id: str, failed_position: int) -> None:
    """Put the subscription in the dead-letter state, as eight failed deliveries would."""
    await pool.execute(
        """UPDATE subscriptions SET status = 'dead', failures = 8, last_error = 'HTTP 500',
                                    failed_position = $2
           WHERE subscription_id = $1""",
        subscription_id,
        failed_position,
    )


# --- subscribe ----------------------------------------------------------------------------------


async def test_subscribing_answers_201_with_location_and_the_secret_shown_only_then(
    api: Client, made: list[str]
) -> None:
    response = await api.post("/subscriptions", json={"url": URL})

    assert response.status_code == 201, response.text
    created = response.json()
    made.append(created["subscription_id"])
    assert set(created) == VIEW_FIELDS | {"secret"}
    assert response.headers["location"] == f"/subscriptions/{created['subscription_id']}"
    assert len(created["secret"]) >= 32
    assert created["url"] == URL
    assert created["event_types"] is None
    assert (created["status"], created["failures"]) == ("active", 0)
    assert (created["last_error"], created["failed_position"]) == (None, None)
    assert created["next_attempt_at"] == created["created_at"] == iso(NOW)

    fetched = await api.get(response.headers["location"])
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == {k: v for k, v in created.items() if k != "secret"}


async def test_each_subscription_gets_its_own_secret_unless_one_is_given(
    subscribe: Subscribe,
) -> None:
    first, second = await subscribe(), await subscribe()
    chosen = await subscribe(secret="my-own-secret-of-some-length")

    assert first["secret"] != second["secret"]
    assert chosen["secret"] == "my-own-secret-of-some-length"


async def test_by_default_delivery_starts_after_the_newest_event(
    api: Client, store: EventStore, subscribe: Subscribe
) -> None:
    older = await newest_position(api, store)
    newest = await newest_position(api, store)

    created = await subscribe()

    assert older < newest

    assert created["position"] == newest


async def test_after_chooses_where_delivery_starts(
    api: Client, store: EventStore, subscribe: Subscribe
) -> None:
    position = await newest_position(api, store)
    await new_resource(api)

    assert (await subscribe(after=0))["position"] == 0
    assert (await subscribe(after=position))["position"] == position


async def test_event_types_are_kept_once_each(subscribe: Subscribe) -> None:
    created = await subscribe(
        event_types=["booking.created", "booking.cancelled", "booking.created"]
    )

    assert created["event_types"] == ["booking.cancelled", "booking.created"]


async def test_every_known_event_type_can_be_chosen(subscribe: Subscribe) -> None:
    created = await subscribe(event_types=list(EVENT_TYPES.values()))

    assert created["event_types"] == sorted(EVENT_TYPES.values())


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/bookings?tenant=7",
        "http://[::1]:8080/hooks",
        "HTTPS://user:password@example.com:443/",
        "https://example.com/" + "a" * 1980,
    ],
)
async def test_http_and_https_urls_are_accepted(subscribe: Subscribe, url: str) -> None:
    assert (await subscribe(url=url))["url"] == url


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/hooks"}, "url"),
        ({"url": "mailto:ops@example.com"}, "url"),
        ({"url": "example.com/hooks"}, "url"),
        ({"url": "//example.com/hooks"}, "url"),
        ({"url": "http://"}, "url"),
        ({"url": "http:///hooks"}, "url"),
        ({"url": "http://example.com:0/"}, "url"),
        ({"url": "http://example.com:99999/"}, "url"),
        ({"url": "http://example.com:port/"}, "url"),
        ({"url": "http://[::1/"}, "url"),
        ({"url": "http://example.com/a b"}, "url"),
        ({"url": "http://example.com/\u0000"}, "url"),
        ({"url": "https://example.com/" + "a" * 1981}, "url"),
        ({"url": ""}, "url"),
        ({"url": 5}, "url"),
        ({"url": None}, "url"),
        ({}, None),
        ({"event_types": ["booking.created"]}, None),
        ({"url": URL, "event_types": ["booking.nope"]}, "event_types"),
        ({"url": URL, "event_types": ["booking.created", "Booking.Created"]}, "event_types"),
        ({"url": URL, "event_types": []}, "event_types"),
        ({"url": URL, "event_types": "booking.created"}, "event_types"),
        ({"url": URL, "event_types": [1]}, "event_types[0]"),
        ({"url": URL, "secret": "too short"}, "secret"),
        ({"url": URL, "secret": "with spaces in it, long enough"}, "secret"),
        ({"url": URL, "secret": 1234567890123456789}, "secret"),
        ({"url": URL, "after": -1}, "after"),
        ({"url": URL, "after": "0"}, "after"),
        ({"url": URL, "after": 1.5}, "after"),
        ({"url": URL, "after": TOO_FAR}, "after"),
        ({"url": URL, "after": 2**62}, "after"),
        ({"url": URL, "active": True}, None),
    ],
    ids=repr,
)
async def test_a_bad_subscription_is_refused_and_nothing_is_subscribed(
    api: Client, pool: asyncpg.Pool, body: dict[str, Any], field: str | None
) -> None:
    before = await pool.fetchval("SELECT count(*) FROM subscriptions")

    response = await api.post("/subscriptions", json=body)

    assert_invalid(response, field)
    assert await pool.fetchval("SELECT count(*) FROM subscriptions") == before


@pytest.mark.parametrize("content", [b"{", b"", b"\xff\xfe"])
async def test_a_body_that_is_not_json_is_a_malformed_request(api: Client, content: bytes) -> None:
    response = await api.post(
        "/subscriptions", content=content, headers={"content-type": "application/json"}
    )

    assert_problem(response, 400, "malformed-request")


# --- inspect, list, unsubscribe -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ""),
        ("DELETE", ""),
        ("POST", "/redrive"),
        ("POST", "/replay?after=0"),
    ],
)
async def test_an_unknown_subscription_is_not_found(api: Client, method: str, path: str) -> None:
    unknown = uuid4()

    response = await api.request(method, f"/subscriptions/{unknown}{path}")

    body = assert_problem(response, 404, "not-found")
    assert str(unknown) in body["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", ""), ("DELETE", ""), ("POST", "/redrive"), ("POST", "/replay?after=0")],
)
async def test_a_malformed_id_is_refused(api: Client, method: str, path: str) -> None:
    response = await api.request(method, f"/subscriptions/not-a-uuid{path}")

    assert_invalid(response, "subscription_id")


async def test_subscriptions_are_listed_in_creation_order_a_page_at_a_time(
    api: Client, subscribe: Subscribe
) -> None:
    mine = [(await subscribe())["subscription_id"] for _ in range(3)]

    pages = await walk(api, "/subscriptions", {"limit": 2})

    listed = [item["subscription_id"] for page in pages for item in page]
    assert [s for s in listed if s in mine] == sorted(mine)  # same creation time: by id
    assert len(listed) == len(set(listed))
    assert all(set(item) == VIEW_FIELDS for page in pages for item in page)


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 501}, {"limit": "x"}, {"cursor": "forged"}], ids=repr
)
async def test_a_bad_page_request_is_refused(api: Client, params: dict[str, Any]) -> None:
    response = await api.get("/subscriptions", params=params)

    assert_invalid(response)


async def test_an_unsubscribed_subscription_is_gone(api: Client, subscribe: Subscribe) -> None:
    created = await subscribe()
    path = f"/subscriptions/{created['subscription_id']}"

    response = await api.delete(path)

    assert response.status_code == 204, response.text
    assert_problem(await api.get(path), 404, "not-found")
    assert_problem(await api.delete(path), 404, "not-found")
    pages = await walk(api, "/subscriptions", {"limit": 500})
    assert created["subscription_id"] not in [i["subscription_id"] for p in pages for i in p]


# --- dead letters: inspect and redrive ----------------------------------------------------------


async def test_a_dead_letter_shows_why_and_where_and_a_redrive_revives_it(
    api: Client, pool: asyncpg.Pool, store: EventStore, subscribe: Subscribe
) -> None:
    position = await newest_position(api, store)
    created = await subscribe(after=0)
    path = f"/subscriptions/{created['subscription_id']}"
    await kill(pool, created["subscription_id"], position)

    dead = (await api.get(path)).json()
    assert (dead["status"], dead["failures"]) == ("dead", 8)
    assert (dead["last_error"], dead["failed_position"]) == ("HTTP 500", position)
    assert dead["position"] == 0  # nothing skipped

    response = await api.post(f"{path}/redrive")

    assert response.status_code == 200, response.text
    revived = response.json()
    assert set(revived) == VIEW_FIELDS
    assert (revived["status"], revived["failures"]) == ("active", 0)
    assert revived["next_attempt_at"] == iso(NOW)
    assert revived["position"] == 0  # it resumes at the event that failed
    assert (revived["last_error"], revived["failed_position"]) == ("HTTP 500", position)


async def test_redriving_an_active_subscription_changes_nothing_but_the_next_attempt(
    api: Client, subscribe: Subscribe
) -> None:
    created = await subscribe()

    response = await api.post(f"/subscriptions/{created['subscription_id']}/redrive")

    assert response.status_code == 200, response.text
    assert response.json() == {k: v for k, v in created.items() if k != "secret"}


# --- replay -------------------------------------------------------------------------------------


async def test_a_replay_moves_the_cursor_to_any_position_of_the_log(
    api: Client, pool: asyncpg.Pool, store: EventStore, subscribe: Subscribe
) -> None:
    position = await newest_position(api, store)
    created = await subscribe()
    path = f"/subscriptions/{created['subscription_id']}/replay"
    await kill(pool, created["subscription_id"], position)

    back = await api.post(path, params={"after": position})
    start = await api.post(path, params={"after": 0})

    assert back.status_code == 200, back.text
    assert (back.json()["position"], back.json()["status"]) == (position, "active")
    assert back.json()["failures"] == 0
    assert start.status_code == 200, start.text
    assert start.json()["position"] == 0
    fetched = (await api.get(f"/subscriptions/{created['subscription_id']}")).json()
    assert fetched["position"] == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"after": 2**62}, "after"),
        ({"after": -1}, "after"),
        ({"after": "abc"}, "after"),
        ({"after": "1.5"}, "after"),
        ({"after": TOO_FAR}, "after"),
        ({}, None),
    ],
    ids=repr,
)
async def test_a_replay_to_a_position_the_log_does_not_have_is_refused(
    api: Client, subscribe: Subscribe, query: dict[str, Any], field: str | None
) -> None:
    created = await subscribe()
    path = f"/subscriptions/{created['subscription_id']}"

    response = await api.post(f"{path}/replay", params=query)

    assert_invalid(response, field)
    assert (await api.get(path)).json()["position"] == created["position"]


# --- documentation ------------------------------------------------------------------------------


async def test_the_openapi_document_describes_the_subscription_endpoints(api: Client) -> None:
    response = await api.get("/schema/openapi.json")

    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    assert {"post", "get"} <= set(paths["/subscriptions"])
    assert {"get", "delete"} <= set(paths["/subscriptions/{subscription_id}"])
    assert "post" in paths["/subscriptions/{subscription_id}/redrive"]
    assert "post" in paths["/subscriptions/{subscription_id}/replay"]

"""End to end over HTTP: projection lag (`GET /projections`) and the activity a resource saw
(`GET /resources/{id}/activity`), a background read model that follows the log a moment behind.

Exact lag needs a log nobody else writes to and a projection nobody else advances: other tests
write to the shared database, and the feed holds back events newer than any transaction still
running on the same server. So most tests here run an
app of their own (background projection off: `project_seconds=0`) on a PostgreSQL server of
their own, and advance the projection themselves.
"""

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.database import open_pool
from api.settings import Settings
from commands.resource import TRANSCODINGS
from e2e.helpers import Client, assert_invalid, assert_problem, book, hours, new_resource
from events.store import EventStore, new_mapper
from projections import activity, background
from servers import free_port, new_database, private_postgres, wait_until_up

TODAY = datetime(2030, 6, 1, 10, 0, tzinfo=UTC)
"""The module app's clock starts here: every event below happens on this day or the next."""
D0, D1, D2 = date(2030, 6, 1), date(2030, 6, 2), date(2030, 6, 3)
SLOTS = datetime(2030, 7, 1, tzinfo=UTC)


class MovableClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def own_server() -> Iterator[str]:
    """A PostgreSQL server of the module's own. The feed hands out only events older than every
    transaction still running anywhere on the server, so the session's shared app, writing and
    projecting next door, could hold back the exact counts checked here."""
    with private_postgres("bookings-operations-") as url:
        yield url


@pytest.fixture(scope="module")
async def own_url(own_server: str) -> str:
    """A database of a name of its own there (projections under test tell it by that name)."""
    return await new_database(own_server, "operations")


@pytest.fixture(scope="module")
def own_clock() -> MovableClock:
    return MovableClock(TODAY)


@pytest.fixture(scope="module")
async def own(own_url: str, own_clock: MovableClock) -> AsyncIterator[Client]:
    """A client of an app on the module's database that never projects in the background."""
    settings = Settings(database_url=own_url, settle_seconds=0, project_seconds=0)
    async with AsyncTestClient(create_app(settings, clock=own_clock)) as client:
        yield client


@pytest.fixture(scope="module")
async def own_pool(own_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The test's own way into the module's database (the app's pool lives on its own loop)."""
    pool = await open_pool(own_url, Settings(database_url=own_url))
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def advance(own_pool: asyncpg.Pool) -> Callable[[], Awaitable[int]]:
    """Advances `activity` on the module's database as a server's background loop would."""
    store = EventStore(own_pool, new_mapper(*TRANSCODINGS))

    async def catch_up() -> int:
        return await background.catch_up(own_pool, store, activity)

    return catch_up


Advance = Callable[[], Awaitable[int]]


async def lag_of(client: Client | httpx.AsyncClient, base: str = "") -> dict[str, Any]:
    """`GET /projections`, checked for shape: {"head": ..., name: item, ...}."""
    response = await client.get(f"{base}/projections")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"head", "items"}, body
    assert [item["name"] for item in body["items"]] == ["core", "activity"], body
    for item in body["items"]:
        assert set(item) == {"name", "kind", "position", "behind"}, item
    core, background_item = body["items"]
    assert (core["kind"], background_item["kind"]) == ("inline", "background"), body
    assert core["position"] == body["head"], "the inline projection is always at the head"
    assert core["behind"] == 0, body
    return {"head": body["head"]} | {item["name"]: item for item in body["items"]}


async def newest_position(pool: asyncpg.Pool) -> int:
    position: int = await pool.fetchval("SELECT max(position) FROM events")
    return position or 0


# --- GET /projections --------------------------------------------------------------------------


async def test_an_empty_log_has_everything_at_zero(own: Client) -> None:
    # (the module's first test: its database holds no event yet)
    lag = await lag_of(own)

    assert lag["head"] == 0
    assert lag["core"] == {"name": "core", "kind": "inline", "position": 0, "behind": 0}
    assert lag["activity"] == {"name": "activity", "kind": "background", "position": 0, "behind": 0}


async def test_behind_counts_exactly_the_events_not_yet_projected(
    own: Client, own_pool: asyncpg.Pool, advance: Advance
) -> None:
    await advance()
    before = await lag_of(own)
    assert before["activity"]["behind"] == 0
    assert before["activity"]["position"] == before["head"]

    # when: four events are written (registered, 2 created, cancelled) and not yet projected
    resource_id = await new_resource(own)
    first = await book(own, resource_id, SLOTS, SLOTS + hours(1))
    await book(own, resource_id, SLOTS + hours(2), SLOTS + hours(3))
    cancelled = await own.delete(f"/bookings/{first['booking_id']}")
    assert cancelled.status_code == 200, cancelled.text

    behind = await lag_of(own)
    assert behind["head"] == await newest_position(own_pool)
    assert behind["head"] > before["head"]
    assert behind["activity"]["position"] == before["head"]
    assert behind["activity"]["behind"] == 4

    # when: the projection catches up
    assert await advance() == 4

    caught_up = await lag_of(own)
    assert caught_up["head"] == behind["head"]
    assert caught_up["activity"] == {
        "name": "activity",
        "kind": "background",
        "position": caught_up["head"],
        "behind": 0,
    }

    # ...and the next event is the one it is behind again
    renamed = await own.patch(f"/resources/{resource_id}", json={"name": f"Renamed {uuid4()}"})
    assert renamed.status_code == 200, renamed.text
    again = await lag_of(own)
    assert again["activity"]["behind"] == 1
    assert again["activity"]["position"] == caught_up["head"]
    await advance()


async def test_an_app_projects_in_the_background_on_its_own(
    client: Client, settings: Settings, clock: Any
) -> None:
    # given: an event, and an app that projects every 50 ms (the session's app does not, so
    # that no background transaction holds the feed back in other tests)
    await new_resource(client)
    projecting = dataclasses.replace(settings, project_seconds=0.05)

    # then: without anyone's help, activity reaches the head (bounded wait)
    async with AsyncTestClient(create_app(projecting, clock=clock)) as app:
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            lag = await lag_of(app)
            if lag["activity"]["behind"] == 0 and lag["activity"]["position"] == lag["head"]:
                break
            assert asyncio.get_running_loop().time() < deadline, lag
            await asyncio.sleep(0.1)


# --- GET /resources/{id}/activity --------------------------------------------------------------


async def activity_of(client: Client, resource_id: str, start: date, end: date) -> Any:
    response = await client.get(
        f"/resources/{resource_id}/activity",
        params={"from": start.isoformat(), "to": end.isoformat()},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"resource_id", "items"}, body
    assert body["resource_id"] == resource_id
    return body["items"]


def counts(day: date, **by_type: int) -> list[dict[str, Any]]:
    """Expected items of one day: `booking_created=3` stands for type `booking.created`."""
    return [
        {"day": day.isoformat(), "type": name.replace("_", ".", 1), "count": n}
        for name, n in sorted(by_type.items())
    ]


async def ok(response: httpx.Response) -> None:
    assert response.status_code in {200, 201}, response.text


async def test_activity_counts_each_days_events_by_type(
    own: Client, own_clock: MovableClock, advance: Advance
) -> None:
    own_clock.now = TODAY
    # given: on the first day, a resource needing approval is registered and gets 3 requests,
    # one approved, one rejected, one cancelled; a second resource is registered
    owned = await new_resource(own, requires_approval=True)
    other = await new_resource(own)
    b1, b2, b3 = [
        (await book(own, owned, SLOTS + hours(i), SLOTS + hours(i + 1)))["booking_id"]
        for i in range(3)
    ]
    await ok(await own.post(f"/bookings/{b1}/approve"))
    await ok(await own.post(f"/bookings/{b2}/reject"))
    await ok(await own.delete(f"/bookings/{b3}"))
    # ...on the next day, a fourth is requested and approved, the first moves to the other
    # resource and the resource is renamed
    own_clock.now = TODAY + timedelta(days=1)
    b4 = (await book(own, owned, SLOTS + hours(5), SLOTS + hours(6)))["booking_id"]
    await ok(await own.post(f"/bookings/{b4}/approve"))
    await ok(await own.put(f"/bookings/{b1}", json={"resource_id": other}))
    await ok(await own.patch(f"/resources/{owned}", json={"name": f"Renamed {uuid4()}"}))

    # The read model follows the log: nothing shows before the projection has caught up.
    assert await activity_of(own, owned, D0, D2) == []
    assert await advance() == 13

    day_one = counts(
        D0,
        resource_registered=1,
        booking_created=3,
        booking_approved=1,
        booking_rejected=1,
        booking_cancelled=1,
    )
    day_two = counts(
        D1,
        booking_created=1,
        booking_approved=1,
        booking_moved_out=1,
        resource_updated=1,
    )
    assert await activity_of(own, owned, D0, D2) == day_one + day_two
    # `to` is the day after the last: each day alone
    assert await activity_of(own, owned, D0, D1) == day_one
    assert await activity_of(own, owned, D1, D2) == day_two
    assert await activity_of(own, owned, D2, D2 + timedelta(days=366)) == []
    # Another resource's activity is its own.
    assert await activity_of(own, other, D0, D2) == (
        counts(D0, resource_registered=1) + counts(D1, booking_moved_in=1)
    )


async def test_activity_day_follows_the_event_time_in_utc(
    own: Client, own_clock: MovableClock, advance: Advance
) -> None:
    own_clock.now = datetime(2030, 6, 10, 23, 59, 59, tzinfo=UTC)
    resource_id = await new_resource(own, timezone="Europe/Berlin")  # 01:59 on the 11th there
    own_clock.now += timedelta(seconds=1)
    await book(own, resource_id, SLOTS, SLOTS + hours(1))
    await advance()

    items = await activity_of(own, resource_id, date(2030, 6, 10), date(2030, 6, 12))

    assert items == counts(date(2030, 6, 10), resource_registered=1) + counts(
        date(2030, 6, 11), booking_created=1
    )


async def test_activity_day_is_the_utc_day_whatever_offset_the_clock_keeps(
    own: Client, own_clock: MovableClock, advance: Advance
) -> None:
    # 23:30 UTC on the 20th, as a clock on UTC+2 tells it (01:30 on the 21st)
    own_clock.now = datetime(2030, 6, 21, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    resource_id = await new_resource(own)
    await advance()

    items = await activity_of(own, resource_id, date(2030, 6, 20), date(2030, 6, 22))

    assert items == counts(date(2030, 6, 20), resource_registered=1)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2030-13-01", "to": "2030-06-02"}, "from"),
        ({"from": "yesterday", "to": "2030-06-02"}, "from"),
        ({"from": "2030-06-01T00:00:00Z", "to": "2030-06-02"}, "from"),
        ({"from": "2030-06-01", "to": "2030-06-31"}, "to"),
        ({"from": "2030-06-02", "to": "2030-06-01"}, "to"),  # reversed
        ({"from": "2030-06-01", "to": "2030-06-01"}, "to"),  # empty
        ({"from": "2030-06-01", "to": "2031-06-03"}, "to"),  # 367 days
    ],
    ids=["bad-month", "not-a-date", "a-time", "bad-day", "reversed", "empty", "too-long"],
)
async def test_activity_refuses_a_bad_window_naming_the_field(
    own: Client, params: dict[str, str], field: str
) -> None:
    resource_id = await new_resource(own)

    response = await own.get(f"/resources/{resource_id}/activity", params=params)

    assert_invalid(response, field)


@pytest.mark.parametrize("missing", ["from", "to"])
async def test_activity_needs_both_ends_of_the_window(own: Client, missing: str) -> None:
    resource_id = await new_resource(own)
    params = {"from": "2030-06-01", "to": "2030-06-02"}
    del params[missing]

    response = await own.get(f"/resources/{resource_id}/activity", params=params)

    assert f"'{missing}'" in assert_invalid(response)["detail"]


async def test_activity_takes_a_window_of_up_to_366_days(own: Client) -> None:
    resource_id = await new_resource(own)

    response = await own.get(
        f"/resources/{resource_id}/activity", params={"from": "2030-06-01", "to": "2031-06-02"}
    )

    assert response.status_code == 200, response.text


async def test_activity_of_an_unknown_resource_is_404(own: Client) -> None:
    response = await own.get(
        f"/resources/{uuid4()}/activity", params={"from": "2030-06-01", "to": "2030-06-02"}
    )

    assert_problem(response, 404, "not-found")


async def test_activity_of_a_malformed_resource_id_is_refused(own: Client) -> None:
    response = await own.get(
        "/resources/not-a-uuid/activity", params={"from": "2030-06-01", "to": "2030-06-02"}
    )

    assert_invalid(response, "resource_id")


# --- real server processes ---------------------------------------------------------------------


def serve(url: str, project_seconds: str) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": url,
        "BOOKINGS_PROJECT_SECONDS": project_seconds,
        "BOOKINGS_SETTLE_SECONDS": "0",
    }
    command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port)]
    process = subprocess.Popen([*command, "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return base, process


@pytest.fixture
def idle_server(own_url: str) -> Iterator[str]:
    """A server that projects once as it starts, then not for an hour."""
    base, process = serve(own_url, "3600")
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_a_server_shows_its_lag_and_another_process_catches_it_up(
    own_url: str, idle_server: str
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        # given: the idle server has done its first round
        deadline = asyncio.get_running_loop().time() + 30
        while (lag := await lag_of(http, idle_server))["activity"]["behind"]:
            assert asyncio.get_running_loop().time() < deadline, lag
            await asyncio.sleep(0.1)
        r = await http.post(f"{idle_server}/resources", json={"name": "Seen late"})
        assert r.status_code == 201, r.text
        resource_id = r.json()["resource_id"]
        for i in range(2):
            start = SLOTS + hours(10 + i)
            body = {
                "resource_id": resource_id,
                "start_time": start.isoformat(),
                "end_time": (start + hours(1)).isoformat(),
                "client_id": str(uuid4()),
            }
            await ok(await http.post(f"{idle_server}/bookings", json=body))

        # then: it tells how far its background projection is behind
        lag = await lag_of(http, idle_server)
        assert lag["activity"]["behind"] == 3
        assert lag["activity"]["position"] < lag["head"]

        # when: a second server starts, projecting every 0.1 s
        base, process = serve(own_url, "0.1")
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while (lag := await lag_of(http, idle_server))["activity"]["behind"]:
                assert asyncio.get_running_loop().time() < deadline, lag
                await asyncio.sleep(0.1)
            today = datetime.now(UTC).date()
            seen = await http.get(
                f"{base}/resources/{resource_id}/activity",
                params={
                    "from": str(today - timedelta(days=1)),
                    "to": str(today + timedelta(days=2)),
                },
            )
        finally:
            process.terminate()
            process.wait(timeout=30)

    # then: the idle server reports no lag any more (another process projected), and the
    # activity is there
    assert lag["activity"]["position"] == lag["head"]
    assert seen.status_code == 200, seen.text
    by_type = Counter[str]()
    for item in seen.json()["items"]:
        by_type[item["type"]] += item["count"]
    assert by_type == {"resource.registered": 1, "booking.created": 2}

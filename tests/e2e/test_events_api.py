"""End to end over HTTP: the global feed (`GET /events`, by page and by long poll), its
Server-Sent Events stream (`GET /events/stream`) and a resource's history.

Reading on from a position: `after` is the position of the last event seen. The feed's order is
commit-safe (nothing can commit before a reader's cursor), so a reader that has read everything
up to an event continues with exactly what came after it. Waiting requests (long polls, streams)
go to a real `bookings serve` process: the in-process test client blocks its event loop while a
request runs.
"""

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from commands.policy import RULE_NAMES
from e2e.helpers import (
    Client,
    assert_invalid,
    assert_problem,
    book,
    booking_body,
    create_resource,
    day,
    hours,
    iso,
    new_resource,
)
from events.feed import event_id
from servers import free_port, wait_until_up

FEED_FIELDS = {
    "event_id",
    "position",
    "type",
    "stream_id",
    "version",
    "occurred_at",
    "actor",
    "data",
}
HISTORY_FIELDS = {"position", "version", "type", "occurred_at", "actor", "data"}
OWNER = {"X-Actor-Role": "owner"}
STEP = timedelta(seconds=5)
"""How far the clock moves between two changes, so each has its own time."""
FAR = day(datetime.now(UTC), days=20)
"""A day for bookings that no clock the tests move reaches."""
BOUND = 30.0
"""Seconds a waiting test gives the server to make progress before it fails."""


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[str]:
    """One `bookings serve` process on the tests' database (nothing settles in the background,
    so the only writers are the tests)."""
    env = os.environ | {"DATABASE_URL": database_url, "BOOKINGS_SETTLE_SECONDS": "0"}
    port = free_port()
    command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port)]
    command += ["--log-level", "warning"]
    process = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- reading the feed -------------------------------------------------------------------------


async def page_of(client: Client | httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/events", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert set(page) == {"items", "next_after"}, page
    return page


async def read_on(
    client: Client | httpx.AsyncClient, after: int, limit: int = 1000
) -> list[dict[str, Any]]:
    """Every event after position `after`, following `next_after` until a page is empty."""
    items: list[dict[str, Any]] = []
    while True:
        page = await page_of(client, after=after, limit=limit)
        if not page["items"]:
            assert page["next_after"] == after
            return items
        assert len(page["items"]) <= limit
        assert page["next_after"] == page["items"][-1]["position"]
        items += page["items"]
        after = page["next_after"]
        assert len(items) < 1_000_000, "next_after does not advance"


async def tail(client: Client | httpx.AsyncClient) -> int:
    """The position a reader that has read the whole feed continues after (0: empty log)."""
    events = await read_on(client, 0)
    return events[-1]["position"] if events else 0


def slot_of(n: float) -> tuple[datetime, datetime]:
    """Half an hour, `n` hours into a day well ahead of both the real and the tests' clock."""
    return FAR + hours(n), FAR + hours(n) + timedelta(minutes=30)


def mine(events: list[dict[str, Any]], *streams: str) -> list[dict[str, Any]]:
    return [e for e in events if e["stream_id"] in streams]


async def history(client: Client, resource_id: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/resources/{resource_id}/history", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"resource_id", "items", "next_after"}, body
    assert body["resource_id"] == resource_id
    return body


async def all_history(client: Client, resource_id: str) -> list[dict[str, Any]]:
    body = await history(client, resource_id, limit=1000)
    assert body["next_after"] is None
    items: list[dict[str, Any]] = body["items"]
    return items


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def a_gap_in_the_log(pool: asyncpg.Pool) -> int:
    """A position no event will ever stand at: an append that was rolled back took it."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        position: int = await conn.fetchval(
            "INSERT INTO events (stream_id, version, topic, state)"
            " VALUES ($1, 1, 'rolled.back:Event', '{}') RETURNING position",
            uuid4(),
        )
        await transaction.rollback()
    return position


# --- the shape of each event -------------------------------------------------------------------


@dataclass
class Expected:
    """What the feed must say about one change."""

    stream_id: str
    type: str
    occurred_at: str
    actor: str | None
    data: dict[str, Any]


class Changes:
    """The changes a test makes, each with the event it must show as in the feed."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.expected: list[Expected] = []

    def saw(self, stream_id: str, kind: str, actor: str | None, **data: Any) -> None:
        """The change just made (at `clock.now`) must show as this event."""
        self.expected.append(Expected(stream_id, kind, iso(self.clock.now), actor, data))

    def tick(self) -> None:
        """Let time pass before the next change, so each has its own time."""
        self.clock.advance(STEP)

    async def assert_in_feed(self, client: Client, start: int) -> list[dict[str, Any]]:
        """The feed after `start` holds the expected events of these streams, in order, each
        with all its fields; returns those events."""
        streams = list(dict.fromkeys(x.stream_id for x in self.expected))
        events = await read_on(client, start)
        ours = mine(events, *streams)
        assert [(e["stream_id"], e["type"]) for e in ours] == [
            (x.stream_id, x.type) for x in self.expected
        ]
        histories = {r: await all_history(client, r) for r in streams}
        for event, want in zip(ours, self.expected, strict=True):
            assert set(event) == FEED_FIELDS, event
            version = event["version"]
            entry = histories[want.stream_id][version - 1]
            assert entry["version"] == version
            assert event == {
                "event_id": str(event_id(UUID(want.stream_id), version)),
                "position": entry["position"],
                "type": want.type,
                "stream_id": want.stream_id,
                "version": version,
                "occurred_at": want.occurred_at,
                "actor": want.actor,
                "data": want.data,
            }
        for stream_id in streams:
            versions = [e["version"] for e in ours if e["stream_id"] == stream_id]
            assert versions == list(range(1, len(histories[stream_id]) + 1))
        assert len({e["event_id"] for e in events}) == len(events)
        assert len({e["position"] for e in events}) == len(events)
        # Read again, one event a page: the same events, with the same ids and positions.
        assert await read_on(client, start, limit=1) == events
        return ours


async def test_resource_events_show_settings_changes_closures_and_retirement(
    client: Client, clock
) -> None:
    d = day(clock.now)
    start = await tail(client)
    log = Changes(clock)
    owner = {"X-Actor": "owner-1"}

    # given: a resource registered, changed, closed and reopened, retired
    registered = ok(
        await client.post(
            "/resources",
            json={"name": f"Home {uuid4()}", "details": "2nd floor", "max_advance_days": 400},
            headers=owner,
        ),
        201,
    )
    home = registered["resource_id"]
    assert registered["max_advance_days"] == 400
    log.saw(
        home,
        "resource.registered",
        "owner-1",
        name=registered["name"],
        timezone="UTC",
        capacity=1,
        requires_approval=False,
        details="2nd floor",
        rules={name: registered[name] for name in RULE_NAMES},
    )
    log.tick()
    gate = await new_resource(client, requires_approval=True)
    log.saw(gate, "resource.registered", None, **(await registration_data(client, gate)))
    log.tick()
    # An unchanged value (the name) is left out of the change.
    changes = {"capacity": 2, "buffer_after_minutes": 15, "name": registered["name"]}
    ok(await client.patch(f"/resources/{home}", json=changes, headers=owner))
    log.saw(
        home, "resource.updated", "owner-1", changes={"capacity": 2, "buffer_after_minutes": 15}
    )
    log.tick()
    paint = {"start_time": iso(d + hours(8)), "end_time": iso(d + hours(9)), "reason": "Paint"}
    closure = ok(await client.post(f"/resources/{home}/closures", json=paint, headers=owner), 201)
    log.saw(home, "resource.closure_added", "owner-1", closure_id=closure["closure_id"], **paint)
    log.tick()
    removed = await client.delete(f"/resources/{home}/closures/{closure['closure_id']}")
    assert removed.status_code == 204, removed.text
    log.saw(home, "resource.closure_removed", None, closure_id=closure["closure_id"])
    log.tick()
    ok(await client.delete(f"/resources/{home}", params={"reason": "Sold"}, headers=owner))
    log.saw(home, "resource.retired", "owner-1", reason="Sold")

    # when / then
    ours = await log.assert_in_feed(client, start)

    assert {e["type"] for e in ours} == {
        "resource.registered",
        "resource.updated",
        "resource.closure_added",
        "resource.closure_removed",
        "resource.retired",
    }


async def test_booking_events_show_changes_moves_and_cancellation(client: Client, clock) -> None:
    d = day(clock.now)
    start = await tail(client)
    log = Changes(clock)
    home = await new_resource(client)
    log.saw(home, "resource.registered", None, **(await registration_data(client, home)))
    away = await new_resource(client)
    log.saw(away, "resource.registered", None, **(await registration_data(client, away)))
    log.tick()

    # given: a booking created, changed, moved to another resource and cancelled there
    alice = {"X-Actor": "alice"}
    booking = await book(client, home, d + hours(10), d + hours(11), alice, details="Kick-off")
    booking_id = booking["booking_id"]
    log.saw(
        home,
        "booking.created",
        "alice",
        booking_id=booking_id,
        client_id=booking["client_id"],
        start_time=iso(d + hours(10)),
        end_time=iso(d + hours(11)),
        details="Kick-off",
        status="confirmed",
    )
    log.tick()
    changed = {"start_time": iso(d + hours(12)), "end_time": iso(d + hours(13)), "details": "Retro"}
    ok(await client.put(f"/bookings/{booking_id}", json=changed, headers=alice))
    log.saw(home, "booking.modified", "alice", booking_id=booking_id, **changed)
    log.tick()
    later = {"end_time": iso(d + hours(13) + timedelta(minutes=30))}
    ok(await client.put(f"/bookings/{booking_id}", json=later))
    log.saw(home, "booking.modified", None, booking_id=booking_id, **later)
    log.tick()
    moved = {"resource_id": away, "start_time": iso(d + hours(14)), "end_time": iso(d + hours(15))}
    ok(await client.put(f"/bookings/{booking_id}", json=moved, headers={"X-Actor": "bob"}))
    # both halves of a move are recorded at once, the leaving one first
    log.saw(home, "booking.moved_out", "bob", booking_id=booking_id, to_resource_id=away)
    log.saw(
        away,
        "booking.moved_in",
        "bob",
        booking_id=booking_id,
        from_resource_id=home,
        start_time=iso(d + hours(14)),
        end_time=iso(d + hours(15)),
        status="confirmed",
    )
    log.tick()
    reason = {"reason": "Plans changed"}
    ok(await client.delete(f"/bookings/{booking_id}", params=reason, headers=alice | OWNER))
    log.saw(away, "booking.cancelled", "alice", booking_id=booking_id, by="owner", **reason)

    # when / then
    ours = await log.assert_in_feed(client, start)

    moved_out, moved_in = (e for e in ours if e["type"].startswith("booking.moved"))
    assert moved_in["position"] > moved_out["position"]


async def test_decision_events_show_approvals_rejections_completions_and_no_shows(
    client: Client, clock
) -> None:
    d = day(clock.now)
    start = await tail(client)
    log = Changes(clock)
    gate = await new_resource(client, requires_approval=True)
    log.saw(gate, "resource.registered", None, **(await registration_data(client, gate)))
    home = await new_resource(client, capacity=2)
    log.saw(home, "resource.registered", None, **(await registration_data(client, home)))
    log.tick()
    owner = {"X-Actor": "owner-3"}

    # given: the owner's decisions on requests ...
    decisions = (("approve", "approved", "Known", 10), ("reject", "rejected", "Full", 12))
    for action, decided, why, at in decisions:
        request = await book(client, gate, d + hours(at), d + hours(at + 1))
        log.saw(
            gate,
            "booking.created",
            None,
            booking_id=request["booking_id"],
            client_id=request["client_id"],
            start_time=iso(d + hours(at)),
            end_time=iso(d + hours(at + 1)),
            status="pending",
        )
        log.tick()
        url = f"/bookings/{request['booking_id']}/{action}"
        ok(await client.post(url, params={"reason": why}, headers=owner))
        log.saw(gate, f"booking.{decided}", "owner-3", booking_id=request["booking_id"], reason=why)
        log.tick()
    # ... and on bookings that have started
    soon = clock.now + hours(1)
    started = []
    for _ in range(2):
        booked = await book(client, home, soon, soon + hours(1))
        started.append(booked["booking_id"])
        log.saw(
            home,
            "booking.created",
            None,
            booking_id=booked["booking_id"],
            client_id=booked["client_id"],
            start_time=iso(soon),
            end_time=iso(soon + hours(1)),
            status="confirmed",
        )
        log.tick()
    clock.advance(hours(1))
    took_place, missed = started
    ok(await client.post(f"/bookings/{took_place}/complete", headers=owner))
    log.saw(home, "booking.completed", "owner-3", booking_id=took_place, automatic=False)
    log.tick()
    url = f"/bookings/{missed}/no-show"
    ok(await client.post(url, params={"reason": "No call"}, headers=owner))
    log.saw(home, "booking.no_show", "owner-3", booking_id=missed, reason="No call")

    # when / then
    ours = await log.assert_in_feed(client, start)

    assert {e["type"] for e in ours} == {
        "resource.registered",
        "booking.created",
        "booking.approved",
        "booking.rejected",
        "booking.completed",
        "booking.no_show",
    }


async def registration_data(client: Client, resource_id: str) -> dict[str, Any]:
    """What `resource.registered` says about a resource registered without details."""
    resource = ok(await client.get(f"/resources/{resource_id}"))
    return {
        "name": resource["name"],
        "timezone": "UTC",
        "capacity": resource["capacity"],
        "requires_approval": resource["requires_approval"],
        "rules": {name: resource[name] for name in RULE_NAMES},
    }


async def test_an_event_keeps_its_id_and_position_whatever_reads_it(client: Client) -> None:
    start = await tail(client)
    resource_id = await new_resource(client)
    await book(client, resource_id, *slot_of(0))

    first = await read_on(client, start)
    again = await read_on(client, 0)
    one_by_one = await read_on(client, start, limit=1)

    assert [e["event_id"] for e in mine(first, resource_id)] == [
        str(event_id(UUID(resource_id), 1)),
        str(event_id(UUID(resource_id), 2)),
    ]
    assert again[-len(first) :] == first
    assert one_by_one == first
    ids = [e["event_id"] for e in again]
    assert len(set(ids)) == len(ids), "two events share an id"
    assert event_id(UUID(resource_id), 1) != event_id(UUID(resource_id), 2)
    assert event_id(UUID(resource_id), 1) == event_id(UUID(resource_id), 1)


# --- paging -----------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 1000])
async def test_following_next_after_reads_every_event_once_in_order(
    client: Client, limit: int
) -> None:
    start = await tail(client)
    resources = [await new_resource(client) for _ in range(3)]
    for n, resource_id in enumerate(resources):
        await book(client, resource_id, *slot_of(n))
        await book(client, resource_id, *slot_of(n + 1))
    # Another transaction still running on the server (another test's) holds the newest events
    # back for a moment: wait until all nine are out.
    give_up = time.monotonic() + BOUND
    while len((whole := await page_of(client, after=start, limit=1000))["items"]) < 9:
        assert time.monotonic() < give_up, whole
        await asyncio.sleep(0.05)

    pages = []
    after = start
    while True:
        page = await page_of(client, after=after, limit=limit)
        pages.append(page)
        if not page["items"]:
            break
        after = page["next_after"]

    assert len(whole["items"]) >= 9
    assert whole["next_after"] == whole["items"][-1]["position"]
    read = [e for p in pages for e in p["items"]]
    assert read == whole["items"]
    assert len({e["position"] for e in read}) == len(read)
    assert [len(p["items"]) for p in pages[:-2]] == [limit] * (len(pages) - 2)
    assert 1 <= len(pages[-2]["items"]) <= limit
    assert pages[-1] == {"items": [], "next_after": read[-1]["position"]}
    for p in pages[:-1]:
        assert p["next_after"] == p["items"][-1]["position"]
    for resource_id in resources:
        assert [e["version"] for e in mine(read, resource_id)] == [1, 2, 3]


async def test_a_page_holds_100_events_unless_a_limit_is_given(client: Client) -> None:
    start = await tail(client)
    resource_id = await new_resource(client)
    for n in range(100):
        await book(client, resource_id, *slot_of(n))

    first = await page_of(client, after=start)
    second = await page_of(client, after=first["next_after"])

    assert len(first["items"]) == 100
    assert [e["version"] for e in mine(first["items"], resource_id)] == list(range(1, 101))
    assert [(e["stream_id"], e["version"]) for e in second["items"]] == [(resource_id, 101)]


@pytest.mark.parametrize(
    "after",
    ["-1", "1.5", "abc", "", "1e3", "0x10", "+1", " 1", "\u0661", "9223372036854775808", "9" * 30],
)
async def test_an_after_that_is_not_a_position_is_refused(client: Client, after: str) -> None:
    response = await client.get("/events", params={"after": after})

    assert_invalid(response, "after")


async def test_an_after_where_no_event_stands_is_refused(
    client: Client, pool: asyncpg.Pool
) -> None:
    gap = await a_gap_in_the_log(pool)
    await new_resource(client)  # the gap lies inside the log now
    last = await tail(client)
    assert gap < last

    for after in (gap, last + 1_000_000):
        response = await client.get("/events", params={"after": after})

        body = assert_invalid(response, "after")
        assert str(after) in body["detail"]
    assert (await page_of(client, after=last))["items"] == []


@pytest.mark.parametrize(("limit", "status"), [(1, 200), (1000, 200), (0, 422), (1001, 422)])
async def test_limit_is_between_1_and_1000(client: Client, limit: int, status: int) -> None:
    await new_resource(client)
    await new_resource(client)

    response = await client.get("/events", params={"limit": limit})

    if status == 422:
        assert_invalid(response, "limit")
    else:
        assert response.status_code == 200, response.text
        assert 1 <= len(response.json()["items"]) <= limit


@pytest.mark.parametrize("limit", ["-1", "ten", "2.5"])
async def test_a_limit_that_is_not_a_count_is_refused(client: Client, limit: str) -> None:
    assert_invalid(await client.get("/events", params={"limit": limit}), "limit")


@pytest.mark.parametrize("wait", ["-1", "61", "soon", "inf", "nan"])
async def test_wait_is_between_0_and_60_seconds(client: Client, wait: str) -> None:
    assert_invalid(await client.get("/events", params={"wait": wait}), "wait")


# --- long poll --------------------------------------------------------------------------------


async def test_a_long_poll_with_nothing_new_answers_an_empty_page_when_its_wait_is_over(
    client: Client,
) -> None:
    await new_resource(client)
    after = await tail(client)

    began = time.monotonic()
    response = await asyncio.wait_for(
        client.get("/events", params={"after": after, "wait": 1}), BOUND
    )
    waited = time.monotonic() - began

    assert response.status_code == 200, response.text
    page = response.json()
    if page["items"]:  # another test's writer got in meanwhile: then it must bring that news
        assert page["next_after"] == page["items"][-1]["position"] != after
    else:
        assert page == {"items": [], "next_after": after}
        assert waited >= 0.95, "it answered before its wait was over"


async def test_a_long_poll_answers_with_the_events_written_while_it_waits(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=BOUND) as http:
        resource_id = (ok(await http.post("/resources", json={"name": "Polled"}), 201))[
            "resource_id"
        ]
        after = await tail(http)
        poll = asyncio.create_task(http.get("/events", params={"after": after, "wait": 10}))
        await asyncio.sleep(0.5)  # the poll is waiting at the server
        assert not poll.done(), poll.result().text

        # when: an event is written while the poll waits
        created = await http.post("/bookings", json=booking_body(resource_id, *slot_of(3)))
        assert created.status_code == 201, created.text
        response = await asyncio.wait_for(poll, BOUND)
        history_of = await http.get(f"/resources/{resource_id}/history")

    assert response.status_code == 200, response.text
    page = response.json()
    [event] = page["items"]
    assert event["type"] == "booking.created"
    assert event["data"]["booking_id"] == created.json()["booking_id"]
    assert (event["stream_id"], event["version"]) == (resource_id, 2)
    assert event["position"] == history_of.json()["items"][1]["position"]
    assert page["next_after"] == event["position"]


# --- Server-Sent Events -----------------------------------------------------------------------


@dataclass
class Message:
    id: str | None
    event: str | None
    data: str


async def messages(response: httpx.Response) -> AsyncIterator[Message]:
    """The events of an SSE response, comments (heartbeats) left out."""
    fields: dict[str, str] = {}
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data or fields:
                yield Message(fields.get("id"), fields.get("event"), "\n".join(data))
            fields, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            fields[name] = value


class Stream:
    """An open `GET /events/stream`: read a number of events from it, then close it."""

    def __init__(self, http: httpx.AsyncClient, **request: Any) -> None:
        self.http, self.request = http, request

    async def __aenter__(self) -> "Stream":
        self.context = self.http.stream("GET", "/events/stream", **self.request)
        self.response = await self.context.__aenter__()
        assert self.response.status_code == 200, await self.response.aread()
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self.messages = messages(self.response)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.context.__aexit__(None, None, None)

    async def take(self, count: int) -> list[Message]:
        async def read() -> list[Message]:
            return [await anext(self.messages) for _ in range(count)]

        return await asyncio.wait_for(read(), BOUND)


def as_feed(message: Message) -> dict[str, Any]:
    """The feed item an SSE message carries, checked against its `id` and `event` lines."""
    item: dict[str, Any] = json.loads(message.data)
    assert set(item) == FEED_FIELDS, item
    assert message.id == str(item["position"])
    assert message.event == item["type"]
    return item


async def write_some(http: httpx.AsyncClient, count: int) -> str:
    """A resource and `count - 1` bookings on it: `count` events."""
    resource = ok(await http.post("/resources", json={"name": f"Streamed {uuid4()}"}), 201)
    for n in range(count - 1):
        body = booking_body(resource["resource_id"], *slot_of(n))
        ok(await http.post("/bookings", json=body), 201)
    resource_id: str = resource["resource_id"]
    return resource_id


async def test_the_stream_sends_each_event_with_its_position_as_id_in_feed_order(
    server: str,
) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=BOUND) as http:
        start = await tail(http)
        written = await write_some(http, 6)
        feed = await read_on(http, start)

        async with Stream(http, params={"after": start}) as stream:
            sent = [as_feed(m) for m in await stream.take(len(feed))]
            # when: more events commit while the stream is open
            live = await write_some(http, 2)
            arrived = [as_feed(m) for m in await stream.take(2)]
        later = await read_on(http, feed[-1]["position"])

    assert sent == feed
    assert [e["stream_id"] for e in mine(sent, written)] == [written] * 6
    assert arrived == later
    assert [(e["stream_id"], e["version"]) for e in arrived] == [(live, 1), (live, 2)]


async def test_a_stream_resumed_with_last_event_id_continues_right_after_it(
    server: str,
) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=BOUND) as http:
        start = await tail(http)
        await write_some(http, 5)
        feed = await read_on(http, start)
        async with Stream(http, params={"after": start}) as stream:
            first = await stream.take(2)
        # the reader went away after two events; meanwhile two more commit
        await write_some(http, 2)
        feed = await read_on(http, start)

        # when: it reconnects the way a browser does (the header wins over `after`)
        headers = {"Last-Event-ID": first[-1].id or ""}
        async with Stream(http, headers=headers, params={"after": start}) as stream:
            rest = await stream.take(len(feed) - 2)

    assert [as_feed(m) for m in first] + [as_feed(m) for m in rest] == feed
    ids = [m.id for m in first + rest]
    assert len(set(ids)) == len(ids), "an event was sent twice"


async def test_a_stream_resumed_at_the_last_event_sends_only_what_comes_next(
    server: str,
) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=BOUND) as http:
        await write_some(http, 1)
        last = await tail(http)

        async with Stream(http, headers={"Last-Event-ID": str(last)}) as stream:
            waiting = asyncio.create_task(stream.take(1))
            await asyncio.sleep(0.5)
            assert not waiting.done(), "the stream sent an event the reader had seen"
            resource_id = await write_some(http, 1)
            [message] = await waiting

    event = as_feed(message)
    assert (event["stream_id"], event["type"]) == (resource_id, "resource.registered")


async def test_a_stream_resumed_with_after_matches_the_header(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=BOUND) as http:
        start = await tail(http)
        await write_some(http, 3)
        feed = await read_on(http, start)

        async with Stream(http, params={"after": feed[0]["position"]}) as stream:
            by_query = await stream.take(2)
        header = {"Last-Event-ID": str(feed[0]["position"])}
        async with Stream(http, headers=header) as stream:
            by_header = await stream.take(2)

    assert [as_feed(m) for m in by_query] == feed[1:3]
    assert by_header == by_query


async def stream_status(server: str, **request: Any) -> httpx.Response:
    """The answer to `GET /events/stream`, its body read unless it is an open stream."""
    async with (
        httpx.AsyncClient(base_url=server, timeout=BOUND) as http,
        http.stream("GET", "/events/stream", **request) as response,
    ):
        assert response.status_code != 200, "the stream was opened"
        await response.aread()
        return response


@pytest.mark.parametrize(
    "last_event_id",
    ["abc", "-1", "1.5", "", "1e3", "0x10", "+1", "\u00b2".encode("latin-1"), "9" * 30],
)
async def test_a_last_event_id_that_is_not_a_position_is_refused(
    server: str, last_event_id: str | bytes
) -> None:
    response = await stream_status(server, headers={"Last-Event-ID": last_event_id})

    assert_invalid(response, "Last-Event-ID")


async def test_a_last_event_id_or_after_where_no_event_stands_is_refused(
    server: str, pool: asyncpg.Pool
) -> None:
    gap = await a_gap_in_the_log(pool)
    async with httpx.AsyncClient(base_url=server, timeout=BOUND) as http:
        await write_some(http, 1)
        last = await tail(http)
    assert gap < last

    for position in (gap, last + 1_000_000):
        by_header = await stream_status(server, headers={"Last-Event-ID": str(position)})
        by_query = await stream_status(server, params={"after": position})

        assert str(position) in assert_invalid(by_header, "Last-Event-ID")["detail"]
        assert str(position) in assert_invalid(by_query, "after")["detail"]
    assert_invalid(await stream_status(server, params={"after": "-1"}), "after")


# --- a resource's history ---------------------------------------------------------------------


async def test_a_resources_history_lists_every_event_of_its_stream_with_actor_and_reason(
    client: Client, clock
) -> None:
    d = day(clock.now)
    resource = await create_resource(client, capacity=1)
    resource_id = resource["resource_id"]
    steps: list[tuple[str, str, str | None, dict[str, Any]]] = []

    def saw(kind: str, actor: str | None, **data: Any) -> None:
        steps.append((kind, iso(clock.now), actor, data))
        clock.advance(STEP)

    saw(
        "resource.registered",
        None,
        name=resource["name"],
        timezone="UTC",
        capacity=1,
        requires_approval=False,
        rules={name: resource[name] for name in RULE_NAMES},
    )
    ann = {"X-Actor": "ann"}
    ok(await client.patch(f"/resources/{resource_id}", json={"capacity": 3}, headers=ann))
    saw("resource.updated", "ann", changes={"capacity": 3})
    body = {"start_time": iso(d + hours(1)), "end_time": iso(d + hours(2)), "reason": "Audit"}
    closure = ok(
        await client.post(f"/resources/{resource_id}/closures", json=body, headers=ann), 201
    )
    saw("resource.closure_added", "ann", closure_id=closure["closure_id"], **body)
    booking = await book(client, resource_id, d + hours(5), d + hours(6), {"X-Actor": "cy"})
    saw(
        "booking.created",
        "cy",
        booking_id=booking["booking_id"],
        client_id=booking["client_id"],
        start_time=iso(d + hours(5)),
        end_time=iso(d + hours(6)),
        status="confirmed",
    )
    ok(
        await client.delete(
            f"/bookings/{booking['booking_id']}",
            params={"reason": "Ill"},
            headers={"X-Actor": "cy"},
        )
    )
    saw("booking.cancelled", "cy", booking_id=booking["booking_id"], reason="Ill", by="client")
    ok(await client.delete(f"/resources/{resource_id}", params={"reason": "Gone"}, headers=ann))
    saw("resource.retired", "ann", reason="Gone")

    items = await all_history(client, resource_id)
    feed = {e["position"]: e for e in mine(await read_on(client, 0), resource_id)}

    assert [(e["type"], e["occurred_at"], e["actor"], e["data"]) for e in items] == steps
    assert [e["version"] for e in items] == list(range(1, len(steps) + 1))
    for entry in items:
        assert set(entry) == HISTORY_FIELDS, entry
        same = feed[entry["position"]]
        assert {k: same[k] for k in HISTORY_FIELDS} == entry


@pytest.mark.parametrize("limit", [1, 2, 3, 4])
async def test_a_resources_history_pages_with_after_and_next_after(
    client: Client, limit: int
) -> None:
    resource_id = await new_resource(client)
    for n in range(6):
        await book(client, resource_id, *slot_of(n))
    whole = await all_history(client, resource_id)
    assert len(whole) == 7

    pages = []
    after = 0
    while True:
        page = await history(client, resource_id, after=after, limit=limit)
        pages.append(page)
        if page["next_after"] is None:
            break
        assert page["next_after"] == page["items"][-1]["version"]
        after = page["next_after"]

    assert [e for p in pages for e in p["items"]] == whole
    assert [len(p["items"]) for p in pages[:-1]] == [limit] * (len(pages) - 1)
    assert 1 <= len(pages[-1]["items"]) <= limit
    assert len(pages) == -(-7 // limit)


async def test_a_resources_history_after_its_last_version_is_empty(client: Client) -> None:
    resource_id = await new_resource(client)
    await book(client, resource_id, *slot_of(0))

    assert (await history(client, resource_id, after=2))["items"] == []
    last = await history(client, resource_id, after=1, limit=1)
    assert [e["version"] for e in last["items"]] == [2]
    assert last["next_after"] is None
    assert (await history(client, resource_id, after=100)) == {
        "resource_id": resource_id,
        "items": [],
        "next_after": None,
    }


async def test_a_resources_history_after_a_version_beyond_any_stream_is_not_a_server_error(
    client: Client,
) -> None:
    resource_id = await new_resource(client)

    url = f"/resources/{resource_id}/history"

    last = await client.get(url, params={"after": 2**31 - 1})
    beyond = await client.get(url, params={"after": 2**31})
    far_beyond = await client.get(url, params={"after": "9" * 30})

    assert last.status_code == 200, last.text
    assert last.json()["items"] == []
    for response in (beyond, far_beyond):  # no version can be that high: empty, or refused
        if response.status_code == 200:
            assert response.json()["items"] == []
        else:
            assert_invalid(response, "after")


async def test_the_history_of_an_unknown_resource_is_404(client: Client) -> None:
    response = await client.get(f"/resources/{uuid4()}/history")

    assert_problem(response, 404, "not-found")


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/resources/not-a-uuid/history", {}, "resource_id"),
        ("/resources/{id}/history", {"after": -1}, "after"),
        ("/resources/{id}/history", {"after": "x"}, "after"),
        ("/resources/{id}/history", {"limit": 0}, "limit"),
        ("/resources/{id}/history", {"limit": 1001}, "limit"),
    ],
)
async def test_a_history_request_with_a_bad_value_is_refused(
    client: Client, path: str, params: dict[str, Any], field: str
) -> None:
    resource_id = await new_resource(client)

    response = await client.get(path.format(id=resource_id), params=params)

    assert_invalid(response, field)

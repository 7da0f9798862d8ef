"""A reader that follows `after` never misses or repeats an event, also while many writers
append at once: real `bookings serve` processes, real HTTP, writers racing on shared resources
while followers read the feed by long poll, by tight polling and as a Server-Sent Events stream.

Writers never compete for a slot (each has its own day), only for the resources' streams: every
command succeeds, after as many reloads as the races cost, so the log's contents are known.
Appends are held up now and then in mid-transaction, and a control reader that goes by position
alone shows that commits did land behind later positions: the case the feed's order is for.
"""

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from events.feed import event_id
from holding import next_version_held
from servers import three_processes

WRITERS = 8
COMMANDS = 40
"""Commands each writer sends, one after the other."""
RESOURCES = 20
FAR = (datetime.now(UTC) + timedelta(days=60)).replace(hour=0, minute=0, second=0, microsecond=0)
"""The first of the writers' days: writer `n` books half hours of day `FAR + n days`."""
BOUND = 120.0
"""Seconds the writers get to finish (a bound, not a speed test)."""
CATCH_UP = 30.0
"""Seconds the followers then get to read the rest of the log."""


@pytest.fixture(scope="module")
def servers(database_url: str) -> Iterator[list[str]]:
    """Two `bookings serve` instances, one with two workers: three processes on one database.
    Nothing settles in the background, so the only writers are the test's."""
    with three_processes(database_url, BOOKINGS_SETTLE_SECONDS="0") as urls:
        yield urls


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def read_all(http: httpx.AsyncClient, base: str, after: int) -> list[dict[str, Any]]:
    """Every event after `after`, a page at a time, until a page is empty."""
    events: list[dict[str, Any]] = []
    while True:
        response = await http.get(f"{base}/events", params={"after": after, "limit": 1000})
        assert response.status_code == 200, response.text
        page = response.json()
        if not page["items"]:
            return events
        events += page["items"]
        after = page["next_after"]


# --- followers ----------------------------------------------------------------------------------


@dataclass
class Follower:
    """Reads the feed on from `after`, keeping every event in the order it arrived."""

    http: httpx.AsyncClient
    base: str
    after: int
    events: list[dict[str, Any]] = field(default_factory=list)
    reads: int = 0
    """Answers received (pages or stream messages)."""

    async def poll(self, limit: int, wait: float) -> None:
        """Page by page: `GET /events?after=<last position seen>`, forever."""
        while True:
            response = await self.http.get(
                f"{self.base}/events", params={"after": self.after, "limit": limit, "wait": wait}
            )
            assert response.status_code == 200, response.text
            page = response.json()
            assert len(page["items"]) <= limit
            self.events += page["items"]
            if page["items"]:
                assert page["next_after"] == page["items"][-1]["position"]
            else:
                assert page["next_after"] == self.after
            self.after = page["next_after"]
            self.reads += 1

    async def stream(self) -> None:
        """One `GET /events/stream?after=...`, read for as long as it runs."""
        url = f"{self.base}/events/stream"
        async with self.http.stream("GET", url, params={"after": self.after}) as response:
            assert response.status_code == 200, await response.aread()
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line.startswith(":"):  # a heartbeat
                    continue
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                    continue
                if "data" in fields:
                    event = json.loads(fields["data"])
                    assert fields["id"] == str(event["position"])
                    assert fields["event"] == event["type"]
                    self.events.append(event)
                    self.after = event["position"]
                self.reads += 1
                fields = {}

    def ids(self) -> list[str]:
        return [e["event_id"] for e in self.events]


async def until(condition: Any, tasks: list[asyncio.Task[None]], within: float) -> bool:
    """Wait (at most `within` seconds) for `condition()`; a follower that failed fails it."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        for task in tasks:
            if task.done():
                task.result()  # raises what stopped it
                pytest.fail("a follower stopped")
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


# --- writers ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    status: int
    text: str


async def write(
    http: httpx.AsyncClient, servers: list[str], n: int, resource_ids: list[str]
) -> list[Outcome]:
    """Writer `n`: creates, moves (to another resource), reschedules and cancels its own
    bookings, on resources every writer uses, each command through another server process."""
    rng = random.Random(f"writer-{n}")
    day = FAR + timedelta(days=n)
    slots = iter(range(48))
    where: dict[str, str] = {}  # the writer's open bookings and their resources
    outcomes = []

    def half_hour() -> dict[str, str]:
        start = day + timedelta(minutes=30 * next(slots))
        return {"start_time": iso(start), "end_time": iso(start + timedelta(minutes=30))}

    for i in range(COMMANDS):
        base = servers[(n + i) % len(servers)]
        dice = rng.random()
        if not where or dice < 0.35:
            kind, resource_id = "create", rng.choice(resource_ids)
            body = {"resource_id": resource_id, "client_id": str(uuid4())} | half_hour()
            response = await http.post(f"{base}/bookings", json=body)
            if response.status_code == 201:
                where[response.json()["booking_id"]] = resource_id
        else:
            booking_id = rng.choice(sorted(where))
            url = f"{base}/bookings/{booking_id}"
            if dice < 0.6:
                kind = "move"
                target = rng.choice([r for r in resource_ids if r != where[booking_id]])
                response = await http.put(url, json={"resource_id": target})
                if response.status_code == 200:
                    where[booking_id] = target
            elif dice < 0.8:
                kind = "reschedule"
                response = await http.put(url, json=half_hour())
            else:
                kind = "cancel"
                response = await http.delete(url, headers={"X-Actor": f"writer-{n}"})
                if response.status_code == 200:
                    del where[booking_id]
        outcomes.append(Outcome(kind, response.status_code, response.text))
    return outcomes


async def hold_up_writers(pool: asyncpg.Pool, resource_ids: list[str], stop: asyncio.Event) -> None:
    """Again and again, hold the appends to one of the resources in the middle of their
    transaction for a moment. Such an append has inserted its events, and so taken their
    positions, and waits for the version while appends to other resources commit later
    positions: a slow writer, the case a feed reader must not skip."""
    rng = random.Random("hold-ups")
    while not stop.is_set():
        with contextlib.suppress(asyncpg.UniqueViolationError):  # a writer was first
            async with next_version_held(pool, UUID(rng.choice(resource_ids))):
                await asyncio.sleep(rng.uniform(0.05, 0.2))
        await asyncio.sleep(rng.uniform(0.0, 0.05))


async def read_by_position(
    pool: asyncpg.Pool, after: int, seen: set[int], stop: asyncio.Event
) -> None:
    """The control: a reader that follows the log by position alone, straight from the table,
    until `stop` (then once more). Whatever it skips committed behind a later position."""
    while True:
        last_round = stop.is_set()
        rows = await pool.fetch(
            "SELECT position FROM events WHERE position > $1 ORDER BY position", after
        )
        for row in rows:
            seen.add(row["position"])
            after = row["position"]
        if last_round:
            return
        await asyncio.sleep(0.002)


@dataclass
class Race:
    resource_ids: list[str]
    outcomes: list[Outcome]
    skipped_by_position: int
    """Events the position-only reader skipped: how often a commit landed behind a later one."""


async def race(http: httpx.AsyncClient, servers: list[str], pool: asyncpg.Pool, start: int) -> Race:
    """Register the resources, then let the writers race on them (held up now and then)."""
    registered = await asyncio.gather(
        *(
            http.post(f"{servers[i % len(servers)]}/resources", json={"name": f"Raced {i}"})
            for i in range(RESOURCES)
        )
    )
    assert {r.status_code for r in registered} == {201}, [r.text for r in registered]
    resource_ids = [r.json()["resource_id"] for r in registered]
    stop, by_position = asyncio.Event(), set[int]()
    helpers = [
        asyncio.create_task(hold_up_writers(pool, resource_ids, stop)),
        asyncio.create_task(read_by_position(pool, start, by_position, stop)),
    ]
    try:
        writers = (write(http, servers, n, resource_ids) for n in range(WRITERS))
        outcomes = await asyncio.wait_for(asyncio.gather(*writers), BOUND)
    finally:
        stop.set()
        await asyncio.gather(*helpers)
    positions = await pool.fetch("SELECT position FROM events WHERE position > $1", start)
    skipped = {row["position"] for row in positions} - by_position
    return Race(resource_ids, [o for writer in outcomes for o in writer], len(skipped))


# --- the race ---------------------------------------------------------------------------------


@asynccontextmanager
async def following(followers: dict[str, Follower]) -> AsyncIterator[list[asyncio.Task[None]]]:
    """The followers at work: the first two poll, the last reads the stream."""
    long_poll, tight, streamed = followers.values()
    tasks = [
        asyncio.create_task(long_poll.poll(limit=25, wait=1)),
        asyncio.create_task(tight.poll(limit=7, wait=0)),
        asyncio.create_task(streamed.stream()),
    ]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def assert_followed_once(
    name: str,
    follower: Follower,
    *,
    expected: set[str],
    before: set[str],
    feed: list[dict[str, Any]],
    resource_ids: list[str],
) -> None:
    """The follower read each of the `expected` events exactly once and nothing else, each
    stream in version order, and all of them in the feed's one order."""
    ids = follower.ids()
    assert len(ids) == len(set(ids)), f"{name} read an event twice"
    assert not before & set(ids), f"{name} read again an event from before it started"
    missed, extra = expected - set(ids), set(ids) - expected
    assert not missed, f"{name} missed {len(missed)} of {len(expected)} events"
    assert not extra, f"{name} read {len(extra)} events that are not in the log"
    versions: dict[str, list[int]] = {}
    for event in follower.events:
        versions.setdefault(event["stream_id"], []).append(event["version"])
        assert event["event_id"] == str(event_id(UUID(event["stream_id"]), event["version"]))
    for stream_id, seen in versions.items():
        assert seen == sorted(seen), f"{name}: the events of {stream_id} came out of order"
    for resource_id in resource_ids:  # registered after the follower started: all of them
        assert versions[resource_id] == list(range(1, len(versions[resource_id]) + 1))
    assert follower.events == feed, f"{name} read another order than the feed's"


async def test_followers_read_every_event_once_in_order_while_many_write_at_once(
    servers: list[str], pool: asyncpg.Pool
) -> None:
    limits = httpx.Limits(max_connections=4 * WRITERS)
    async with httpx.AsyncClient(timeout=httpx.Timeout(BOUND), limits=limits) as http:
        # given: readers that have read the whole log so far, and follow it from there
        seen_before = await read_all(http, servers[0], 0)
        start = seen_before[-1]["position"] if seen_before else 0
        followers = {
            "long poll": Follower(http, servers[1], start),
            "tight poll": Follower(http, servers[0], start),
            "stream": Follower(http, servers[0], start),
        }
        async with following(followers) as tasks:
            # when: eight writers race on twenty resources through three server processes
            raced = await race(http, servers, pool, start)

            # then (wait for it): the followers catch up with the log
            rows = await pool.fetch("SELECT stream_id, version FROM events")
            before = {e["event_id"] for e in seen_before}
            expected = {str(event_id(r["stream_id"], r["version"])) for r in rows} - before
            await until(
                lambda: all(expected <= set(f.ids()) for f in followers.values()), tasks, CATCH_UP
            )
            # Another round for each, so that a late repeat would show.
            pollers = list(followers.values())[:2]
            reads = [f.reads for f in pollers]
            await until(
                lambda: all(f.reads >= r + 2 for f, r in zip(pollers, reads, strict=True)),
                tasks,
                CATCH_UP,
            )
            await asyncio.sleep(1)
            for task in tasks:
                assert not task.done(), task.result()
        feed = await read_all(http, servers[1], start)

    # then: every command succeeded, each kind many times
    assert len(raced.outcomes) == WRITERS * COMMANDS
    assert [o for o in raced.outcomes if o.status not in (200, 201)] == []
    kinds = Counter(o.kind for o in raced.outcomes)
    assert min(kinds[k] for k in ("create", "move", "reschedule", "cancel")) >= WRITERS, kinds
    # ... and commits landed behind later positions (else the race would prove nothing)
    assert raced.skipped_by_position > 0, "no event committed behind a later one"
    # then: what a follower read before plus what it followed is the whole log, each event once
    assert len(feed) == len(expected)
    for name, follower in followers.items():
        assert_followed_once(
            name,
            follower,
            expected=expected,
            before=before,
            feed=feed,
            resource_ids=raced.resource_ids,
        )

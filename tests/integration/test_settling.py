"""Settling: what the clock closes is recorded once. Confirmed bookings complete after their end,
pending requests expire at their approval deadline or their start, whichever comes first; two
processes settling at the same time never close a booking twice.

`settle_due` sweeps the whole database, so each test has a clock of its own in the past: a year
back, each test a month before the one before it, moved by hours only. The bookings a test makes
lie in its clock's future, yet before those of every earlier test here and of every test that
books from the real time, so a test settles its own bookings only. (The one process settling on
the real clock, the e2e servers, stops with its module.)
"""

import asyncio
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.settings import Settings
from api.settling import settle_due
from commands.errors import BookingClosedError
from commands.handlers import (
    CancelBooking,
    CommandHandlers,
    CreateBooking,
    DecideBooking,
    RegisterResource,
)
from commands.repository import ResourceRepository
from commands.resource import TRANSCODINGS
from events.store import EventStore, new_mapper
from projections import bookings, history
from projections.runner import project

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
_ERA = (datetime.now(UTC) - timedelta(days=365)).replace(minute=0, second=0, microsecond=0)
_eras = itertools.count()
CLOSING = ("booking.completed", "booking.expired")


class MovableClock:
    """The time a test's "server processes" see; only the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def moving_clock() -> MovableClock:
    """A clock in a past of its own (see the module's docstring)."""
    return MovableClock(_ERA - next(_eras) * timedelta(days=30))


def process(pool: asyncpg.Pool, clock: MovableClock) -> CommandHandlers:
    """The command handlers of one server process, built as `create_app` does: its own
    repository, so its own cache of resources (and snapshots often, so settling meets them)."""
    store = EventStore(pool, new_mapper(*TRANSCODINGS), projector=project)
    repository = ResourceRepository(store, snapshot_every=5)

    async def locate_booking(booking_id: UUID) -> UUID | None:
        return await bookings.resource_of(pool, booking_id)

    return CommandHandlers(repository, clock, locate_booking)


async def book(
    commands: CommandHandlers, resource_id: UUID, start: datetime, end: datetime
) -> UUID:
    command = CreateBooking(resource_id, uuid4(), start_time=start, end_time=end)
    return (await commands.create_booking(command)).booking_id


async def status(pool: asyncpg.Pool, booking_id: UUID) -> str:
    view = await bookings.get(pool, booking_id)
    assert view is not None
    return view.status


async def statuses(pool: asyncpg.Pool, booking_ids: dict[str, UUID]) -> dict[str, str]:
    return {name: await status(pool, b) for name, b in booking_ids.items()}


async def history_of(pool: asyncpg.Pool, booking_id: UUID) -> list[history.HistoryEntry]:
    return await history.of_booking(pool, EventStore(pool, new_mapper(*TRANSCODINGS)), booking_id)


async def event_types(pool: asyncpg.Pool, booking_id: UUID) -> list[str]:
    return [entry.type for entry in await history_of(pool, booking_id)]


async def closings(pool: asyncpg.Pool, booking_id: UUID) -> Counter[str]:
    """How often each closing event was recorded for the booking."""
    return Counter(t for t in await event_types(pool, booking_id) if t in CLOSING)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 10) -> None:
    """Wait (at most `within` seconds) until `check` holds."""
    give_up = asyncio.get_running_loop().time() + within
    while not await check():
        assert asyncio.get_running_loop().time() < give_up, f"still not {what}"
        await asyncio.sleep(0.02)


# --- settle_due ---------------------------------------------------------------------------------


async def test_ended_bookings_complete_and_undecided_requests_expire_when_due(
    pool: asyncpg.Pool, moving_clock: MovableClock
) -> None:
    commands = process(pool, moving_clock)
    t0 = moving_clock.now
    room = await commands.register_resource(RegisterResource(name="Room"))
    desk = await commands.register_resource(
        RegisterResource(name="Desk", requires_approval=True, rules={"approval_window_minutes": 60})
    )
    hall = await commands.register_resource(RegisterResource(name="Hall", requires_approval=True))
    b = {
        "ended": await book(commands, room, t0 + HOUR, t0 + 2 * HOUR),
        "cancelled": await book(commands, room, t0 + 2 * HOUR, t0 + 3 * HOUR),
        "later": await book(commands, room, t0 + 5 * HOUR, t0 + 6 * HOUR),
        # pending: decided by its approval deadline (t0 + 1 h), long before its start
        "undecided": await book(commands, desk, t0 + 4 * HOUR, t0 + 5 * HOUR),
        "approved": await book(commands, desk, t0 + HOUR, t0 + 2 * HOUR),
        # pending without an approval window: decided by its start
        "unanswered": await book(commands, hall, t0 + 2 * HOUR, t0 + 3 * HOUR),
    }
    await commands.decide_booking(DecideBooking(b["approved"], "approve"))
    await commands.cancel_booking(CancelBooking(b["cancelled"]))

    assert await settle_due(pool, commands) == 0
    moving_clock.advance(59 * MINUTE)
    assert await settle_due(pool, commands) == 0
    assert await status(pool, b["undecided"]) == "pending"

    moving_clock.advance(MINUTE)  # t0 + 1 h: the approval deadline
    assert await settle_due(pool, commands) == 1
    assert await status(pool, b["undecided"]) == "expired"

    moving_clock.advance(90 * MINUTE)  # t0 + 2.5 h: past two ends and one start
    assert await settle_due(pool, commands) == 3
    assert await settle_due(pool, commands) == 0, "settling again recorded more"
    assert await statuses(pool, b) == {
        "ended": "completed",
        "cancelled": "cancelled",
        "later": "confirmed",
        "undecided": "expired",
        "approved": "completed",
        "unanswered": "expired",
    }

    moving_clock.advance(4 * HOUR)  # t0 + 6.5 h: everything has ended
    assert await settle_due(pool, commands) == 1
    assert await settle_due(pool, commands) == 0
    assert await status(pool, b["later"]) == "completed"
    assert await status(pool, b["cancelled"]) == "cancelled"
    [completed] = [e for e in await history_of(pool, b["ended"]) if e.type in CLOSING]
    assert completed.type == "booking.completed"
    assert completed.data["automatic"] is True
    assert completed.actor is None
    assert completed.occurred_at == t0 + 150 * MINUTE
    assert await event_types(pool, b["undecided"]) == ["booking.created", "booking.expired"]
    assert await event_types(pool, b["approved"]) == [
        "booking.created",
        "booking.approved",
        "booking.completed",
    ]


async def test_two_processes_settling_at_once_close_each_booking_once(
    pool: asyncpg.Pool, moving_clock: MovableClock
) -> None:
    first, second = process(pool, moving_clock), process(pool, moving_clock)
    t0 = moving_clock.now
    resources = []
    for i in range(12):
        commands = (first, second)[i % 2]
        # Every third one takes requests, which expire at their start.
        register = RegisterResource(name=f"Room {i}", requires_approval=i % 3 == 0)
        resources.append(await commands.register_resource(register))
    due, not_due = [], []
    for i, resource_id in enumerate(resources):
        # Booked through either process, so each caches some resources, some of them stale.
        for k in range(4):
            commands = (first, second)[(i + k) % 2]
            start = t0 + (k + 1) * HOUR
            due.append(await book(commands, resource_id, start, start + HOUR))
        not_due.append(await book(first, resource_id, t0 + 20 * HOUR, t0 + 21 * HOUR))
    moving_clock.advance(6 * HOUR)

    # Small batches: several rounds each, over the same resources at the same time.
    recorded = await asyncio.gather(
        settle_due(pool, first, batch=3), settle_due(pool, second, batch=3)
    )

    assert sum(recorded) == len(due)
    for booking_id in due:
        assert sum((await closings(pool, booking_id)).values()) == 1, booking_id
    assert [await status(pool, b) for b in not_due] == [
        "pending" if i % 3 == 0 else "confirmed" for i in range(len(resources))
    ]
    assert await asyncio.gather(settle_due(pool, first), settle_due(pool, second)) == [0, 0]

    moving_clock.advance(20 * HOUR)  # leave nothing open for the tests after this one
    assert sum(await asyncio.gather(settle_due(pool, first), settle_due(pool, second))) == len(
        not_due
    )


async def test_the_owner_completing_while_a_process_settles_completes_once(
    pool: asyncpg.Pool, moving_clock: MovableClock
) -> None:
    owner, settler = process(pool, moving_clock), process(pool, moving_clock)
    t0 = moving_clock.now
    room = await owner.register_resource(RegisterResource(name="Room", capacity=40))
    ended = [await book(owner, room, t0 + HOUR, t0 + 2 * HOUR) for _ in range(40)]
    moving_clock.advance(3 * HOUR)

    async def complete(booking_id: UUID) -> bool:
        try:
            await owner.decide_booking(DecideBooking(booking_id, "complete", actor="owner"))
        except BookingClosedError:
            return False
        return True

    *by_owner, by_settling = await asyncio.gather(
        *(complete(b) for b in ended), settle_due(pool, settler)
    )

    assert sum(by_owner) + by_settling == len(ended)
    for booking_id, manual in zip(ended, by_owner, strict=True):
        entries = await history_of(pool, booking_id)
        [completed] = [e for e in entries if e.type in CLOSING]
        assert completed.type == "booking.completed"
        assert completed.data["automatic"] is not manual
        assert completed.actor == ("owner" if manual else None)


async def test_a_process_whose_cache_is_behind_still_settles_what_is_due(
    pool: asyncpg.Pool, moving_clock: MovableClock
) -> None:
    # given: the settling process last saw the room before another process booked it
    writer, settler = process(pool, moving_clock), process(pool, moving_clock)
    t0 = moving_clock.now
    room = await writer.register_resource(RegisterResource(name="Room"))
    later = await book(settler, room, t0 + 10 * HOUR, t0 + 11 * HOUR)
    ended = await book(writer, room, t0 + HOUR, t0 + 2 * HOUR)
    moving_clock.advance(3 * HOUR)

    # when: only that process settles (the writer settles nothing, as with settle_seconds=0)
    recorded = await settle_due(pool, settler)

    # then
    assert await status(pool, ended) == "completed"
    assert recorded == 1
    moving_clock.advance(10 * HOUR)  # leave nothing open for the tests after this one
    await settle_due(pool, writer)
    assert await status(pool, later) == "completed"


# --- the background loop ------------------------------------------------------------------------


async def wait_for_status(client: Any, booking_id: str, expected: str) -> None:
    async def reached() -> bool:
        response = await client.get(f"/bookings/{booking_id}")
        assert response.status_code == 200, response.text
        found: str = response.json()["status"]
        return found == expected

    await eventually(reached, expected)


def at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_the_background_loop_completes_a_booking_once_it_has_ended(
    database_url: str, moving_clock: MovableClock
) -> None:
    t0 = moving_clock.now
    app = create_app(Settings(database_url=database_url, settle_seconds=0.05), clock=moving_clock)
    async with AsyncTestClient(app) as client:
        r = await client.post("/resources", json={"name": "Room", "capacity": 2})
        assert r.status_code == 201, r.text
        room = r.json()["resource_id"]
        ids = []
        for start, end in [(t0 + 10 * MINUTE, t0 + 20 * MINUTE), (t0 + HOUR, t0 + 2 * HOUR)]:
            body = {"resource_id": room, "start_time": at(start), "end_time": at(end)}
            r = await client.post("/bookings", json=body | {"client_id": str(uuid4())})
            assert r.status_code == 201, r.text
            ids.append(r.json()["booking_id"])
        short, booking_id = ids

        # A second before the end: the sweep that completes the short booking leaves this one.
        moving_clock.now = t0 + 2 * HOUR - timedelta(seconds=1)
        await wait_for_status(client, short, "completed")
        r = await client.get(f"/bookings/{booking_id}")
        assert r.json()["status"] == "confirmed"

        moving_clock.now = t0 + 3 * HOUR
        await wait_for_status(client, booking_id, "completed")

        r = await client.get(f"/bookings/{booking_id}/history")
    assert r.status_code == 200, r.text
    [*_, last] = r.json()["items"]
    assert last["type"] == "booking.completed"
    assert last["data"]["automatic"] is True
    assert last["actor"] is None
    assert last["occurred_at"] == at(t0 + 3 * HOUR)


async def test_the_background_loop_expires_a_request_left_undecided(
    database_url: str, moving_clock: MovableClock
) -> None:
    t0 = moving_clock.now
    app = create_app(Settings(database_url=database_url, settle_seconds=0.05), clock=moving_clock)
    async with AsyncTestClient(app) as client:
        body = {"name": "Desk", "requires_approval": True, "approval_window_minutes": 30}
        r = await client.post("/resources", json=body)
        assert r.status_code == 201, r.text
        desk = r.json()["resource_id"]
        body = {
            "resource_id": desk,
            "start_time": at(t0 + 5 * HOUR),
            "end_time": at(t0 + 6 * HOUR),
            "client_id": str(uuid4()),
        }
        r = await client.post("/bookings", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "pending"
        booking_id = r.json()["booking_id"]

        moving_clock.advance(30 * MINUTE)
        await wait_for_status(client, booking_id, "expired")
        refused = await client.post(f"/bookings/{booking_id}/approve")

    assert refused.status_code == 409, refused.text

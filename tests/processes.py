"""Server processes in one test: each a `CommandHandlers` with a repository (and cache) of its
own, on one store; the repository counts what a stale cache costs."""

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest

from commands.handlers import CommandHandlers, CreateBooking
from commands.repository import ResourceRepository
from commands.resource import Resource
from events.store import ConcurrencyError, EventStore, RecordedEvent
from projections import bookings

HOUR = timedelta(hours=1)
BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=30)


def now() -> datetime:
    return datetime.now(UTC)


def hour(n: int) -> datetime:
    return BASE + n * HOUR


class CountingRepository(ResourceRepository):
    """A repository that counts whole loads, catch-up reads and lost appends."""

    def __init__(self, store: EventStore) -> None:
        super().__init__(store)
        self.loads = 0
        self.catch_ups = 0
        self.lost = 0

    async def load(self, resource_id: UUID) -> Resource:
        self.loads += 1
        return await super().load(resource_id)

    async def catch_up(self, resource: Resource) -> Resource:
        self.catch_ups += 1
        return await super().catch_up(resource)

    async def save(self, *resources: Resource) -> list[RecordedEvent]:
        try:
            return list(await super().save(*resources))
        except ConcurrencyError:
            self.lost += 1
            raise


class Process:
    """What one server process holds: its handlers and its repository."""

    def __init__(self, store: EventStore, pool: asyncpg.Pool) -> None:
        async def locate(booking_id: UUID) -> UUID | None:
            return await bookings.resource_of(pool, booking_id)

        self.repository = CountingRepository(store)
        self.handlers = CommandHandlers(self.repository, now, locate)

    async def book(self, resource_id: UUID, start: int) -> UUID:
        """Book the hour `start` (see `hour`); the booking's id."""
        command = CreateBooking(resource_id, uuid4(), hour(start), hour(start + 1))
        return (await self.handlers.create_booking(command)).booking_id

    def version(self, resource_id: UUID) -> int | None:
        """The version of the resource in this process's cache (None: not cached)."""
        cached = self.repository.cached(resource_id)
        return None if cached is None else cached.version


async def wait_until(check: Callable[[], bool | Awaitable[bool]], within: float, what: str) -> None:
    """Poll `check` (plain or async) until it holds; fail the test after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not within {within} s: {what}")
        await asyncio.sleep(0.01)

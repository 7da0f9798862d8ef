"""Seeds resources with a long history, in-process through the domain model: HTTP refuses
starts in the past, and would take hours for a million events anyway.

Each past booking is decided as it would have been live: created ten minutes before it starts
and completed by `settle` two minutes after it ends, so the clock of each stream only moves
forward and every past booking ends `completed` (out of the aggregate's state and of the
availability view). Active bookings are decided at the real `now`, in the future. Decisions are
saved a batch at a time (one append, projected inline like any other), with the service's
snapshot interval, against the database the service then serves.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from uuid import UUID, uuid4

import asyncpg

from commands.repository import ResourceRepository
from commands.resource import TRANSCODINGS, Resource
from events.store import EventStore, new_mapper
from projections import background
from projections.runner import project

CLIENT = UUID("00000000-0000-4000-8000-00000000c11e")
PAST_LENGTH = timedelta(minutes=30)
PAST_STEP = timedelta(minutes=45)
"""A past booking every 45 minutes: 30 booked, and room for the 10 minutes of notice before the
next one and the settling after it, so event times never go backwards."""
NOTICE = timedelta(minutes=10)
SETTLED_AFTER = timedelta(minutes=2)
ACTIVE_LENGTH = timedelta(minutes=30)
EVENTS_PER_APPEND = 2000


@dataclass(frozen=True)
class Plan:
    """One resource to seed: `past` completed bookings, then one active booking at each of
    `active` (future start times)."""

    name: str
    past: int
    active: Sequence[datetime] = ()
    resource_id: UUID = field(default_factory=uuid4)

    @property
    def events(self) -> int:
        return 1 + 2 * self.past + len(self.active)


@dataclass(frozen=True)
class Timed:
    """How many events some work went through, and how long it took."""

    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def starts(first: datetime, count: int, step: timedelta = timedelta(hours=1)) -> list[datetime]:
    """`count` start times, `step` apart from `first`."""
    return [first + i * step for i in range(count)]


@asynccontextmanager
async def _repository(database_url: str, parallel: int) -> AsyncIterator[ResourceRepository]:
    """A repository on the database, projecting inline as the service does."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=parallel)
    try:
        store = EventStore(pool, new_mapper(*TRANSCODINGS), projector=project)
        yield ResourceRepository(store)
        await store.drained()
    finally:
        await pool.close()


async def _in_parallel(work: Sequence[Callable[[], Awaitable[None]]], parallel: int) -> float:
    """Run the work, `parallel` at a time (the database appends one batch while Python decides
    the next); the seconds it took."""
    gate = asyncio.Semaphore(parallel)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await job()

    started = time.perf_counter()
    await asyncio.gather(*(one(job) for job in work))
    return time.perf_counter() - started


async def _save_if_full(repository: ResourceRepository, resource: Resource) -> None:
    if len(resource.pending_events) >= EVENTS_PER_APPEND:
        await repository.save(resource)


async def _book_active(
    repository: ResourceRepository, resource: Resource, active: Sequence[datetime], now: datetime
) -> None:
    for start in active:
        resource.create_booking(
            uuid4(),
            client_id=CLIENT,
            start=start,
            end=start + ACTIVE_LENGTH,
            details=None,
            actor=None,
            now=now,
        )
        await _save_if_full(repository, resource)
    await repository.save(resource)
    repository.forget(resource.id)  # keep the seeder's memory flat


async def _seed_one(repository: ResourceRepository, plan: Plan, now: datetime) -> None:
    began = now - timedelta(days=1) - plan.past * PAST_STEP
    resource = Resource.register(plan.resource_id, name=plan.name, now=began - NOTICE)
    for i in range(plan.past):
        start = began + i * PAST_STEP
        resource.create_booking(
            uuid4(),
            client_id=CLIENT,
            start=start,
            end=start + PAST_LENGTH,
            details=None,
            actor=None,
            now=start - NOTICE,
        )
        resource.settle(start + PAST_LENGTH + SETTLED_AFTER)
        await _save_if_full(repository, resource)
    await _book_active(repository, resource, plan.active, now)


async def seed(database_url: str, plans: Sequence[Plan], *, parallel: int = 2) -> Timed:
    """Register and seed every planned resource."""
    now = datetime.now(UTC)
    async with _repository(database_url, parallel) as repository:
        work = [partial(_seed_one, repository, plan, now) for plan in plans]
        seconds = await _in_parallel(work, parallel)
    return Timed(sum(p.events for p in plans), seconds)


async def add_active(
    database_url: str, additions: Mapping[UUID, Sequence[datetime]], *, parallel: int = 2
) -> Timed:
    """Book more active bookings (at the given future starts) on resources already there."""
    now = datetime.now(UTC)
    async with _repository(database_url, parallel) as repository:

        async def grow(resource_id: UUID) -> None:
            resource = await repository.load(resource_id)
            await _book_active(repository, resource, additions[resource_id], now)

        work = [partial(grow, resource_id) for resource_id in additions]
        seconds = await _in_parallel(work, parallel)
    return Timed(sum(len(a) for a in additions.values()), seconds)


async def catch_up_background(database_url: str) -> Timed:
    """Bring the background projections up to the end of the log, as a service that had been
    running all along would have them."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        store = EventStore(pool, new_mapper(*TRANSCODINGS))
        started, events = time.perf_counter(), 0
        for projection in background.BACKGROUND:
            events += await background.catch_up(pool, store, projection, batch_size=2000, wait=True)
        return Timed(events, time.perf_counter() - started)
    finally:
        await pool.close()


COUNTS = """
SELECT status, count(*) AS n FROM bookings WHERE resource_id = $1 GROUP BY status ORDER BY status
"""
VERSION = "SELECT max(version) FROM events WHERE stream_id = $1"


async def check(database_url: str, resource_id: UUID) -> dict[str, int]:
    """The read models of a seeded resource, to compare with its plan: bookings by status and
    the stream's version."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(COUNTS, resource_id)
        found = {row["status"]: row["n"] for row in rows}
        found["version"] = await conn.fetchval(VERSION, resource_id)
        return found
    finally:
        await conn.close()

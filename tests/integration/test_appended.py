"""Processes hear what the others append (the `events` notifications) and keep their cached
resources current, instead of finding out on their next decision (a lost append, a read).

Each "process" is a `CommandHandlers` with a repository (and cache) of its own, on one store;
the listening one runs `keep_listening` on a connection of its own, as a server process does.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest

from commands.handlers import CommandHandlers, CreateBooking, UpdateResource
from commands.repository import ResourceRepository
from commands.resource import Resource
from events.appended import CHANNEL, keep_listening
from events.store import ConcurrencyError, EventStore, RecordedEvent
from projections import bookings

HOUR = timedelta(hours=1)
BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=30)


def now() -> datetime:
    return datetime.now(UTC)


class CountingRepository(ResourceRepository):
    """A repository that counts what a stale cache costs: lost appends and catch-up reads."""

    def __init__(self, store: EventStore) -> None:
        super().__init__(store)
        self.lost = 0
        self.catch_ups = 0

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
    def __init__(self, store: EventStore, pool: asyncpg.Pool) -> None:
        async def locate(booking_id: UUID) -> UUID | None:
            return await bookings.resource_of(pool, booking_id)

        self.repository = CountingRepository(store)
        self.handlers = CommandHandlers(self.repository, now, locate)
        self.backend = 0

    async def book(self, resource_id: UUID, hour: int) -> None:
        start = BASE + hour * HOUR
        await self.handlers.create_booking(CreateBooking(resource_id, uuid4(), start, start + HOUR))

    def version(self, resource_id: UUID) -> int | None:
        cached = self.repository.cached(resource_id)
        return None if cached is None else cached.version


async def until(check: Callable[[], bool], what: str, within: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not within {within} s: {what}")
        await asyncio.sleep(0.01)


async def listening_backends(pool: asyncpg.Pool) -> set[int]:
    query = "SELECT pid FROM pg_stat_activity WHERE query = $1"
    return {row["pid"] for row in await pool.fetch(query, f'LISTEN "{CHANNEL}"')}


async def new_listener(pool: asyncpg.Pool, before: set[int], within: float = 10) -> int:
    """The backend of the one listening connection that is not among `before`."""
    new: set[int] = set()
    await until_async(lambda: _found(pool, before, new), "a connection listening", within)
    [backend] = new
    return backend


async def _found(pool: asyncpg.Pool, before: set[int], new: set[int]) -> bool:
    new |= await listening_backends(pool) - before
    return bool(new)


async def until_async(check: Callable[[], Awaitable[bool]], what: str, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not within {within} s: {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def processes(
    store: EventStore, pool: asyncpg.Pool, database_url: str
) -> AsyncIterator[tuple[Process, Process]]:
    """A writer, and a reader that listens (`reader.backend`: its listening connection)."""
    writer, reader = Process(store, pool), Process(store, pool)
    before = await listening_backends(pool)
    listening = asyncio.create_task(keep_listening(database_url, store.mapper, reader.repository))
    reader.backend = await new_listener(pool, before)
    yield writer, reader
    listening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await listening


async def registered(store: EventStore) -> UUID:
    resource = Resource.register(uuid4(), name="Shared", now=now())
    await ResourceRepository(store).save(resource)
    return resource.id


async def test_a_process_applies_what_another_appends_and_decides_without_a_read(
    store: EventStore, processes: tuple[Process, Process]
) -> None:
    writer, reader = processes
    resource_id = await registered(store)
    await reader.book(resource_id, 0)
    await writer.book(resource_id, 2)  # the writer loads the resource after the reader's booking

    # when: the writer books more; the reader only listens
    for hour in range(4, 14, 2):
        await writer.book(resource_id, hour)

    # then: the reader's cache follows, and its next decision neither reads nor loses
    await until(lambda: reader.version(resource_id) == writer.version(resource_id), "followed")
    reader.repository.catch_ups = 0
    await reader.book(resource_id, 20)
    assert (reader.repository.lost, reader.repository.catch_ups) == (0, 0)
    assert reader.repository.cached(resource_id) == await ResourceRepository(store).load(
        resource_id
    )


async def test_one_append_of_many_events_comes_in_notifications_below_the_limit(
    store: EventStore, processes: tuple[Process, Process], database_url: str
) -> None:
    writer, reader = processes
    resource_id = await registered(store)
    await reader.book(resource_id, 0)
    payloads: list[str] = []
    spy = await asyncpg.connect(database_url)
    await spy.add_listener(CHANNEL, lambda *args: payloads.append(args[3]))
    try:
        # when: one append carries 100 bookings (about 45 kB of events)
        resource = await writer.repository.load(resource_id)
        for hour in range(2, 202, 2):
            resource.create_booking(
                uuid4(),
                client_id=uuid4(),
                start=BASE + hour * HOUR,
                end=BASE + (hour + 1) * HOUR,
                details="x" * 200,
                actor=None,
                now=now(),
            )
        await writer.repository.save(resource)
        await until(lambda: reader.version(resource_id) == 102, "all 100 heard")
    finally:
        await spy.close()

    lines = [line for payload in payloads for line in payload.split("\n")]
    mine = [line.split(" ") for line in lines if line.startswith(str(resource_id))]
    assert [int(words[1]) for words in mine] == list(range(3, 103))
    assert len(payloads) > 1
    assert max(len(payload.encode()) for payload in payloads) < 8000
    assert reader.repository.cached(resource_id) == await ResourceRepository(store).load(
        resource_id
    )


async def test_an_event_too_large_to_send_drops_the_resource_from_the_cache(
    store: EventStore, processes: tuple[Process, Process]
) -> None:
    writer, reader = processes
    resource_id = await registered(store)
    await reader.book(resource_id, 0)
    await writer.handlers.update_resource(UpdateResource(resource_id, {"details": "x" * 9000}))

    await until(lambda: reader.version(resource_id) is None, "dropped")
    await reader.book(resource_id, 2)  # loaded again, with the large event
    cached = reader.repository.cached(resource_id)
    assert cached is not None
    assert cached.details == "x" * 9000


async def test_a_resource_under_a_decision_is_left_to_that_decision(
    store: EventStore, processes: tuple[Process, Process]
) -> None:
    writer, reader = processes
    resource_id = await registered(store)
    await reader.book(resource_id, 0)
    version = reader.version(resource_id)
    heard_after: list[int] = []

    async with reader.repository.lock(resource_id):
        await writer.book(resource_id, 2)
        await writer.book(resource_id, 4)  # heard while the reader still holds the lock...
        await asyncio.sleep(0.3)
        heard_after.append(reader.version(resource_id) or 0)

    # ...and left alone: the version is as it was, and the next decision catches up itself
    assert heard_after == [version]
    await reader.book(resource_id, 6)
    assert reader.repository.lost == 1
    assert reader.repository.cached(resource_id) == await ResourceRepository(store).load(
        resource_id
    )


async def test_an_event_that_skips_a_version_drops_the_resource(
    store: EventStore, processes: tuple[Process, Process]
) -> None:
    writer, reader = processes
    resource_id = await registered(store)
    await reader.book(resource_id, 0)
    resource = await writer.repository.load(resource_id)
    resource.create_booking(
        uuid4(),
        client_id=uuid4(),
        start=BASE + 2 * HOUR,
        end=BASE + 3 * HOUR,
        details=None,
        actor=None,
        now=now(),
    )
    resource.create_booking(
        uuid4(),
        client_id=uuid4(),
        start=BASE + 4 * HOUR,
        end=BASE + 5 * HOUR,
        details=None,
        actor=None,
        now=now(),
    )
    first, second = resource.collect_events()

    reader.repository.heard(second)  # as if the one before it went unheard

    assert reader.version(resource_id) is None
    assert first.originator_version == second.originator_version - 1


async def test_after_a_lost_connection_it_listens_again_and_drops_what_it_cached(
    store: EventStore, pool: asyncpg.Pool, processes: tuple[Process, Process]
) -> None:
    writer, reader = processes
    resource_id = await registered(store)
    await reader.book(resource_id, 0)
    others = await listening_backends(pool) - {reader.backend}

    # when: the listening connection is cut
    await pool.execute("SELECT pg_terminate_backend($1)", reader.backend)

    # then: the reader listens on a new one, and what it cached may be behind: it is dropped
    await new_listener(pool, others | {reader.backend})
    await until(lambda: reader.version(resource_id) is None, "cache dropped")
    await reader.book(resource_id, 2)
    await writer.book(resource_id, 4)
    await until(lambda: reader.version(resource_id) == writer.version(resource_id), "followed")

"""Processes hear what the others append (the `bookings_appended` notifications) and keep their
cached resources current, instead of finding out on their next decision (a lost append, a read).

Each "process" is a `processes.Process` with a repository (and cache) of its own, on one store;
the listening one runs `keep_listening` on a connection of its own, as a server process does.
"""

import asyncio
from collections.abc import AsyncIterator, Container
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from api.database import open_pool
from api.settings import Settings
from commands.handlers import UpdateResource
from commands.repository import ResourceRepository
from commands.resource import Resource
from events.appended import CHANNEL, keep_listening
from events.store import EventStore
from processes import Process, hour, now, wait_until
from servers import new_database


def book_in(resource: Resource, start: int, details: str | None = None) -> None:
    """Decide a booking of the hour `start` on a resource in memory (saved by the caller)."""
    resource.create_booking(
        uuid4(),
        client_id=uuid4(),
        start=hour(start),
        end=hour(start + 1),
        details=details,
        actor=None,
        now=now(),
    )


class Reader(Process):
    """A process that listens; `backend`: the server process of its listening connection."""

    backend = 0


async def followed(reader: Process, writer: Process, resource_id: UUID) -> None:
    """Wait until the reader's cache of the resource is where the writer's is."""

    def same() -> bool:
        return reader.version(resource_id) == writer.version(resource_id)

    await wait_until(same, 10, "the reader's cache followed the writer's")


async def listening_backends(pool: asyncpg.Pool) -> set[int]:
    query = "SELECT pid FROM pg_stat_activity WHERE query = $1"
    return {row["pid"] for row in await pool.fetch(query, f'LISTEN "{CHANNEL}"')}


async def new_listener(pool: asyncpg.Pool, before: set[int]) -> int:
    """The backend of the one listening connection that is not among `before`."""

    async def started() -> bool:
        return bool(await listening_backends(pool) - before)

    await wait_until(started, 10, "a connection listening")
    [backend] = await listening_backends(pool) - before
    return backend


@pytest.fixture
async def processes(
    store: EventStore, pool: asyncpg.Pool, database_url: str
) -> AsyncIterator[tuple[Process, Reader]]:
    """A writer, and a reader that listens (`reader.backend`: its listening connection)."""
    writer, reader = Process(store, pool), Reader(store, pool)
    async with listening(store, pool, database_url, reader) as backend:
        reader.backend = backend
        yield writer, reader


@asynccontextmanager
async def listening(
    store: EventStore,
    pool: asyncpg.Pool,
    database_url: str,
    process: Process,
    ours: Container[int] = (),
) -> AsyncIterator[int]:
    """The process runs `keep_listening` meanwhile; the backend of its listening connection."""
    before = await listening_backends(pool)
    task = asyncio.create_task(
        keep_listening(database_url, store.mapper, process.repository, ours=ours)
    )
    try:
        yield await new_listener(pool, before)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def cached_by(process: Process, store: EventStore) -> UUID:
    """A new resource that the process has cached: it booked the hour 0."""
    resource = Resource.register(uuid4(), name="Shared", now=now())
    await ResourceRepository(store).save(resource)
    await process.book(resource.id, 0)
    return resource.id


async def in_store(store: EventStore, resource_id: UUID) -> Resource:
    """The resource as the store has it now."""
    return await ResourceRepository(store).load(resource_id)


async def test_a_process_applies_what_another_appends_and_decides_without_a_read(
    store: EventStore, processes: tuple[Process, Reader]
) -> None:
    writer, reader = processes
    resource_id = await cached_by(reader, store)
    await writer.book(resource_id, 2)  # the writer loads the resource after the reader's booking

    # when: the writer books more; the reader only listens
    for start in range(4, 14, 2):
        await writer.book(resource_id, start)

    # then: the reader's cache follows, and its next decision neither reads nor loses
    await followed(reader, writer, resource_id)
    reader.repository.catch_ups = 0
    await reader.book(resource_id, 20)
    assert (reader.repository.lost, reader.repository.catch_ups) == (0, 0)
    assert reader.repository.cached(resource_id) == await in_store(store, resource_id)


async def test_one_append_of_many_events_comes_in_notifications_below_the_limit(
    store: EventStore, processes: tuple[Process, Reader], database_url: str
) -> None:
    writer, reader = processes
    resource_id = await cached_by(reader, store)
    payloads: list[str] = []
    spy = await asyncpg.connect(database_url)
    await spy.add_listener(CHANNEL, lambda *args: payloads.append(args[3]))
    try:
        # when: one append carries 100 bookings (about 45 kB of events)
        resource = await writer.repository.load(resource_id)
        for start in range(2, 202, 2):
            book_in(resource, start, details="x" * 200)
        await writer.repository.save(resource)
        await wait_until(lambda: reader.version(resource_id) == 102, 10, "all 100 heard")
    finally:
        await spy.close()

    lines = [line for payload in payloads for line in payload.split("\n")]
    mine = [line.split(" ") for line in lines if line.startswith(str(resource_id))]
    assert [int(words[1]) for words in mine] == list(range(3, 103))
    assert len(payloads) > 1
    assert max(len(payload.encode()) for payload in payloads) < 8000
    assert reader.repository.cached(resource_id) == await in_store(store, resource_id)


async def test_an_event_too_large_to_send_drops_the_resource_from_the_cache(
    store: EventStore, processes: tuple[Process, Reader]
) -> None:
    writer, reader = processes
    resource_id = await cached_by(reader, store)
    await writer.handlers.update_resource(UpdateResource(resource_id, {"details": "x" * 9000}))

    await wait_until(lambda: reader.version(resource_id) is None, 10, "dropped")
    await reader.book(resource_id, 2)  # loaded again, with the large event
    cached = reader.repository.cached(resource_id)
    assert cached is not None
    assert cached.details == "x" * 9000


async def test_what_is_heard_during_a_decision_waits_for_it_to_end(
    store: EventStore, processes: tuple[Process, Reader]
) -> None:
    writer, reader = processes
    resource_id = await cached_by(reader, store)
    version = reader.version(resource_id)
    assert version is not None
    heard_during: list[int | None] = []

    async with reader.repository.lock(resource_id):
        await writer.book(resource_id, 2)
        await writer.book(resource_id, 4)  # heard while the reader holds the lock...
        await asyncio.sleep(0.3)
        heard_during.append(reader.version(resource_id))

    # ...and left alone until it is let go: then applied, so the next decision loses nothing
    assert heard_during == [version]
    assert reader.version(resource_id) == version + 2
    reader.repository.catch_ups = 0
    await reader.book(resource_id, 6)
    assert (reader.repository.lost, reader.repository.catch_ups) == (0, 0)
    assert reader.repository.cached(resource_id) == await in_store(store, resource_id)


async def test_what_a_decision_brought_the_resource_past_is_skipped_when_it_ends(
    store: EventStore, processes: tuple[Process, Reader]
) -> None:
    writer, reader = processes
    resource_id = await cached_by(reader, store)
    version = reader.version(resource_id)
    assert version is not None

    # when: the writer's booking is heard while a decision of the reader's holds the resource,
    # and that decision reads it from the store (as one does after a lost append)
    async with reader.repository.lock(resource_id):
        await writer.book(resource_id, 2)
        await asyncio.sleep(0.3)
        cached = reader.repository.cached(resource_id)
        assert cached is not None
        await reader.repository.catch_up(cached)
        assert reader.version(resource_id) == version + 1

    # then: what was heard meanwhile is not applied again, and the resource stays cached
    assert reader.version(resource_id) == version + 1
    assert reader.repository.cached(resource_id) == await in_store(store, resource_id)


async def test_a_race_lost_while_hearing_the_others_does_not_make_decisions_read_first(
    store: EventStore, pool: asyncpg.Pool, processes: tuple[Process, Reader]
) -> None:
    writer, reader = processes
    resource_id = await cached_by(reader, store)
    await writer.book(resource_id, 2)
    await followed(reader, writer, resource_id)  # the reader hears the others
    assert reader.repository.hearing

    # when: an append it does not hear (as if its notification were still on its way) makes
    # the reader's next decision lose, catch up and decide again
    unheard = EventStore(pool, store.mapper, store.projector)
    unheard.notify = False
    await Process(unheard, pool).book(resource_id, 4)
    reader.repository.catch_ups = 0
    await reader.book(resource_id, 6)
    assert (reader.repository.lost, reader.repository.catch_ups) == (1, 1)

    # then: that was a race, not notifications that fail: the next decision reads nothing first
    assert not reader.repository.shared(resource_id)
    await reader.book(resource_id, 8)
    assert (reader.repository.lost, reader.repository.catch_ups) == (1, 1)


async def test_an_event_that_skips_a_version_drops_the_resource(
    store: EventStore, processes: tuple[Process, Reader]
) -> None:
    writer, reader = processes
    resource_id = await cached_by(reader, store)
    resource = await writer.repository.load(resource_id)
    book_in(resource, 2)
    book_in(resource, 4)
    first, second = resource.collect_events()

    reader.repository.heard(second)  # as if the one before it went unheard

    assert reader.version(resource_id) is None
    assert first.originator_version == second.originator_version - 1


async def test_after_a_lost_connection_it_listens_again_and_drops_what_it_cached(
    store: EventStore, pool: asyncpg.Pool, processes: tuple[Process, Reader]
) -> None:
    writer, reader = processes
    resource_id = await cached_by(reader, store)
    others = await listening_backends(pool) - {reader.backend}

    # when: the listening connection is cut
    await pool.execute("SELECT pg_terminate_backend($1)", reader.backend)

    # then: the reader listens on a new one, and what it cached may be behind: it is dropped
    await new_listener(pool, others | {reader.backend})
    await wait_until(lambda: reader.version(resource_id) is None, 10, "cache dropped")
    await reader.book(resource_id, 2)
    await writer.book(resource_id, 4)
    await followed(reader, writer, resource_id)


async def test_what_the_processes_own_connections_notify_is_not_decoded(
    store: EventStore, pool: asyncpg.Pool, database_url: str, processes: tuple[Process, Reader]
) -> None:
    writer, reader = processes
    # A process that appends through `store` and listens with its writers as its own.
    own = Process(store, pool)
    others = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        async with listening(store, pool, database_url, own, ours=store.writers):
            resource_id = await cached_by(reader, store)
            await own.book(resource_id, 2)
            version = own.version(resource_id)

            # when: appends through the same store's connections
            await writer.book(resource_id, 4)
            await writer.book(resource_id, 6)
            await followed(reader, writer, resource_id)

            # then: the process takes them for its own and leaves its cache as it was...
            assert set(store.writers) <= await backends(pool)
            assert own.version(resource_id) == version
            # ...but hears an append through another pool's connection: it finds versions
            # missing and drops the resource
            other = Process(EventStore(others, store.mapper, store.projector), pool)
            await other.book(resource_id, 8)
            await wait_until(lambda: own.version(resource_id) is None, 10, "dropped")
    finally:
        await others.close()


async def backends(pool: asyncpg.Pool) -> set[int]:
    return {row["pid"] for row in await pool.fetch("SELECT pid FROM pg_stat_activity")}


async def test_a_store_that_knows_nobody_else_listens_sends_nothing(
    store: EventStore, pool: asyncpg.Pool, database_url: str
) -> None:
    alone = EventStore(pool, store.mapper, store.projector)
    alone.notify = False
    told = EventStore(pool, store.mapper, store.projector)
    first, second = uuid4(), uuid4()
    payloads: list[str] = []
    spy = await asyncpg.connect(database_url)
    await spy.add_listener(CHANNEL, lambda *args: payloads.append(args[3]))
    try:
        # when: one registration goes through the store that is alone, then one through the
        # other (notifications arrive in the order of the commits that send them)
        await ResourceRepository(alone).save(Resource.register(first, name="Alone", now=now()))
        await alone.notices_sent()
        await ResourceRepository(told).save(Resource.register(second, name="Told", now=now()))
        await wait_until(lambda: bool(payloads), 10, "the second registration heard")
    finally:
        await spy.close()

    # then: only the second was sent
    assert [line.split(" ")[:2] for line in payloads] == [[str(second), "1"]]


async def test_appends_notify_while_another_process_listens_and_not_when_none_does(
    store: EventStore, database_url: str
) -> None:
    """Two processes of their own, on a database of its own (the session's app listens on the
    shared one): each signs in as it listens, and tells its store whether the other has."""
    url = await new_database(database_url, "listeners")
    pool = await open_pool(url, Settings(database_url=url))
    a_store, b_store = (EventStore(pool, store.mapper, store.projector) for _ in range(2))
    a, b = Process(a_store, pool), Process(b_store, pool)

    def listen(store: EventStore, process: Process) -> asyncio.Task[None]:
        def others(listen: bool) -> None:
            store.notify = listen

        work = keep_listening(
            url, store.mapper, process.repository, others=others, check_seconds=0.05
        )
        return asyncio.create_task(work)

    tasks = [listen(a_store, a)]
    try:
        # A alone: its appends tell nobody
        await wait_until(lambda: not a_store.notify, 10, "A knows it is alone")

        # B signs in: A tells, and B follows what A appends to a resource B holds
        tasks.append(listen(b_store, b))
        resource_id = await cached_by(b, b_store)
        await wait_until(lambda: a_store.notify, 10, "A knows of B")
        await a.book(resource_id, 2)
        await followed(b, a, resource_id)

        # B stops listening: A is alone again; B cannot tell any more, and tells
        tasks[1].cancel()
        with pytest.raises(asyncio.CancelledError):
            await tasks[1]
        assert b_store.notify
        await wait_until(lambda: not a_store.notify, 10, "A knows it is alone again")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pool.close()


async def test_an_append_does_not_wait_for_its_notifications_nor_fail_with_them(
    store: EventStore, pool: asyncpg.Pool, processes: tuple[Process, Reader], monkeypatch: Any
) -> None:
    """Notifications go out after the append has committed, in a transaction of their own:
    appends do not wait for PostgreSQL's lock on notifying commits, and one that cannot be sent
    costs the append nothing."""
    writer, reader = processes
    resource_id = await cached_by(reader, store)
    too_long = f"SELECT pg_notify('{CHANNEL}', repeat('x', 9000)) FROM unnest($1::text[])"
    monkeypatch.setattr("events.store.NOTIFY", too_long)

    # when: the notification of a booking fails (PostgreSQL takes no payload that long)
    await writer.book(resource_id, 2)
    await store.notices_sent()

    # then: the booking is recorded all the same, and the reader did not hear of it
    assert writer.version(resource_id) == reader.version(resource_id) + 1
    assert (await in_store(store, resource_id)).version == writer.version(resource_id)

    # and the next append's notification goes out as usual
    monkeypatch.undo()
    await writer.book(resource_id, 4)
    await wait_until(lambda: reader.version(resource_id) is None, 10, "dropped: one unheard")

"""The PostgreSQL event store against a real database: appends, conflicts, snapshots, the feed.

Every test works on streams with fresh random ids, so it can share the database with others.
"""

import asyncio
import copy
import json
import random
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import cast
from uuid import UUID, uuid4

import asyncpg
import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import IntegrityError

from api.settings import Settings
from commands.errors import SlotTakenError
from commands.handlers import CancelBooking, CommandHandlers, CreateBooking
from commands.repository import ResourceRepository
from commands.resource import TRANSCODINGS, Resource
from events.resource import BookingCancelled, BookingCreated, ResourceRegistered
from events.store import ConcurrencyError, DomainEvent, EventStore, RecordedEvent, new_mapper
from holding import appending_waits, inserts_waiting, next_version_held
from processes import wait_until
from projections import bookings
from projections.runner import project

HOUR = timedelta(hours=1)
READ_MODEL_ROWS = {
    "bookings": "SELECT count(*) FROM bookings WHERE booking_id = $1",
    "open": "SELECT count(*) FROM bookings WHERE booking_id = $1 AND status = 'confirmed'",
}


def now() -> datetime:
    return datetime.now(UTC)


# Whole hours well ahead of the real time, fixed once so that `future(n)` is stable in a test.
BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=30)


def future(hours: int) -> datetime:
    return BASE + hours * HOUR


def registered(name: str = "Room") -> Resource:
    return Resource.register(uuid4(), name=name, now=now())


def book(resource: Resource, start: datetime, end: datetime) -> UUID:
    booking_id = uuid4()
    resource.create_booking(
        booking_id, client_id=uuid4(), start=start, end=end, details=None, actor=None, now=now()
    )
    return booking_id


def rebuilt(snapshot: Snapshot | None, events: Sequence[DomainEvent]) -> Resource:
    """The aggregate from what `store.load` returned."""
    resource = cast(Resource | None, snapshot.mutate(None) if snapshot else None)
    for event in events:
        resource = cast(Resource, event.mutate(resource))
    assert resource is not None
    return resource


async def load(store: EventStore, resource_id: UUID) -> Resource:
    return rebuilt(*await store.load(resource_id))


async def new_resource(store: EventStore, name: str = "Room") -> Resource:
    resource = registered(name)
    await store.append(resource.collect_events())
    return resource


PROJECTED = {"bookings": 1, "open": 1}
NOT_PROJECTED = {"bookings": 0, "open": 0}


async def read_model_counts(pool: asyncpg.Pool, booking_id: UUID) -> dict[str, int]:
    return {table: await pool.fetchval(sql, booking_id) for table, sql in READ_MODEL_ROWS.items()}


async def projected(pool: asyncpg.Pool, booking_ids: list[UUID]) -> int:
    """How many of the bookings have a row in the bookings read model."""
    count: int = await pool.fetchval(
        "SELECT count(*) FROM bookings WHERE booking_id = ANY($1::uuid[])", booking_ids
    )
    return count


async def stream_keys(pool: asyncpg.Pool, stream_id: UUID) -> list[int]:
    rows = await pool.fetch(
        "SELECT version FROM events WHERE stream_id = $1 ORDER BY version", stream_id
    )
    return [row["version"] for row in rows]


async def feed_tail(store: EventStore) -> int:
    """The position a reader that has caught up with the feed now would continue after."""
    after = 0
    while batch := await store.read_feed(after, 1000):
        after = batch[-1].position
    return after


# --- append and read back ---------------------------------------------------------------------


async def test_appended_events_read_back_equal_and_in_order(store: EventStore) -> None:
    resource = registered("Meeting room")
    b1 = book(resource, future(1), future(2))
    b2 = book(resource, future(3), future(4))
    resource.cancel_booking(b1, reason="moved", actor="alice", now=now())
    pending = resource.collect_events()

    recorded = await store.append(pending)

    assert [r.event for r in recorded] == pending
    positions = [r.position for r in recorded]
    assert positions == sorted(positions)
    assert len(set(positions)) == 4
    snapshot, loaded = await store.load(resource.id)
    assert snapshot is None
    assert loaded == pending
    assert [type(e) for e in loaded] == [
        ResourceRegistered,
        BookingCreated,
        BookingCreated,
        BookingCancelled,
    ]
    assert [e.originator_version for e in loaded] == [1, 2, 3, 4]
    assert cast(BookingCreated, loaded[2]).booking_id == b2
    assert cast(BookingCreated, loaded[1]).start_time == future(1)
    assert cast(BookingCancelled, loaded[3]).actor == "alice"

    stream = await store.read_stream(resource.id)
    assert stream == recorded
    later = await store.read_stream(resource.id, after_version=2)
    assert [r.event.originator_version for r in later] == [3, 4]
    assert later == recorded[2:]

    again = await load(store, resource.id)
    assert again.version == 4
    assert set(again.holds) == {str(b2)}


async def test_unknown_stream_loads_empty(store: EventStore) -> None:
    assert await store.load(uuid4()) == (None, [])
    assert await store.read_stream(uuid4()) == []


async def test_appends_are_projected_in_the_same_statement(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    resource = await new_resource(store)
    booking_id = book(resource, future(1), future(2))
    await store.append(resource.collect_events())

    assert await read_model_counts(pool, booking_id) == PROJECTED


async def test_texts_times_and_rules_reach_the_read_models_as_they_were(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    # Characters that JSON escapes, and some beyond ASCII.
    text = 'quote " backslash \\ slash / newline \n tab \t bell \x07 é 日本 \U0001f642'
    rules = {
        "max_duration_minutes": 90,
        "opening_hours": {"monday": [{"start": "08:00", "end": "17:00"}]},
    }
    resource = Resource.register(
        uuid4(), name=text, details=text, rules=rules, actor=text, now=now()
    )
    india = timezone(timedelta(hours=5, minutes=30))
    start = datetime(2031, 3, 3, 14, 6, 7, 891011, tzinfo=india)  # a Monday, 08:36 UTC
    booking_id = uuid4()
    resource.create_booking(
        booking_id,
        client_id=uuid4(),
        start=start,
        end=start + HOUR,
        details=text,
        actor=text,
        now=now(),
    )
    await store.append(resource.collect_events())

    room = await pool.fetchrow(
        "SELECT name, details, rules FROM resources WHERE resource_id = $1", resource.id
    )
    stored = json.loads(room["rules"])
    assert (room["name"], room["details"], {k: stored[k] for k in rules}) == (text, text, rules)
    booking = await pool.fetchrow(
        "SELECT start_time, end_time, details FROM bookings WHERE booking_id = $1", booking_id
    )
    assert (booking["start_time"], booking["end_time"]) == (start, start + HOUR)
    assert booking["details"] == text


# --- expected version -------------------------------------------------------------------------


async def test_append_at_a_taken_version_conflicts_and_writes_nothing(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    resource = await new_resource(store)
    stale = copy.deepcopy(resource)
    winner = book(resource, future(1), future(2))
    await store.append(resource.collect_events())
    loser = book(stale, future(5), future(6))  # another slot: only the version collides
    assert stale.version == 2

    with pytest.raises(ConcurrencyError) as raised:
        await store.append(stale.collect_events())

    assert isinstance(raised.value, IntegrityError)
    assert await stream_keys(pool, resource.id) == [1, 2]
    _, events = await store.load(resource.id)
    assert cast(BookingCreated, events[-1]).booking_id == winner
    assert await read_model_counts(pool, loser) == NOT_PROJECTED
    assert await read_model_counts(pool, winner) == PROJECTED


async def test_a_conflict_in_one_stream_discards_the_whole_append(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    """Events of several streams are recorded atomically: all of them or none."""
    contested = await new_resource(store)
    stale = copy.deepcopy(contested)
    book(contested, future(1), future(2))
    await store.append(contested.collect_events())
    fresh = registered("Innocent bystander")
    fresh_booking = book(fresh, future(1), future(2))
    book(stale, future(3), future(4))

    with pytest.raises(ConcurrencyError):
        await store.append([*fresh.collect_events(), *stale.collect_events()])

    assert await stream_keys(pool, fresh.id) == []
    assert await stream_keys(pool, contested.id) == [1, 2]
    assert (
        await pool.fetchval("SELECT count(*) FROM resources WHERE resource_id = $1", fresh.id) == 0
    )
    assert await read_model_counts(pool, fresh_booking) == NOT_PROJECTED


async def test_concurrent_appends_to_one_stream_exactly_one_wins(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    resource = await new_resource(store)
    book(resource, future(0), future(1))
    await store.append(resource.collect_events())
    loaded = await load(store, resource.id)
    assert loaded.version == 2

    contenders = [copy.deepcopy(loaded) for _ in range(20)]
    booking_ids = [book(r, future(2 + 2 * i), future(3 + 2 * i)) for i, r in enumerate(contenders)]
    outcomes = await asyncio.gather(
        *(store.append(r.collect_events()) for r in contenders), return_exceptions=True
    )

    won = [i for i, o in enumerate(outcomes) if isinstance(o, list)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1, outcomes
    assert len(lost) == 19
    assert all(isinstance(e, ConcurrencyError) for e in lost), lost
    assert await stream_keys(pool, resource.id) == [1, 2, 3]
    _, events = await store.load(resource.id)
    assert cast(BookingCreated, events[-1]).booking_id == booking_ids[won[0]]
    projected = await pool.fetch(
        "SELECT booking_id FROM bookings WHERE booking_id = ANY($1::uuid[])", booking_ids
    )
    assert [row["booking_id"] for row in projected] == [booking_ids[won[0]]]


async def test_concurrent_appends_to_different_streams_all_succeed(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    resources = [await new_resource(store, f"Room {i}") for i in range(20)]
    booking_ids = [book(r, future(1), future(2)) for r in resources]

    outcomes = await asyncio.gather(
        *(store.append(r.collect_events()) for r in resources), return_exceptions=True
    )

    assert all(isinstance(o, list) and len(o) == 1 for o in outcomes), outcomes
    for resource in resources:
        assert await stream_keys(pool, resource.id) == [1, 2]
    assert await projected(pool, booking_ids) == 20


async def test_an_open_transaction_on_one_stream_does_not_block_another(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    """No shared lock: while one append is still in its transaction, another stream appends."""
    blocked, other = await new_resource(store), await new_resource(store)
    book(blocked, future(1), future(2))
    book(other, future(1), future(2))
    async with next_version_held(pool, blocked.id):
        held = asyncio.create_task(store.append(blocked.collect_events()))
        await asyncio.wait_for(until_an_append_waits(pool), timeout=10)
        recorded = await asyncio.wait_for(store.append(other.collect_events()), timeout=10)
        assert [r.event.originator_version for r in recorded] == [2]
        assert not held.done()
    await held
    assert await stream_keys(pool, blocked.id) == [1, 2]
    assert await stream_keys(pool, other.id) == [1, 2]


# --- group commit -----------------------------------------------------------------------------


def store_on(pool: asyncpg.Pool, **options: int) -> EventStore:
    """A store as the app makes it, on this pool (`options`: the store's `statements`, `batch`)."""
    return EventStore(pool, new_mapper(*TRANSCODINGS), projector=project, **options)


def one_at_a_time(store: EventStore) -> EventStore:
    """A store on the same pool that sends one statement at a time: appends made while it is
    under way all go out together in the next."""
    return store_on(store.pool, statements=1)


async def test_appends_made_at_once_go_out_in_one_statement_each_with_its_positions(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    grouped = one_at_a_time(store)
    resources = [await new_resource(store, f"Room {i}") for i in range(20)]
    booking_ids = [book(r, future(1), future(2)) for r in resources]

    outcomes = await asyncio.gather(*(grouped.append(r.collect_events()) for r in resources))

    stored = await pool.fetch(
        "SELECT stream_id, position, transaction_id FROM events "
        "WHERE stream_id = ANY($1::uuid[]) AND version = 2",
        [r.id for r in resources],
    )
    assert len({row["transaction_id"] for row in stored}) == 1  # one statement, one commit
    positions = {row["stream_id"]: row["position"] for row in stored}
    for resource, [recorded] in zip(resources, outcomes, strict=True):
        assert recorded.event.originator_id == resource.id
        assert recorded.position == positions[resource.id]
    assert await projected(pool, booking_ids) == 20


async def test_a_stale_append_among_others_fails_alone(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    """The statement of a group fails on the stale append, which fails; the others then go out
    again together, in one statement."""
    grouped = one_at_a_time(store)
    contested = await new_resource(store)
    stale = copy.deepcopy(contested)
    book(contested, future(1), future(2))
    await store.append(contested.collect_events())
    lost = book(stale, future(3), future(4))
    others = [await new_resource(store, f"Room {i}") for i in range(5)]
    booked = [book(r, future(1), future(2)) for r in others]

    outcomes = await asyncio.gather(
        *(grouped.append(r.collect_events()) for r in [*others[:2], stale, *others[2:]]),
        return_exceptions=True,
    )

    assert isinstance(outcomes[2], ConcurrencyError), outcomes
    assert outcomes[2].stream_id == contested.id
    assert all(isinstance(o, list) for i, o in enumerate(outcomes) if i != 2), outcomes
    for resource in others:
        assert await stream_keys(pool, resource.id) == [1, 2]
    together = await pool.fetchval(
        "SELECT count(DISTINCT transaction_id) FROM events WHERE stream_id = ANY($1::uuid[])"
        " AND version = 2",
        [r.id for r in others],
    )
    assert together == 1
    assert await stream_keys(pool, contested.id) == [1, 2]
    assert await read_model_counts(pool, lost) == NOT_PROJECTED
    for booking_id in booked:
        assert await read_model_counts(pool, booking_id) == PROJECTED


async def test_a_caller_that_gives_up_waiting_leaves_the_others_their_appends(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    grouped = one_at_a_time(store)
    resources = [await new_resource(store, f"Room {i}") for i in range(5)]
    for resource in resources:
        book(resource, future(1), future(2))
    appends = [asyncio.create_task(grouped.append(r.collect_events())) for r in resources]
    await asyncio.sleep(0)  # every append is waiting for the statement now

    appends[0].cancel()

    done = await asyncio.wait_for(asyncio.gather(*appends[1:]), timeout=10)
    assert [[r.event.originator_id for r in found] for found in done] == [
        [r.id] for r in resources[1:]
    ]
    for resource in resources[1:]:
        assert await stream_keys(pool, resource.id) == [1, 2]


class Returning:
    """A pool that runs `then` each time a connection it lent is back, before the borrower
    goes on."""

    def __init__(self, pool: asyncpg.Pool, then: Callable[[], object]) -> None:
        self.pool, self.then = pool, then

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.pool.acquire() as conn:
            yield conn
        self.then()


async def test_an_append_made_as_the_sending_task_finishes_is_sent(pool: asyncpg.Pool) -> None:
    # The task that sent the last group finds nothing waiting and ends; an append made right
    # then (before the task is done) must not count on it.
    first, second = registered(), registered()
    later: list[asyncio.Task[list[RecordedEvent]]] = []

    def append_once() -> None:
        if not later:
            later.append(asyncio.create_task(store.append(second.collect_events())))

    store = store_on(cast(asyncpg.Pool, Returning(pool, append_once)), statements=1)
    await store.append(first.collect_events())
    await wait_until(lambda: bool(later), 10, "the connection back")

    [recorded] = await asyncio.wait_for(later[0], timeout=10)
    assert recorded.event.originator_id == second.id
    assert await stream_keys(pool, second.id) == [1]


# --- snapshots --------------------------------------------------------------------------------


@pytest.mark.usefixtures("pool")  # the schema
async def test_appends_fail_when_no_connection_is_to_be_had(settings: Settings) -> None:
    assert settings.database_url
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=1)
    store = store_on(pool)
    first, second = registered(), registered()
    await store.append(first.collect_events())
    await pool.close()

    appends = [store.append(second.collect_events()) for _ in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*appends, return_exceptions=True), 10)

    assert all(isinstance(r, asyncpg.InterfaceError) for r in results), results


async def test_snapshots_bound_the_load_and_give_the_same_decisions(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    repository = ResourceRepository(store, snapshot_every=5, spread=False)
    resource = registered("Snapshotted")
    await repository.save(resource)
    booked = []
    for i in range(6):  # versions 2..8 (4 and 5 saved together): the snapshot is at 5
        booked.append(book(resource, future(2 * i), future(2 * i + 1)))
        if i == 2:
            resource.cancel_booking(booked[0], reason=None, actor=None, now=now())
        await repository.save(resource)
    assert resource.version == 8
    await store.snapshots_written()

    row = await pool.fetchrow(
        "SELECT version, topic, state FROM snapshots WHERE stream_id = $1", resource.id
    )
    assert row is not None
    assert row["version"] == 5
    state = json.loads(row["state"])
    assert state["topic"] == "commands.resource:Resource"
    assert set(state["state"]["holds"]) == {str(b) for b in booked[1:3]}

    snapshot, events = await store.load(resource.id)
    assert snapshot is not None
    assert snapshot.originator_version == 5
    assert [e.originator_version for e in events] == [6, 7, 8]
    assert await stream_keys(pool, resource.id) == list(range(1, 9))

    fresh = await ResourceRepository(store, snapshot_every=5, spread=False).load(resource.id)
    assert fresh is not resource
    assert fresh.version == resource.version
    assert (fresh.name, fresh.capacity, fresh.timezone) == ("Snapshotted", 1, "UTC")
    assert fresh.holds == resource.holds
    assert str(booked[0]) not in fresh.holds
    assert len(fresh.holds) == 5
    from_snapshot = cast(Resource, snapshot.mutate(None))
    assert from_snapshot.version == 5
    assert set(from_snapshot.holds) == {str(b) for b in booked[1:3]}

    # Same decisions: the slot of a held booking is refused, a cancelled one's is free.
    for candidate in (copy.deepcopy(fresh), copy.deepcopy(resource)):
        with pytest.raises(SlotTakenError) as taken:
            book(candidate, future(2), future(3))
        assert taken.value.conflicting_booking_ids == [booked[1]]
        book(candidate, future(0), future(1))
        assert len(candidate.collect_events()) == 1

    for hours in (20, 22):  # versions 9 and 10: the snapshot moves to 10
        book(fresh, future(hours), future(hours + 1))
        await repository.save(fresh)
    await store.snapshots_written()
    assert (
        await pool.fetchval("SELECT version FROM snapshots WHERE stream_id = $1", resource.id) == 10
    )
    snapshot, events = await store.load(resource.id)
    assert snapshot is not None
    assert snapshot.originator_version == 10
    assert events == []


async def test_appends_do_not_wait_for_snapshots(store: EventStore, pool: asyncpg.Pool) -> None:
    """A snapshot is written after the append that made it due, apart from it: an append goes
    through while the snapshots table is locked, and the snapshot follows once it is free."""
    repository = ResourceRepository(store, snapshot_every=5, spread=False)
    resource = registered("Snapshotted later")
    await repository.save(resource)
    async with pool.acquire() as locker, locker.transaction():
        await locker.execute("LOCK TABLE snapshots IN ACCESS EXCLUSIVE MODE")
        for i in range(5):  # versions 2..6: a snapshot is due at 5
            book(resource, future(2 * i), future(2 * i + 1))
            await asyncio.wait_for(repository.save(resource), 10)
        assert await stream_keys(pool, resource.id) == list(range(1, 7))

    await asyncio.wait_for(store.snapshots_written(), 10)
    snapshot, events = await store.load(resource.id)
    assert snapshot is not None
    assert snapshot.originator_version == 5
    assert [e.originator_version for e in events] == [6]
    assert rebuilt(snapshot, events) == resource


async def test_resources_booked_alike_take_their_snapshots_apart(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    """Every 4 events, later by up to a half for each resource (by its id): 20 resources booked
    in turn take their snapshots at versions 4 to 6, not all at 4."""

    async def snapshot_versions(repository: ResourceRepository) -> list[int]:
        resources = [registered(f"Room {i}") for i in range(20)]
        for resource in resources:
            await repository.save(resource)
        for version in range(2, 8):
            for resource in resources:
                book(resource, future(version), future(version + 1))
                await repository.save(resource)
        await store.snapshots_written()
        rows = await pool.fetch(
            "SELECT version FROM snapshots WHERE stream_id = ANY($1::uuid[])",
            [r.id for r in resources],
        )
        return [row["version"] for row in rows]

    apart = await snapshot_versions(ResourceRepository(store, snapshot_every=4))
    at_once = await snapshot_versions(ResourceRepository(store, snapshot_every=4, spread=False))

    assert len(apart) == 20
    assert set(apart) <= {4, 5, 6}
    assert len(set(apart)) > 1
    assert at_once == [4] * 20


async def snapshot_writers_wait(pool: asyncpg.Pool, writers: int) -> bool:
    return await inserts_waiting(pool, "snapshots") >= writers


async def test_processes_that_snapshot_the_same_streams_do_not_deadlock(
    store: EventStore, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    """Each statement upserts its snapshots' rows by stream. Here the first process waits for
    the first row, and the second, handed the same streams in the other order, must not take the
    second row meanwhile: it would then wait for the first, which the first process, once it has
    it, would hold while waiting for the second."""
    first, second = store_on(pool), store_on(pool)
    resources = sorted((registered(f"Room {i}") for i in range(2)), key=lambda r: r.id)
    for resource in resources:
        await store.append(resource.collect_events())
    store.save_snapshots(Resource.Snapshot.take(r) for r in resources)  # version 1
    await store.snapshots_written()
    takes = []
    for version in (2, 3):
        for resource in resources:
            book(resource, future(version), future(version + 1))
            resource.collect_events()
        takes.append([Resource.Snapshot.take(r) for r in resources])

    async with pool.acquire() as locker, locker.transaction():
        await locker.execute(
            "SELECT 1 FROM snapshots WHERE stream_id = $1 FOR UPDATE", resources[0].id
        )
        first.save_snapshots(takes[0])
        await wait_until(lambda: snapshot_writers_wait(pool, 1), 10, "the first writer waiting")
        second.save_snapshots(reversed(takes[1]))
        await wait_until(lambda: snapshot_writers_wait(pool, 2), 10, "both writers waiting")

    await asyncio.wait_for(
        asyncio.gather(first.snapshots_written(), second.snapshots_written()), 10
    )
    versions = await pool.fetch(
        "SELECT version FROM snapshots WHERE stream_id = ANY($1::uuid[])", [r.id for r in resources]
    )
    assert [row["version"] for row in versions] == [3, 3]
    assert "not written" not in caplog.text


class CountingSnapshots(EventStore):
    """The store, counting the snapshots it is given."""

    snapshots = 0

    def save_snapshots(self, snapshots: Iterable[Snapshot]) -> None:
        given = list(snapshots)
        self.snapshots += len(given)
        super().save_snapshots(given)


async def test_a_resource_with_many_open_bookings_is_snapshotted_less_often(
    store: EventStore,
) -> None:
    """Every 5 events, or every half as many events as it has open bookings when that is more:
    40 saves on a resource with 40 to 80 open bookings take one snapshot, not 8."""
    counting = CountingSnapshots(store.pool, store.mapper, projector=project)
    repository = ResourceRepository(counting, snapshot_every=5, spread=False)
    resource = registered("Busy")
    for i in range(40):
        book(resource, future(2 * i), future(2 * i + 1))
    await repository.save(resource)
    counting.snapshots = 0

    for i in range(40, 80):
        book(resource, future(2 * i), future(2 * i + 1))
        await repository.save(resource)

    assert counting.snapshots == 1
    await counting.snapshots_written()
    snapshot, events = await store.load(resource.id)
    assert snapshot is not None
    assert len(events) <= len(resource.holds) // 2
    assert rebuilt(snapshot, events) == resource


# --- the global feed --------------------------------------------------------------------------


async def until_an_append_waits(pool: asyncpg.Pool) -> None:
    while not await appending_waits(pool):  # noqa: ASYNC110
        await asyncio.sleep(0.01)


async def test_feed_holds_back_events_behind_an_open_transaction(store: EventStore) -> None:
    """An event committed after a later one, at a lower position, is still read in its turn."""
    slow, fast = await new_resource(store), await new_resource(store)
    start = await feed_tail(store)
    book(slow, future(1), future(2))
    book(fast, future(1), future(2))
    async with next_version_held(store.pool, slow.id):
        held = asyncio.create_task(store.append(slow.collect_events()))
        await asyncio.wait_for(until_an_append_waits(store.pool), timeout=10)
        [fast_event] = await asyncio.wait_for(store.append(fast.collect_events()), timeout=10)
        visible = await asyncio.wait_for(store.read_feed(start), timeout=10)
        ours = {slow.id, fast.id}
        assert [r for r in visible if r.event.originator_id in ours] == []
    [slow_event] = await held
    assert slow_event.position < fast_event.position

    visible = await store.read_feed(start)
    assert [r.position for r in visible] == [slow_event.position, fast_event.position]
    assert [r.event for r in visible] == [slow_event.event, fast_event.event]
    assert await store.read_feed(visible[-1].position) == []
    assert [r.position for r in await store.read_feed(start, limit=1)] == [slow_event.position]
    assert [r.position for r in await store.read_feed(slow_event.position)] == [fast_event.position]


async def test_feed_reader_sees_every_event_once_while_many_write(store: EventStore) -> None:
    writers, per_writer = 8, 25
    start = await feed_tail(store)
    rng = random.Random(20310101)

    streams: list[UUID] = []

    async def slow_append(events: Sequence[DomainEvent]) -> None:
        async with next_version_held(store.pool, events[0].originator_id):
            appending = asyncio.create_task(store.append(events))
            await asyncio.sleep(rng.uniform(0.0, 0.03))
        await appending

    async def write(n: int) -> None:
        slow = n % 3 == 0  # writers 0, 3, 6 hold their transactions
        resource = registered(f"Writer {n}")
        streams.append(resource.id)
        await store.append(resource.collect_events())
        for i in range(per_writer - 1):
            book(resource, future(i), future(i) + HOUR)
            events = resource.collect_events()
            await (slow_append(events) if slow else store.append(events))
            if rng.random() < 0.3:
                await asyncio.sleep(0)

    seen: list[tuple[UUID, int]] = []
    positions: list[int] = []
    done = asyncio.Event()

    async def read() -> None:
        after = start
        while True:
            batch = await store.read_feed(after, limit=7)
            for r in batch:
                positions.append(r.position)
                if r.event.originator_id in streams:
                    seen.append((r.event.originator_id, r.event.originator_version))
            if batch:
                after = batch[-1].position
            elif done.is_set():
                return
            else:
                await asyncio.sleep(0.002)

    reader = asyncio.create_task(read())
    try:
        await asyncio.wait_for(asyncio.gather(*(write(n) for n in range(writers))), timeout=120)
    finally:
        done.set()
    await asyncio.wait_for(reader, timeout=30)

    expected = {(s, v) for s in streams for v in range(1, per_writer + 1)}
    assert len(streams) == writers
    assert len(seen) == len(set(seen)), "an event was read twice"
    assert len(positions) == len(set(positions)), "a position was read twice"
    assert set(seen) == expected, f"missed {len(expected - set(seen))} events"
    for stream_id in streams:
        versions = [v for s, v in seen if s == stream_id]
        assert versions == list(range(1, per_writer + 1))


# --- command handlers across processes --------------------------------------------------------


async def booked(
    handlers: CommandHandlers, resource_id: UUID, start: int, end: int, client: UUID | None = None
) -> UUID:
    """Book hours `start` to `end` (see `future`) through the handlers; the booking's id."""
    command = CreateBooking(resource_id, client or uuid4(), future(start), future(end))
    return (await handlers.create_booking(command)).booking_id


def _cached_version(repository: ResourceRepository, resource_id: UUID) -> int | None:
    cached = repository.cached(resource_id)
    return None if cached is None else cached.version


async def test_a_stale_process_does_not_refuse_on_what_it_missed(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    """A refusal is never decided on a cache that another process has moved past."""

    async def locate(booking_id: UUID) -> UUID | None:
        return await bookings.resource_of(pool, booking_id)

    first = CommandHandlers(ResourceRepository(store), now, locate)
    second_repository = ResourceRepository(store)
    second = CommandHandlers(second_repository, now, locate)
    resource_id = (await new_resource(store)).id
    await second_repository.load(resource_id)  # the second process caches version 1

    # A booking the second process has not seen can still be cancelled through it...
    unseen = await booked(first, resource_id, 1, 2)
    await second.cancel_booking(CancelBooking(unseen))
    view = await bookings.get(pool, unseen)
    assert view is not None
    assert view.status == "cancelled"

    # ...and a slot freed by a cancellation it has not seen can be booked through it.
    taken = await booked(second, resource_id, 3, 4)
    await first.cancel_booking(CancelBooking(taken))
    again = await booked(second, resource_id, 3, 4)
    assert again != taken


async def test_a_refusal_is_not_decided_again_when_the_store_had_nothing_more(
    store: EventStore, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal on a cached resource reads what the store recorded since; when that is
    nothing, the refusal stands without a second decision."""

    async def locate(booking_id: UUID) -> UUID | None:
        return await bookings.resource_of(pool, booking_id)

    handlers = CommandHandlers(ResourceRepository(store), now, locate)
    resource_id = (await new_resource(store)).id
    taken = await booked(handlers, resource_id, 1, 2)  # cached from here on
    decided = []
    create_booking = Resource.create_booking

    def counted(resource: Resource, *args: object, **kwargs: object) -> None:
        decided.append(resource.version)
        create_booking(resource, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Resource, "create_booking", counted)

    with pytest.raises(SlotTakenError) as refused:
        await booked(handlers, resource_id, 1, 2)

    assert refused.value.conflicting_booking_ids == [taken]
    assert decided == [2]


async def test_a_cached_resource_catches_up_with_the_events_since(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    first, second = ResourceRepository(store), ResourceRepository(store)
    resource_id = (await new_resource(store)).id
    stale = await second.load(resource_id)
    writer = await first.load(resource_id)
    kept = book(writer, future(1), future(2))
    dropped = book(writer, future(3), future(4))
    await first.save(writer)
    writer.cancel_booking(dropped, reason=None, actor=None, now=now(), by="owner")
    await first.save(writer)

    caught_up = await second.catch_up(stale)

    assert caught_up.version == 4
    assert set(caught_up.holds) == {str(kept)}
    assert second.cached(resource_id) is caught_up
    assert vars(caught_up) == vars(await ResourceRepository(store).load(resource_id))
    assert (await second.catch_up(caught_up)).version == 4  # nothing new: as it was


async def test_a_stale_process_reloads_after_a_conflict_and_decides_again(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    """Two processes (two repositories with their own caches) decide on one resource."""

    async def locate(booking_id: UUID) -> UUID | None:
        return await bookings.resource_of(pool, booking_id)

    first_repository = ResourceRepository(store)
    second_repository = ResourceRepository(store)
    first = CommandHandlers(first_repository, now, locate)
    second = CommandHandlers(second_repository, now, locate)
    client = uuid4()

    resource_id = (await new_resource(store)).id
    await second_repository.load(resource_id)
    assert _cached_version(second_repository, resource_id) == 1  # cached: soon stale
    taken = await booked(first, resource_id, 1, 3, client)

    with pytest.raises(SlotTakenError) as refused:
        await second.create_booking(CreateBooking(resource_id, client, future(2), future(4)))
    assert refused.value.conflicting_booking_ids == [taken]
    assert _cached_version(second_repository, resource_id) == 2  # it reloaded

    other = await booked(first, resource_id, 5, 6, client)
    assert _cached_version(second_repository, resource_id) == 2  # stale again
    free = await booked(second, resource_id, 3, 5, client)

    assert await stream_keys(pool, resource_id) == [1, 2, 3, 4]
    _, events = await store.load(resource_id)
    assert [cast(BookingCreated, e).booking_id for e in events[1:]] == [taken, other, free]
    assert _cached_version(second_repository, resource_id) == 4
    view = await bookings.get(pool, free)
    assert view is not None
    assert (view.start_time, view.end_time, view.status) == (future(3), future(5), "confirmed")
    assert _cached_version(first_repository, resource_id) == 3
    # The first process is stale now; its next decision sees the second's booking.
    with pytest.raises(SlotTakenError) as refused:
        await first.create_booking(CreateBooking(resource_id, client, future(4), future(5)))
    assert refused.value.conflicting_booking_ids == [free]

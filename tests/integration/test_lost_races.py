"""Two processes deciding on one busy resource: a process that loses a race catches up with the
events it missed, instead of loading the whole resource again (a snapshot of every open booking,
slow enough for the winner to append again, so that the loser would keep losing).

Each "process" is a `CommandHandlers` with a repository (and cache) of its own, on one store
(`processes.Process`).
"""

import asyncio
from uuid import UUID, uuid4

import asyncpg
import pytest

from commands.errors import SlotTakenError
from commands.handlers import ModifyBooking
from commands.repository import SHARED_FOR, ResourceRepository
from commands.resource import Resource
from events.store import EventStore
from processes import Process, hour, now
from projections import bookings

OPEN_BOOKINGS = 500


async def busy_resource(store: EventStore, name: str = "Busy") -> UUID:
    """A resource with many open bookings (at hours 0, 2, 4, ...), saved with a snapshot."""
    resource = Resource.register(uuid4(), name=name, now=now())
    for i in range(OPEN_BOOKINGS):
        resource.create_booking(
            uuid4(),
            client_id=uuid4(),
            start=hour(2 * i),
            end=hour(2 * i + 1),
            details=None,
            actor=None,
            now=now(),
        )
    await ResourceRepository(store).save(resource)
    await store.snapshots_written()
    return resource.id


@pytest.fixture
def processes(store: EventStore, pool: asyncpg.Pool) -> tuple[Process, Process]:
    return Process(store, pool), Process(store, pool)


async def test_a_process_that_lost_a_race_catches_up_instead_of_loading_whole(
    store: EventStore, processes: tuple[Process, Process]
) -> None:
    first, second = processes
    resource_id = await busy_resource(store)
    await first.repository.load(resource_id)
    await second.repository.load(resource_id)
    first.repository.loads = second.repository.loads = 0

    # given: the first process books; the second's cache has not seen it
    await first.book(resource_id, 1)

    # when: the second books next to it
    await second.book(resource_id, 3)

    # then: it lost one race and read only the event it missed
    assert second.repository.lost == 1
    assert second.repository.loads == 0
    cached = second.repository.cached(resource_id)
    assert cached is not None
    assert cached.version == 1 + OPEN_BOOKINGS + 2
    assert cached == await ResourceRepository(store).load(resource_id)


async def test_processes_racing_on_one_busy_resource_never_load_it_again(
    store: EventStore, processes: tuple[Process, Process]
) -> None:
    """Both processes decide at once, again and again: every lost race ends in a catch-up."""
    resource_id = await busy_resource(store)
    for process in processes:
        await process.repository.load(resource_id)
        process.repository.loads = 0
    clients, each = 4, 10  # per process; every client books odd hours of its own
    hours = iter(range(1, 2 * OPEN_BOOKINGS, 2))
    plan = [[[next(hours) for _ in range(each)] for _ in range(clients)] for _ in processes]

    async def client(process: Process, starts: list[int]) -> list[UUID]:
        return [await process.book(resource_id, start) for start in starts]

    booked = await asyncio.gather(
        *(client(p, starts) for p, mine in zip(processes, plan, strict=True) for starts in mine)
    )

    assert sum(p.repository.lost for p in processes) >= 1  # they did race
    assert [p.repository.loads for p in processes] == [0, 0]
    everything = await ResourceRepository(store).load(resource_id)
    assert everything.version == 1 + OPEN_BOOKINGS + 2 * clients * each
    assert {str(b) for bs in booked for b in bs} <= set(everything.holds)
    for process in processes:
        cached = process.repository.cached(resource_id)
        assert cached is not None
        assert cached == await process.repository.catch_up(cached)  # consistent with the store


async def test_a_move_its_target_refuses_leaves_the_source_as_it_was_without_a_reload(
    store: EventStore, processes: tuple[Process, Process]
) -> None:
    """A stale decision that changed one resource before another refused it is undone in
    place: the source keeps its booking, cached, and nothing is loaded again."""
    first, second = processes
    source, target = await busy_resource(store, "Source"), await busy_resource(store, "Target")
    moving = await second.book(source, 1)
    await second.repository.load(target)
    second.repository.loads = 0
    taken = await first.book(target, 1)  # the second's cache of the target has not seen it

    with pytest.raises(SlotTakenError) as refused:
        await second.handlers.modify_booking(ModifyBooking(moving, resource_id=target))

    assert refused.value.conflicting_booking_ids == [taken]
    assert second.repository.loads == 0
    cached = second.repository.cached(source)
    assert cached is not None
    assert str(moving) in cached.holds
    assert not cached.pending_events
    assert cached == await ResourceRepository(store).load(source)
    assert await bookings.resource_of(second.repository.store.pool, moving) == source


async def test_a_process_catches_up_first_on_a_resource_others_write_and_loses_no_more_races(
    store: EventStore, processes: tuple[Process, Process]
) -> None:
    first, second = processes
    resource_id = await busy_resource(store)
    for process in processes:
        await process.repository.load(resource_id)
        process.repository.loads = 0

    # given: each process lost a race to the other once: each knows the other writes there
    await first.book(resource_id, 1)
    await second.book(resource_id, 3)
    await first.book(resource_id, 5)
    assert [p.repository.lost for p in processes] == [1, 1]
    assert all(p.repository.shared(resource_id) for p in processes)

    # when: they keep taking turns
    for n in range(10):
        await processes[n % 2].book(resource_id, 7 + 2 * n)

    # then: each catches up before deciding, and loses no race
    assert [p.repository.lost for p in processes] == [1, 1]
    assert [p.repository.loads for p in processes] == [0, 0]


async def test_a_resource_nobody_else_writes_is_decided_on_from_the_cache_again(
    store: EventStore, processes: tuple[Process, Process]
) -> None:
    first, second = processes
    resource_id = await busy_resource(store)
    await first.repository.load(resource_id)
    await second.book(resource_id, 1)
    await first.book(resource_id, 3)  # loses to the second once
    assert first.repository.shared(resource_id)

    for n in range(SHARED_FOR):  # catch-ups that find nothing new
        await first.book(resource_id, 5 + 2 * n)

    assert not first.repository.shared(resource_id)
    assert first.repository.lost == 1


async def test_a_lost_race_does_not_bring_the_next_snapshot_forward(
    store: EventStore, processes: tuple[Process, Process]
) -> None:
    first, second = processes
    resource_id = await busy_resource(store)  # saved with a snapshot at its version
    snapshotted = (await store.load(resource_id))[0]
    assert snapshotted is not None
    await second.repository.load(resource_id)
    await first.book(resource_id, 1)

    await second.book(resource_id, 3)  # loses once, then books

    assert second.repository.lost == 1
    latest = (await store.load(resource_id))[0]
    assert latest is not None
    assert latest.originator_version == snapshotted.originator_version

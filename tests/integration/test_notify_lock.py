"""Appends never wait on PostgreSQL's lock on notifying commits (ADR 0010, second amendment).

A transaction that notifies takes that lock as it commits and holds it until its commit is
done, so while one is stuck in its commit, every other notifying commit waits. Here one is held
there on purpose: on a PostgreSQL server of the module's own, a synchronous standby that never
comes makes a commit that waits for it (`synchronous_commit = on`) wait for good. The store's
connections commit locally (`synchronous_commit = local`), so only the lock could hold them up.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import urlsplit
from uuid import uuid4

import asyncpg
import pytest

from api.database import open_pool
from api.settings import Settings
from commands.repository import ResourceRepository
from commands.resource import TRANSCODINGS, Resource
from events.store import CHANNEL, EventStore, new_mapper
from processes import now, wait_until
from projections.runner import project
from servers import new_database, private_postgres

# The lock PostgreSQL takes to serialize notifying commits (on the class of databases, object
# 0): the server processes holding it ($1 true) or waiting for it ($1 false).
NOTIFY_LOCK = """
SELECT array_agg(pid) FROM pg_locks
WHERE locktype = 'object' AND classid = 'pg_database'::regclass AND objid = 0
  AND mode = 'AccessExclusiveLock' AND granted = $1
"""


@pytest.fixture(scope="module")
def own_server() -> Iterator[str]:
    """Its settings change here (a synchronous standby), so the server is the module's own."""
    with private_postgres("bookings-notify-lock-") as url:
        yield url


@pytest.fixture
async def url(own_server: str) -> str:
    """A database whose connections commit without waiting for the standby: only the lock can
    hold them up."""
    url = await new_database(own_server, "notify")
    admin = await asyncpg.connect(own_server)
    try:
        await admin.execute(
            f'ALTER DATABASE "{urlsplit(url).path[1:]}" SET synchronous_commit = local'
        )
    finally:
        await admin.close()
    return url


Release = Callable[[], Awaitable[None]]


@pytest.fixture
async def blocked(own_server: str) -> AsyncIterator[Release]:
    """A commit that waits for a synchronous standby that never comes, holding the lock on
    notifying commits meanwhile, until it is let go (by the test, or afterwards): cancelled, the
    standby forgotten."""
    admin = await asyncpg.connect(own_server)
    blocker = await asyncpg.connect(own_server)
    await admin.execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
    await admin.execute("SELECT pg_reload_conf()")
    commit: asyncio.Task[str] | None = None

    async def release() -> None:
        nonlocal commit
        await admin.execute("ALTER SYSTEM RESET synchronous_standby_names")
        await admin.execute("SELECT pg_reload_conf()")
        if commit is not None:
            await admin.execute("SELECT pg_cancel_backend($1)", blocker.get_server_pid())
            await asyncio.gather(commit, return_exceptions=True)
            commit = None

    try:
        # Until the server has taken in the new setting, a commit does not wait: again, then.
        deadline = asyncio.get_running_loop().time() + 10
        while commit is None:
            await blocker.execute("BEGIN")
            await blocker.execute("CREATE TEMP TABLE held () ON COMMIT DROP")  # WAL to flush
            await blocker.execute(f"NOTIFY {CHANNEL}, 'held'")
            commit = asyncio.create_task(blocker.execute("COMMIT"))
            done, _ = await asyncio.wait([commit], timeout=0.5)
            if done:
                commit = None
                assert asyncio.get_running_loop().time() < deadline, "no commit waits"
        pid = blocker.get_server_pid()

        async def held() -> bool:
            return await admin.fetchval(NOTIFY_LOCK, True) == [pid]

        await wait_until(held, 10, "a commit holding the lock on notifying commits")
        yield release
    finally:
        await release()
        await blocker.close()
        await admin.close()


@pytest.fixture
async def pool(url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(url, Settings(database_url=url))
    yield pool
    pool.terminate()  # a notification's statement may still wait for the lock


async def waiting_for_the_lock(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval(NOTIFY_LOCK, False))


async def test_an_append_commits_while_a_notifying_commit_holds_the_lock(
    pool: asyncpg.Pool, blocked: Release
) -> None:
    store = EventStore(pool, new_mapper(*TRANSCODINGS), projector=project)
    assert store.notify  # it tells the listeners of its appends (none listen here)
    resource = Resource.register(uuid4(), name="Not held up", now=now())

    # when: it appends while another commit holds the lock that notifying commits take
    recorded = await asyncio.wait_for(ResourceRepository(store).save(resource), 10)

    # then: the append is recorded, and only its notification waits for the lock
    assert [r.event.originator_id for r in recorded] == [resource.id]
    count = await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", resource.id)
    assert count == 1
    await wait_until(lambda: waiting_for_the_lock(pool), 10, "the notification waiting")


async def test_notifications_that_cannot_go_out_wait_up_to_a_bound_then_the_oldest_drop(
    url: str, pool: asyncpg.Pool, blocked: Release, caplog: pytest.LogCaptureFixture
) -> None:
    store = EventStore(pool, new_mapper(*TRANSCODINGS), projector=project, notices_waiting=2)
    repository = ResourceRepository(store)
    resources = [Resource.register(uuid4(), name=f"Told {n}", now=now()) for n in range(5)]
    heard: list[str] = []
    spy = await asyncpg.connect(url)
    await spy.add_listener(CHANNEL, lambda *args: heard.append(args[3]))
    try:
        # when: the first notification waits for the lock, and four more appends come
        await repository.save(resources[0])
        await wait_until(lambda: waiting_for_the_lock(pool), 10, "the first notification waiting")
        for resource in resources[1:]:
            await repository.save(resource)

        # then: once the lock is let go, the first and the last two are heard...
        await blocked()
        await asyncio.wait_for(store.notices_sent(), 10)
        await wait_until(lambda: len(heard) == 3, 10, "three notifications heard")
    finally:
        await spy.close()
    told = [line.split(" ")[0] for payload in heard for line in payload.split("\n")]
    assert told == [str(resources[n].id) for n in (0, 3, 4)]
    # ...and the two between were dropped, and said so
    assert "2 notifications of appends dropped" in caplog.text

"""Appends never wait on PostgreSQL's lock on notifying commits (ADR 0010, second amendment).

A transaction that notifies takes that lock as it commits and holds it until its commit is
done, so while one is stuck in its commit, every other notifying commit waits. Here one is held
there on purpose: on a PostgreSQL server of the module's own, a synchronous standby that never
comes makes a commit that waits for it (`synchronous_commit = on`) wait for good. The store's
connections commit locally (`synchronous_commit = local`), so only the lock could hold them up.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from uuid import uuid4

import asyncpg
import pytest

from commands.repository import ResourceRepository
from commands.resource import TRANSCODINGS, Resource
from events.migrations import migrate
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
    url = await new_database(own_server, "notify")
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url


@pytest.fixture
async def blocked(own_server: str) -> AsyncIterator[None]:
    """A commit that waits for a synchronous standby that never comes, holding the lock on
    notifying commits meanwhile; let go (cancelled, the standby forgotten) afterwards."""
    admin = await asyncpg.connect(own_server)
    blocker = await asyncpg.connect(own_server)
    await admin.execute("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
    await admin.execute("SELECT pg_reload_conf()")
    commit: asyncio.Task[str] | None = None
    try:
        await blocker.execute("BEGIN")
        await blocker.execute("CREATE TEMP TABLE held ()")  # WAL to flush: it waits to commit
        await blocker.execute(f"NOTIFY {CHANNEL}, 'held'")
        commit = asyncio.create_task(blocker.execute("COMMIT"))
        pid = blocker.get_server_pid()

        async def held() -> bool:
            return await admin.fetchval(NOTIFY_LOCK, True) == [pid]

        await wait_until(held, 10, "a commit holding the lock on notifying commits")
        yield
    finally:
        await admin.execute("ALTER SYSTEM RESET synchronous_standby_names")
        await admin.execute("SELECT pg_reload_conf()")
        if commit is not None:
            await admin.execute("SELECT pg_cancel_backend($1)", blocker.get_server_pid())
            await asyncio.gather(commit, return_exceptions=True)
        await blocker.close()
        await admin.close()


async def test_an_append_commits_while_a_notifying_commit_holds_the_lock(
    url: str, blocked: None
) -> None:
    pool = await asyncpg.create_pool(
        url, min_size=2, max_size=2, server_settings={"synchronous_commit": "local"}
    )
    try:
        store = EventStore(pool, new_mapper(*TRANSCODINGS), projector=project)
        assert store.notify  # it tells the listeners of its appends (none listen here)
        resource = Resource.register(uuid4(), name="Not held up", now=now())

        # when: it appends while another commit holds the lock that notifying commits take
        recorded = await asyncio.wait_for(ResourceRepository(store).save(resource), 10)

        # then: the append is recorded, and only its notification waits for the lock
        assert [r.event.originator_id for r in recorded] == [resource.id]
        count = await pool.fetchval("SELECT count(*) FROM events WHERE stream_id = $1", resource.id)
        assert count == 1

        async def notification_waits() -> bool:
            return bool(await pool.fetchval(NOTIFY_LOCK, False))

        await wait_until(notification_waits, 10, "the notification waiting for the lock")
    finally:
        pool.terminate()  # the notification's statement waits for the lock until the end
        await store.notices_sent()

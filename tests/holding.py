"""Holding an append up in the middle of its transaction, as a slow writer would."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg

NEXT = "SELECT COALESCE(max(version), 0) + 1 FROM events WHERE stream_id = $1"
PLACEHOLDER = "INSERT INTO events (stream_id, version, topic, state) VALUES ($1, $2, 'held', '{}')"


@asynccontextmanager
async def next_version_held(pool: asyncpg.Pool, stream_id: UUID) -> AsyncIterator[None]:
    """Take the stream's next version in a transaction left open until the block ends, then
    roll it back. An append to the stream meanwhile inserts its events (so takes their
    positions) and waits in its statement, its transaction open, for the version. Raises
    `UniqueViolationError` when another append took the version first."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute(PLACEHOLDER, stream_id, await conn.fetchval(NEXT, stream_id))
            yield
        finally:
            await transaction.rollback()


async def inserts_waiting(pool: asyncpg.Pool, table: str) -> int:
    """How many statements that insert into the table wait for a lock now."""
    waiting = """
        SELECT count(*) FROM pg_stat_activity
        WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO ' || $1 || '%'
    """
    count: int = await pool.fetchval(waiting, table)
    return count


async def appending_waits(pool: asyncpg.Pool) -> bool:
    """Whether an append waits for a lock now."""
    return await inserts_waiting(pool, "events") > 0

"""Projections that follow the log in the background, each from its own stored position.

A batch of events is projected and the position moved past it in one transaction, so a crash
at any point (even `kill -9` in the middle of a batch) loses and repeats nothing: the next run
starts from the last committed position. An advisory lock per projection lets one process at a
time advance it; the others skip it. A projection with no stored position starts from the
first event, so one added later back-fills itself.
"""

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from events.store import EventStore, RecordedEvent
from projections import activity

log = logging.getLogger(__name__)

TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"
LOCK = "SELECT pg_advisory_xact_lock($1)"
POSITION = "SELECT position FROM projector_positions WHERE name = $1"
MOVE = """
INSERT INTO projector_positions (name, position) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()
"""
# The newest event in feed order, and how many events follow a position in that order.
HEAD = "SELECT position FROM events ORDER BY transaction_id DESC, position DESC LIMIT 1"
BEHIND = """
SELECT count(*) FROM events e
WHERE (e.transaction_id, e.position) > (
    COALESCE((SELECT c.transaction_id FROM events c WHERE c.position = $1), '0'::xid8), $1)
"""


class Projection(Protocol):
    NAME: str
    TABLES: tuple[str, ...]

    def project(
        self, conn: asyncpg.Connection, batch: Sequence[RecordedEvent]
    ) -> Awaitable[None]: ...


BACKGROUND: Sequence[Any] = (activity,)
"""Every background projection (modules with NAME, TABLES and `project`)."""


def named(name: str) -> Projection:
    for projection in BACKGROUND:
        if name == projection.NAME:
            found: Projection = projection
            return found
    raise KeyError(name)


def _lock_key(name: str) -> int:
    return zlib.crc32(f"projection:{name}".encode())


async def catch_up(
    pool: asyncpg.Pool,
    store: EventStore,
    projection: Projection,
    batch_size: int = 500,
    progress: Callable[[int], None] | None = None,
    *,
    wait: bool = False,
) -> int:
    """Project every event the projection has not seen yet, a batch per transaction; the
    number of events projected. When another process holds the projection, return 0 at once,
    or with `wait`, wait for it to let go."""
    done = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            # An advisory lock takes no transaction id, so the feed read next sees every event
            # committed before it.
            key = _lock_key(projection.NAME)
            if wait:
                await conn.execute(LOCK, key)
            elif not await conn.fetchval(TRY_LOCK, key):
                return done
            after = await conn.fetchval(POSITION, projection.NAME) or 0
            batch = await store.read_feed(after, batch_size, conn=conn)
            if batch:
                await projection.project(conn, batch)
                await conn.execute(MOVE, projection.NAME, batch[-1].position)
        done += len(batch)
        if progress:
            progress(done)
        if len(batch) < batch_size:
            return done


async def reset(pool: asyncpg.Pool, projection: Projection) -> None:
    """Empty the projection's tables and its position, so it is built again from the start."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(LOCK, _lock_key(projection.NAME))
        for table in projection.TABLES:
            await conn.execute(f"DELETE FROM {table}")
        await conn.execute(MOVE, projection.NAME, 0)


@dataclass(frozen=True)
class Lag:
    name: str
    position: int
    """The feed position the projection has reached (0: none yet)."""
    behind: int
    """Events in the log it has not projected yet."""


async def lag(pool: asyncpg.Pool, projection: Projection) -> Lag:
    position = await pool.fetchval(POSITION, projection.NAME) or 0
    return Lag(projection.NAME, position, await pool.fetchval(BEHIND, position))


async def head(pool: asyncpg.Pool) -> int:
    """The position of the newest event in feed order (0: an empty log)."""
    position: int | None = await pool.fetchval(HEAD)
    return position or 0


async def keep_projecting(pool: asyncpg.Pool, store: EventStore, interval: float) -> None:
    """Advance every background projection every `interval` seconds until cancelled. A
    projection that fails stays where it was and is tried again after a pause that doubles
    with each failure in a row (up to a minute); the others go on meanwhile."""
    failures: dict[str, int] = {}
    retry_at: dict[str, float] = {}
    while True:
        for projection in BACKGROUND:
            name = projection.NAME
            if time.monotonic() < retry_at.get(name, 0.0):
                continue
            try:
                await catch_up(pool, store, projection)
            except Exception:
                failures[name] = failures.get(name, 0) + 1
                pause = min(interval * 2 ** failures[name], 60.0)
                retry_at[name] = time.monotonic() + pause
                log.exception("projection %s failed; trying again in %.1f s", name, pause)
            else:
                failures.pop(name, None)
        await asyncio.sleep(interval)

"""Runs the projectors: inline for each append, and from the first event for a rebuild.

Both paths use `project`, which tracks per stream the last version projected in the same
transaction as the rows it writes, so an event is applied exactly once, whatever replays it.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from events.store import EventStore, RecordedEvent
from projections import availability, bookings, history, resources

PROJECTORS = (resources, bookings, availability, history)

# Moves the stream's mark to `$2` and returns the previous mark (0 for a new stream); no row
# comes back when the mark is already at or past `$2`, i.e. everything was projected.
ADVANCE = """
WITH previous AS (SELECT version FROM projected_streams WHERE stream_id = $1)
INSERT INTO projected_streams (stream_id, version) VALUES ($1, $2)
ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version
WHERE projected_streams.version < excluded.version
RETURNING COALESCE((SELECT version FROM previous), 0) AS previous
"""


async def project(conn: asyncpg.Connection, recorded: Sequence[RecordedEvent]) -> None:
    """Apply each event not yet projected to every read model, in the order given (a move
    touches two streams, and its events only make sense in order)."""
    last: dict[UUID, int] = {}
    for r in recorded:
        stream_id = r.event.originator_id
        last[stream_id] = max(last.get(stream_id, 0), r.event.originator_version)
    projected = {}
    for stream_id, version in last.items():
        previous = await conn.fetchval(ADVANCE, stream_id, version)
        projected[stream_id] = version if previous is None else previous
    for r in recorded:
        if r.event.originator_version > projected[r.event.originator_id]:
            for projector in PROJECTORS:
                await projector.project(conn, r)


@dataclass(frozen=True)
class RebuildSummary:
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


TABLES = ("projected_streams", *(t for p in PROJECTORS for t in p.TABLES))
LOCK = "LOCK TABLE projected_streams IN SHARE MODE"


async def rebuild(
    pool: asyncpg.Pool,
    store: EventStore,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> RebuildSummary:
    """Empty every read model and project the whole log again, in one transaction.

    Readers see the old rows until it commits. Writers wait: the SHARE lock on the tracking
    table holds back their inline projection (and lets the ones already projecting finish
    first), so no event can commit unseen while the log is read.
    """
    started = time.perf_counter()
    count = after = 0
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(LOCK)
        for table in TABLES:
            await conn.execute(f"DELETE FROM {table}")
        while batch := await store.read_all(conn, after, batch_size):
            await project(conn, batch)
            count += len(batch)
            after = batch[-1].position
            if progress:
                progress(count)
    return RebuildSummary(count, time.perf_counter() - started)

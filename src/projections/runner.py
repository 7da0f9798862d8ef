"""Runs the projectors: inline in each append, and from the first event for a rebuild.

Every append moves its streams' marks in `projected_streams` in the statement that writes the
read models; a replay projects only what is past each stream's mark, so an event is applied
exactly once, whatever replays it.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from events.store import DomainEvent, EventStore, RecordedEvent, Write, chain
from projections import availability, bookings, history, resources

PROJECTORS = (resources, bookings, availability, history)

ADVANCE = Write("""
INSERT INTO projected_streams (stream_id, version)
SELECT stream_id, max(version) FROM ev GROUP BY stream_id
ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version
WHERE projected_streams.version < excluded.version
""")
MARKS = "SELECT stream_id, version FROM projected_streams WHERE stream_id = ANY($1::uuid[])"
RECORDED = """
SELECT * FROM unnest($1::uuid[], $2::integer[], $3::bigint[]) AS ev(stream_id, version, position)
"""


def project(events: Sequence[DomainEvent]) -> list[Write]:
    """Every read model's writes for new events (in log order), and their streams' marks."""
    return [ADVANCE, *(write for p in PROJECTORS for write in p.writes(events))]


async def replay(conn: asyncpg.Connection, recorded: Sequence[RecordedEvent]) -> None:
    """Project recorded events (in log order) that their streams' marks are not past yet.
    For callers that hold the writers back, as a rebuild does, or that are alone."""
    streams = list({r.event.originator_id for r in recorded})
    marks = {row["stream_id"]: row["version"] for row in await conn.fetch(MARKS, streams)}
    new = [r for r in recorded if r.event.originator_version > marks.get(r.event.originator_id, 0)]
    if new:
        rows = [
            {
                "stream_id": r.event.originator_id,
                "version": r.event.originator_version,
                "position": r.position,
            }
            for r in new
        ]
        head = Write.of_rows(RECORDED, rows, ("stream_id", "version", "position"))
        sql, args = chain(head, project([r.event for r in new]))
        await conn.execute(sql, *args)


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
            await replay(conn, batch)
            count += len(batch)
            after = batch[-1].position
            if progress:
                progress(count)
    return RebuildSummary(count, time.perf_counter() - started)

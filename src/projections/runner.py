"""Runs the projectors: inline in each append, and from the first event for a rebuild.

Every append moves its streams' marks in `projected_streams` in the statement that writes the
read models; a replay projects only what is past each stream's mark, so an event is applied
exactly once, whatever replays it.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from events.store import DomainEvent, RecordedEvent, Write, chain
from projections import availability, bookings, resources

PROJECTORS = (resources, bookings, availability)

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
# Self-exclusive, and it holds back appends (their ROW EXCLUSIVE), not readers.
LOCK = "LOCK TABLE projected_streams IN SHARE ROW EXCLUSIVE MODE"
REBUILD = (
    "INSERT INTO projected_streams SELECT stream_id, max(version) FROM events GROUP BY stream_id",
    *(statement for p in PROJECTORS for statement in p.REBUILD),
)
SCHEMA = "bookings_rebuild"
# The indexes of the read models, to build on their new tables: constraints (primary keys) as
# constraints, the rest as they were created.
INDEXES = """
SELECT c.relname AS table_name, pg_get_indexdef(i.indexrelid) AS definition,
       k.conname AS constraint_name, pg_get_constraintdef(k.oid) AS constraint
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = c.oid
WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1::text[])
"""


async def rebuild(
    pool: asyncpg.Pool, progress: Callable[[int], None] | None = None
) -> RebuildSummary:
    """Project the whole log again into new read-model tables, and put them in the old ones'
    place, in one transaction: a statement per table over all events at once (each
    projector's `REBUILD`, the same rows its `writes` leave); `progress` hears how many
    statements are done. The new tables get their indexes after their rows, which is faster
    than keeping the indexes up row by row.

    Readers see the old rows until it commits (they wait only for the swap at the end).
    Writers wait: the lock on the tracking table holds back their appends (and lets the ones
    under way finish first), so the log stays as it is while it is read.
    """
    started = time.perf_counter()
    tables = [t for t in TABLES if t != "projected_streams"]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(LOCK)
        schema = await conn.fetchval("SELECT current_schema()")
        indexes = await conn.fetch(INDEXES, tables)
        count = await conn.fetchval("SELECT count(*) FROM events")
        await conn.execute("SET LOCAL work_mem = '256MB'")
        await conn.execute(f"CREATE SCHEMA {SCHEMA}")
        for table in tables:
            await conn.execute(
                f"CREATE TABLE {SCHEMA}.{table} (LIKE {table} INCLUDING ALL EXCLUDING INDEXES)"
            )
        await conn.execute("DELETE FROM projected_streams")
        # The statements write to the new tables, and read the events where they are.
        await conn.execute(f"SET LOCAL search_path = {SCHEMA}, {schema}")
        for done, statement in enumerate(REBUILD, start=1):
            await conn.execute(statement)
            if progress:
                progress(done)
        await _index(conn, indexes, schema)
        await _swap(conn, tables, schema)
    return RebuildSummary(count, time.perf_counter() - started)


async def _index(conn: asyncpg.Connection, indexes: list[asyncpg.Record], schema: str) -> None:
    """Give the new tables the indexes of the old ones, in `schema`, under the same names."""
    for index in indexes:
        new_table = f"{SCHEMA}.{index['table_name']}"
        if index["constraint_name"]:
            constraint = f"{index['constraint_name']} {index['constraint']}"
            await conn.execute(f"ALTER TABLE {new_table} ADD CONSTRAINT {constraint}")
        else:
            old_table = f" ON {schema}.{index['table_name']} "
            await conn.execute(index["definition"].replace(old_table, f" ON {new_table} ", 1))


async def _swap(conn: asyncpg.Connection, tables: list[str], schema: str) -> None:
    """Put the new tables in the old ones' place. Readers wait from the first drop on, so
    everything else comes first."""
    for table in tables:
        await conn.execute(f"ANALYZE {SCHEMA}.{table}")
    for table in tables:
        await conn.execute(f"DROP TABLE {schema}.{table}")
        await conn.execute(f"ALTER TABLE {SCHEMA}.{table} SET SCHEMA {schema}")
    await conn.execute(f"DROP SCHEMA {SCHEMA}")

"""Runs the projectors: inline in each append (a part of its statement), and over the whole
log at once for a rebuild."""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from events.store import DomainEvent, Write
from projections import availability, bookings, resources

PROJECTORS = (resources, bookings, availability)


def project(events: Sequence[DomainEvent]) -> list[Write]:
    """Every read model's writes for new events (in log order)."""
    return [write for p in PROJECTORS for write in p.writes(events)]


@dataclass(frozen=True)
class RebuildSummary:
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


TABLES = tuple(t for p in PROJECTORS for t in p.TABLES)
# Self-exclusive, and it holds back appends (their ROW EXCLUSIVE), not readers.
LOCK = "LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE"
REBUILD = tuple(statement for p in PROJECTORS for statement in p.REBUILD)
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
    Writers wait: the lock on the events table holds back their appends (and lets the ones
    under way finish first), so the log stays as it is while it is read.
    """
    started = time.perf_counter()
    tables = list(TABLES)
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

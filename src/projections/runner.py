"""Runs the projectors: inline in each append (a part of its statement), and over the whole
log at once for a rebuild."""

import asyncio
import contextlib
import itertools
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from uuid import UUID

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
PARTS = 2
"""How many connections share a statement that can be split (the bookings': most of the work)."""
# The indexes of the read models, to build on their new tables, largest first (the helpers then
# finish at about the same time): the indexes of primary keys and unique constraints as plain
# unique indexes, made constraints once built; other constraints as constraints.
INDEXES = """
SELECT c.relname AS table_name, pg_get_indexdef(i.indexrelid) AS definition,
       k.conname AS constraint_name, k.contype::text AS constraint_type,
       pg_get_constraintdef(k.oid) AS constraint
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = c.oid
WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1::text[])
ORDER BY c.reltuples DESC, i.indpred IS NOT NULL, i.indnatts DESC
"""
USING_INDEX = {"p": "PRIMARY KEY", "u": "UNIQUE"}
"""The constraints that a unique index built before becomes (its name is theirs)."""


async def rebuild(
    database_url: str, progress: Callable[[int], None] | None = None
) -> RebuildSummary:
    """Project the whole log again into new read-model tables, and put them in the old ones'
    place: a statement per table over all events at once (each projector's `REBUILD`, the same
    rows its `writes` leave); `progress` hears how many statements are done. The new tables
    get their indexes after their rows, which is faster than keeping the indexes up row by
    row. A statement with a `{low}` and a `{high}` runs in `PARTS` parts at once, each for one
    share of the UUIDs (from `low` to `high`) and on a connection of its own.

    Readers see the old rows until the swap at the end, and wait only for it. Writers wait for
    the whole rebuild: the lock on the events table holds back their appends (and lets the ones
    under way finish first), so the log stays as it is while it is read.
    """
    started = time.perf_counter()
    tables = list(TABLES)
    async with _connections(database_url, 1 + PARTS) as (conn, *helpers):
        try:
            async with conn.transaction():
                await conn.execute(LOCK)
                schema = await conn.fetchval("SELECT current_schema()")
                indexes, constraints = _index_statements(await conn.fetch(INDEXES, tables), schema)
                async with asyncio.TaskGroup() as group:  # counting while the helpers build
                    counted = group.create_task(conn.fetchval("SELECT count(*) FROM events"))
                    await _build(helpers, schema, tables, indexes, progress)
                for statement in constraints:  # quick: their indexes are there
                    await conn.execute(statement)
                await _swap(conn, tables, schema)
        except BaseException:
            with contextlib.suppress(Exception):  # else the next rebuild drops them
                await helpers[0].execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            raise
    return RebuildSummary(counted.result(), time.perf_counter() - started)


async def _build(
    helpers: list[asyncpg.Connection],
    schema: str,
    tables: list[str],
    indexes: list[str],
    progress: Callable[[int], None] | None,
) -> None:
    """Fill new tables in `SCHEMA` (committed, so that every helper sees them) and index them.

    Every statement waits in one queue, which the helpers take from as they come free: the
    parts of the split statements first (the bookings', most of the work), then the other
    fills, then the indexes, largest first. An index that a helper takes while its table is
    still being filled waits for the fill to commit (its lock), so no helper idles between
    phases.
    """
    first = helpers[0]
    await first.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")  # left by a crash
    await first.execute(f"CREATE SCHEMA {SCHEMA}")
    for table in tables:
        await first.execute(
            f"CREATE TABLE {SCHEMA}.{table} (LIKE {table} INCLUDING ALL EXCLUDING INDEXES)"
        )
    split = [s for s in REBUILD if "{low}" in s]
    fills: list[tuple[str, str | None]] = [
        (s.format(low=low, high=high), s) for s in split for low, high in _shares(PARTS)
    ]
    fills += [(s, s) for s in REBUILD if s not in split]
    parts_left = Counter(source for _, source in fills)

    def done(source: str | None) -> None:
        """A fill's part is done (a source of None: an index)."""
        if source is None:
            return
        parts_left[source] -= 1
        if progress and not parts_left[source]:
            progress(sum(not left for left in parts_left.values()))

    indexing = [(statement, None) for statement in indexes]
    await _share(helpers, schema, [*fills, *indexing], done)


async def _share(
    helpers: list[asyncpg.Connection],
    schema: str,
    statements: list[tuple[str, str | None]],
    after_each: Callable[[str | None], None],
) -> None:
    """Run the statements, each in a transaction of its own, on whichever helper is free;
    after each, tell `after_each` the tag it came with."""
    queue = deque(statements)

    async def work(conn: asyncpg.Connection) -> None:
        while queue:
            statement, tag = queue.popleft()
            await _run(conn, schema, statement)
            after_each(tag)

    async with asyncio.TaskGroup() as group:  # one failing cancels the others
        for helper in helpers:
            group.create_task(work(helper))


async def _run(conn: asyncpg.Connection, schema: str, statement: str) -> None:
    """Run a statement in a transaction that writes to the new tables and reads the events
    where they are. Its commit does not wait for the flush of what it wrote: nothing of it counts
    before the swap, and the swap's commit, later in the log, flushes it too."""
    async with conn.transaction():
        await conn.execute(f"SET LOCAL search_path = {SCHEMA}, {schema}")
        await conn.execute("SET LOCAL work_mem = '256MB'")
        await conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        await conn.execute("SET LOCAL synchronous_commit = off")
        await conn.execute(statement)


@asynccontextmanager
async def _connections(database_url: str, count: int) -> AsyncIterator[list[asyncpg.Connection]]:
    connections: list[asyncpg.Connection] = []
    try:
        for _ in range(count):
            connections.append(await asyncpg.connect(database_url))
        yield connections
    finally:
        for conn in connections:
            await conn.close()


def _shares(parts: int) -> list[tuple[UUID, UUID]]:
    """UUIDs split into `parts` even ranges, each as its first and last UUID."""
    bounds = [(n << 128) // parts for n in range(parts + 1)]
    return [(UUID(int=low), UUID(int=high - 1)) for low, high in itertools.pairwise(bounds)]


def _index_statements(indexes: list[asyncpg.Record], schema: str) -> tuple[list[str], list[str]]:
    """The indexes of the old tables for the new ones in `SCHEMA`, under the same names: the
    statements that build them, and those that then make constraints of some. A primary key
    added by `ADD CONSTRAINT` would lock its table against the other indexes' builds."""
    builds, constraints = [], []
    for index in indexes:
        new_table = f"{SCHEMA}.{index['table_name']}"
        name, kind = index["constraint_name"], USING_INDEX.get(index["constraint_type"])
        if name and not kind:
            builds.append(f"ALTER TABLE {new_table} ADD CONSTRAINT {name} {index['constraint']}")
            continue
        old_table = f" ON {schema}.{index['table_name']} "
        builds.append(index["definition"].replace(old_table, f" ON {new_table} ", 1))
        if kind:
            constraints.append(
                f"ALTER TABLE {new_table} ADD CONSTRAINT {name} {kind} USING INDEX {name}"
            )
    return builds, constraints


async def _swap(conn: asyncpg.Connection, tables: list[str], schema: str) -> None:
    """Put the new tables in the old ones' place. Readers wait from the first drop on, so
    everything else comes first."""
    for table in tables:
        await conn.execute(f"ANALYZE {SCHEMA}.{table}")
    for table in tables:
        await conn.execute(f"DROP TABLE {schema}.{table}")
        await conn.execute(f"ALTER TABLE {SCHEMA}.{table} SET SCHEMA {schema}")
    await conn.execute(f"DROP SCHEMA {SCHEMA}")

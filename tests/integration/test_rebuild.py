"""Replaying the event log rebuilds exactly the read models that inline projection wrote."""

import asyncio
import itertools
import os
import random
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

import commands.handlers
from commands.handlers import CommandHandlers, CreateBooking
from commands.repository import ResourceRepository
from events.store import EventStore, RecordedEvent, Write, chain
from projections import availability, bookings, resources
from projections.runner import SCHEMA, TABLES, _shares, project, rebuild

PRIMARY_KEY = """
SELECT a.attname
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1::regclass AND i.indisprimary
ORDER BY k.n
"""
# Each index of the read models with the constraint it backs, if any.
SCHEMA_OF_TABLES = """
SELECT c.relname, pg_get_indexdef(i.indexrelid), k.conname, k.contype::text,
       pg_get_constraintdef(k.oid)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = c.oid
WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1::text[])
ORDER BY 1, 2
"""
Dump = dict[str, list[tuple[Any, ...]]]


async def dump(pool: asyncpg.Pool) -> Dump:
    """Every row of every read model, ordered by primary key."""
    tables: Dump = {}
    for table in TABLES:
        key = [row["attname"] for row in await pool.fetch(PRIMARY_KEY, table)]
        assert key, f"{table} has no primary key"
        rows = await pool.fetch(f"SELECT * FROM {table} ORDER BY {', '.join(key)}")
        tables[table] = [tuple(row.values()) for row in rows]
    return tables


async def dump_stream(conn: Any, resource_id: UUID) -> Dump:
    """The read-model rows that one resource's stream produced."""
    by_resource = "SELECT * FROM {} WHERE resource_id = $1 ORDER BY {}"
    return {
        "resources": [
            tuple(r.values())
            for r in await conn.fetch(by_resource.format("resources", "resource_id"), resource_id)
        ],
        "bookings": [
            tuple(r.values())
            for r in await conn.fetch(by_resource.format("bookings", "booking_id"), resource_id)
        ],
        "closures": [
            tuple(r.values())
            for r in await conn.fetch(by_resource.format("closures", "closure_id"), resource_id)
        ],
    }


async def plan_without_seq_scans(pool: asyncpg.Pool, statement: str) -> str:
    """The plan PostgreSQL makes for the statement when it may avoid reading whole tables: the
    indexes a statement can use then show."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        return "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {statement}"))


async def create_resource(client: AsyncTestClient, **fields: Any) -> str:  # type: ignore[type-arg]
    r = await client.post("/resources", json={"name": "Room", **fields})
    assert r.status_code == 201, r.text
    resource_id: str = r.json()["resource_id"]
    return resource_id


async def create_booking(
    client: AsyncTestClient,  # type: ignore[type-arg]
    resource_id: str,
    start: str,
    end: str,
    **fields: Any,
) -> str:
    body = {"resource_id": resource_id, "start_time": start, "end_time": end}
    r = await client.post("/bookings", json={**body, "client_id": str(uuid4()), **fields})
    assert r.status_code == 201, r.text
    booking_id: str = r.json()["booking_id"]
    return booking_id


async def some_history(client: AsyncTestClient) -> tuple[str, list[str]]:  # type: ignore[type-arg]
    """A resource with bookings created, moved, re-described and cancelled through the API."""
    room = await create_resource(client, name="Boardroom", details="12 seats")
    await create_resource(client, name="Desk", timezone="Europe/Berlin", capacity=3)
    await create_resource(client, name="Van", requires_approval=True)
    b1 = await create_booking(client, room, "2031-03-01T09:00:00Z", "2031-03-01T10:00:00Z")
    b2 = await create_booking(
        client, room, "2031-03-01T12:00:00+02:00", "2031-03-01T13:00:00+02:00", details="lunch"
    )
    b3 = await create_booking(client, room, "2031-03-02T09:00:00Z", "2031-03-02T11:00:00Z")
    b4 = await create_booking(client, room, "2031-03-03T09:00:00Z", "2031-03-03T11:00:00Z")

    r = await client.put(
        f"/bookings/{b1}",
        json={"start_time": "2031-03-01T08:00:00Z", "end_time": "2031-03-01T09:30:00Z"},
    )
    assert r.status_code == 200, r.text
    r = await client.put(f"/bookings/{b2}", json={"details": "team lunch"})
    assert r.status_code == 200, r.text
    r = await client.delete(f"/bookings/{b3}", params={"reason": "plans changed"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    r = await client.put(f"/bookings/{b4}", json={"end_time": "2031-03-03T10:00:00Z"})
    assert r.status_code == 200, r.text
    r = await client.delete(f"/bookings/{b4}")
    assert r.status_code == 200, r.text
    return room, [b1, b2, b3, b4]


async def test_rebuild_reproduces_every_read_model(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    store: EventStore,
    database_url: str,
) -> None:
    room, (b1, b2, b3, b4) = await some_history(client)
    before = await dump(pool)
    mine = {row[0]: row for row in before["bookings"] if str(row[1]) == room}
    assert {str(b) for b in mine} == {b1, b2, b3, b4}
    statuses = {str(b): row[5] for b, row in mine.items()}
    assert statuses == {b1: "confirmed", b2: "confirmed", b3: "cancelled", b4: "cancelled"}
    assert [row[5] for row in mine.values()].count("confirmed") == 2

    # Damage this resource's read models: a rebuild must restore them from the events alone.
    await pool.execute("DELETE FROM bookings WHERE booking_id = $1", UUID(b1))
    await pool.execute(
        "UPDATE bookings SET end_time = end_time + interval '1 day' WHERE resource_id = $1",
        UUID(room),
    )
    assert await dump(pool) != before

    summary = await rebuild(database_url)

    assert await dump(pool) == before
    assert summary.events == await pool.fetchval("SELECT count(*) FROM events")
    assert summary.events >= 12  # this test's own: 3 registered, 4 created, 3 modified, 2 cancelled
    assert summary.seconds > 0


async def test_rebuild_keeps_every_index_and_constraint(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    database_url: str,
) -> None:
    await some_history(client)
    before = [tuple(row) for row in await pool.fetch(SCHEMA_OF_TABLES, list(TABLES))]
    assert len(before) >= 2 * len(TABLES)
    assert sum(row[3] == "p" for row in before) == len(TABLES)  # a primary key each

    await rebuild(database_url)

    assert [tuple(row) for row in await pool.fetch(SCHEMA_OF_TABLES, list(TABLES))] == before


@pytest.mark.parametrize("statement", [*resources.REBUILD, *availability.REBUILD])
async def test_rebuilding_resources_and_closures_reads_only_their_events(
    pool: asyncpg.Pool, statement: str
) -> None:
    """Their statements find a resource's own events by the index of those, not by reading
    every booking's event: each topic they read must be one the index holds."""
    plan = await plan_without_seq_scans(pool, statement)
    assert "events_of_resources" in plan, plan
    assert "Seq Scan on events" not in plan, plan


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_the_shares_of_a_split_cover_every_uuid_once_and_evenly(parts: int) -> None:
    shares = _shares(parts)
    assert len(shares) == parts
    assert shares[0][0] == UUID(int=0)
    assert shares[-1][1] == UUID(int=2**128 - 1)
    for (_, high), (low, _) in itertools.pairwise(shares):
        assert low.int == high.int + 1
    sizes = {high.int - low.int for low, high in shares}
    assert max(sizes) - min(sizes) <= 1


async def test_bookings_at_the_edges_of_the_shares_are_rebuilt(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each part of the bookings' statement keeps the ids from its share's first to its last:
    none of them lost between two shares, none rebuilt twice."""
    edges = [UUID(int=n) for low, high in _shares(2) for n in (low.int, high.int)]
    room = await create_resource(client)
    ids = iter(edges)
    monkeypatch.setattr(commands.handlers, "uuid4", lambda: next(ids))
    made = [
        await create_booking(client, room, f"2031-06-0{day}T09:00:00Z", f"2031-06-0{day}T10:00:00Z")
        for day in range(1, 1 + len(edges))
    ]
    monkeypatch.undo()
    created = await create_booking(client, room, "2031-06-09T09:00:00Z", "2031-06-09T10:00:00Z")
    r = await client.delete(f"/bookings/{made[-1]}")
    assert r.status_code == 200, r.text
    before = await dump(pool)
    assert [UUID(b) for b in made] == edges
    await pool.execute("DELETE FROM bookings WHERE resource_id = $1", UUID(room))

    await rebuild(database_url)

    assert await dump(pool) == before
    rows = {str(row[0]): row[5] for row in before["bookings"] if str(row[1]) == room}
    assert rows == dict.fromkeys([*made[:-1], created], "confirmed") | {made[-1]: "cancelled"}


async def test_each_part_of_the_bookings_statement_reads_its_events_by_their_index(
    pool: asyncpg.Pool,
) -> None:
    """A part reads only its share of the bookings' events, not every event of the log."""
    (statement,) = bookings.REBUILD
    low, high = _shares(2)[1]
    plan = await plan_without_seq_scans(pool, statement.format(low=low, high=high))
    assert "events_by_booking" in plan, plan
    assert "Seq Scan on events" not in plan, plan


async def test_cli_rebuild_prints_a_summary(
    client: AsyncTestClient,  # type: ignore[type-arg]
    database_url: str,
    pool: asyncpg.Pool,
) -> None:
    room, _ = await some_history(client)
    before = await dump(pool)
    events = await pool.fetchval("SELECT count(*) FROM events")

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api.cli",
        "projections",
        "rebuild",
        env=os.environ | {"DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)

    assert process.returncode == 0, stderr.decode()
    output = stdout.decode()
    assert "events/s" in output, output
    match = re.search(r"from ([\d,]+) events", output)
    assert match, output
    assert int(match.group(1).replace(",", "")) == events
    assert await dump(pool) == before
    assert any(str(row[0]) == room for row in before["resources"])


async def never_seen(_: UUID) -> UUID | None:
    return None


async def test_readers_see_the_old_rows_and_writers_wait_during_a_rebuild(
    client: AsyncTestClient, pool: asyncpg.Pool, store: EventStore, database_url: str
) -> None:
    r = await client.post("/resources", json={"name": "Rebuilt while read"})
    resource_id = r.json()["resource_id"]
    bookings_before = await pool.fetchval("SELECT count(*) FROM bookings")
    # A schema of the rebuild's name, not yet committed, halts it when it creates its own, after
    # it took its lock and before it wrote anything.
    holder = await pool.acquire()
    pause = holder.transaction()
    await pause.start()
    await holder.execute(f"CREATE SCHEMA {SCHEMA}")
    rebuilding = asyncio.create_task(rebuild(database_url))
    waiting = f"""
        SELECT count(*) FROM pg_stat_activity
        WHERE wait_event_type = 'Lock' AND query = 'CREATE SCHEMA {SCHEMA}'
    """
    while not await pool.fetchval(waiting):  # noqa: ASYNC110
        await asyncio.sleep(0.01)

    # Readers are not blocked and see the rows as they were.
    assert (
        await asyncio.wait_for(pool.fetchval("SELECT count(*) FROM bookings"), 5) == bookings_before
    )
    reading = await asyncio.wait_for(client.get(f"/resources/{resource_id}"), 5)
    assert reading.status_code == 200
    # A writer waits for the rebuild to finish... (the test client answers synchronously,
    # so the write goes through command handlers on this loop)
    commands = CommandHandlers(ResourceRepository(store), lambda: datetime.now(UTC), never_seen)
    start = datetime(2031, 3, 3, 10, tzinfo=UTC)
    writing = asyncio.create_task(
        commands.create_booking(
            CreateBooking(UUID(resource_id), uuid4(), start, start + timedelta(hours=1))
        )
    )
    await asyncio.sleep(0.3)
    assert not writing.done()

    await pause.rollback()
    await pool.release(holder)
    await asyncio.wait_for(rebuilding, 30)
    # ...and then lands, projected on top of the rebuilt rows.
    booking_id = (await asyncio.wait_for(writing, 10)).booking_id
    booking = await client.get(f"/bookings/{booking_id}")
    assert booking.status_code == 200
    assert await pool.fetchval("SELECT count(*) FROM bookings") == bookings_before + 1


async def busy_history(client: AsyncTestClient) -> tuple[str, str, list[str]]:  # type: ignore[type-arg]
    """Two resources with bookings moved both ways, decided, closures added and removed, and
    settings and rules changed; their ids and the moved bookings."""
    a = await create_resource(client, name="A")
    b = await create_resource(client, name="B", requires_approval=True)
    on_a = [
        await create_booking(client, a, f"2031-04-0{d}T09:00:00Z", f"2031-04-0{d}T10:00:00Z")
        for d in range(1, 5)
    ]
    on_b = [
        await create_booking(client, b, f"2031-04-0{d}T12:00:00Z", f"2031-04-0{d}T13:00:00Z")
        for d in range(1, 5)
    ]

    async def ok(response: Any) -> None:
        assert response.status_code in {200, 201, 204}, response.text

    # Moves both ways in one batch of the log, so the rebuild must keep the log's order.
    for booking in on_a[:2]:
        await ok(await client.put(f"/bookings/{booking}", json={"resource_id": b}))
    for booking in on_b[:2]:
        await ok(await client.put(f"/bookings/{booking}", json={"resource_id": a}))
    await ok(await client.post(f"/bookings/{on_b[2]}/approve", params={"reason": "fine"}))
    await ok(await client.post(f"/bookings/{on_b[3]}/reject"))
    await ok(await client.post(f"/bookings/{on_a[0]}/approve"))
    moved = on_a[2]
    await ok(await client.put(f"/bookings/{moved}", json={"end_time": "2031-04-03T11:00:00Z"}))
    await ok(await client.put(f"/bookings/{moved}", json={"details": "projector"}))
    await ok(await client.delete(f"/bookings/{on_a[3]}"))
    closure = await client.post(
        f"/resources/{a}/closures",
        json={"start_time": "2031-05-01T00:00:00Z", "end_time": "2031-05-02T00:00:00Z"},
    )
    await ok(closure)
    await client.post(
        f"/resources/{a}/closures",
        json={"start_time": "2031-05-03T00:00:00Z", "end_time": "2031-05-04T00:00:00Z"},
    )
    await ok(await client.delete(f"/resources/{a}/closures/{closure.json()['closure_id']}"))
    await ok(await client.patch(f"/resources/{a}", json={"min_notice_minutes": 30, "name": "A1"}))
    await ok(await client.patch(f"/resources/{a}", json={"max_advance_days": 900}))
    await ok(await client.patch(f"/resources/{a}", json={"max_advance_days": None}))
    await ok(await client.patch(f"/resources/{b}", json={"capacity": 2, "details": None}))
    await ok(await client.delete(f"/resources/{b}", params={"reason": "sold"}))
    return a, b, on_a[:2] + on_b[:2]


async def test_rebuild_reproduces_moves_decisions_closures_and_settings(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    store: EventStore,
    database_url: str,
) -> None:
    a, b, moved = await busy_history(client)
    before = await dump(pool)
    where = {row[0]: row[1] for row in before["bookings"] if str(row[0]) in moved}
    assert {str(k): str(v) for k, v in where.items()} == dict(zip(moved, [b, b, a, a], strict=True))

    await rebuild(database_url)

    assert await dump(pool) == before


@pytest.mark.parametrize("seed", range(5))
async def test_any_split_into_batches_gives_the_same_read_models(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    store: EventStore,
    seed: int,
) -> None:
    """Each batch merges what its events do to a row before writing it: one event at a time,
    all at once and random splits must leave the same rows."""
    a, b = (UUID(r) for r in (await busy_history(client))[:2])
    recorded = sorted(
        [*await store.read_stream(a), *await store.read_stream(b)], key=lambda r: r.position
    )
    assert len(recorded) > 30
    async with pool.acquire() as conn:
        live = [await dump_stream(conn, a), await dump_stream(conn, b)]
        rng = random.Random(seed)
        for sizes in ([1] * len(recorded), [len(recorded)], None):
            tx = conn.transaction()
            await tx.start()
            try:
                await forget(conn, [a, b])
                at = 0
                while at < len(recorded):
                    size = sizes.pop(0) if sizes else rng.randint(1, 12)
                    await project_recorded(conn, recorded[at : at + size])
                    at += size
                assert [await dump_stream(conn, a), await dump_stream(conn, b)] == live
            finally:
                await tx.rollback()


async def project_recorded(conn: Any, recorded: list[RecordedEvent]) -> None:
    """Project events recorded before, as their append did (in one statement)."""
    rows = [
        {
            "stream_id": r.event.originator_id,
            "version": r.event.originator_version,
            "position": r.position,
        }
        for r in recorded
    ]
    known = """
        SELECT * FROM json_to_recordset($1::json) AS ev(stream_id uuid, version integer,
                                                        position bigint)
    """
    sql, args = chain(
        Write.of_rows(known, rows),
        project([r.event for r in recorded]),
    )
    await conn.execute(sql, *args)


async def forget(conn: Any, resource_ids: list[UUID]) -> None:
    """Delete every read-model row the resources' streams produced."""
    for table, column in (
        ("bookings", "resource_id"),
        ("closures", "resource_id"),
        ("resources", "resource_id"),
    ):
        await conn.execute(f"DELETE FROM {table} WHERE {column} = ANY($1::uuid[])", resource_ids)

"""The service against the CRUD baseline: create, hot resource, read; and the rebuild rate
against the raw read rate of the events table."""

import statistics
import time
from collections import Counter
from typing import Any
from uuid import uuid4

import asyncpg
import httpx

from bench.harness import crud_command, load, new_database, server, service_command
from bench.memory import cpu_seconds_by_process, parent, tree_cpu_seconds


async def register(url: str, count: int) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        ids = []
        for i in range(count):
            response = await http.post("/resources", json={"name": f"Bench {i}"})
            response.raise_for_status()
            ids.append(response.json()["resource_id"])
        return ids


async def overlaps(database_url: str, table: str, resource_id: str) -> int:
    """Pairs of confirmed bookings of one resource that overlap (must be 0)."""
    conn = await asyncpg.connect(database_url)
    try:
        query = f"""
            SELECT count(*) FROM {table} a JOIN {table} b
              ON a.resource_id = b.resource_id AND a.booking_id < b.booking_id
             AND a.start_time < b.end_time AND b.start_time < a.end_time
            WHERE a.resource_id = $1 AND a.status = 'confirmed' AND b.status = 'confirmed'
        """
        count: int = await conn.fetchval(query, resource_id)
        return count
    finally:
        await conn.close()


REBUILD_ROUNDS = 3
READ_ALL = """
SELECT position, stream_id, version, topic, state::text FROM events
WHERE position > $1 ORDER BY position LIMIT $2
"""
"""The raw read that the rebuild is measured against: the events table by position, in the
columns the store reads."""


async def rebuild_against_raw_read(database_url: str) -> dict[str, Any]:
    """Events/s of rebuilding every core read model, and of only reading the events table in
    batches (the ceiling a rebuild could reach), in turn, `REBUILD_ROUNDS` times each. First a
    VACUUM and before each measure a CHECKPOINT, so that neither pays for writes before it
    (hint bits, dirty pages) or runs next to autovacuum."""
    from projections.runner import rebuild  # noqa: PLC0415

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("VACUUM (ANALYZE) events")
        raw, rebuilt, count = [], [], 0
        for _ in range(REBUILD_ROUNDS):
            await conn.execute("CHECKPOINT")
            began, count, after = time.perf_counter(), 0, 0
            while rows := await conn.fetch(READ_ALL, after, 2000):
                count, after = count + len(rows), rows[-1]["position"]
            raw.append(count / (time.perf_counter() - began))
            await conn.execute("CHECKPOINT")
            rebuilt.append((await rebuild(database_url)).events_per_second)
    finally:
        await conn.close()
    return {
        "events": count,
        "raw_per_second": statistics.median(raw),
        "rebuild_per_second": statistics.median(rebuilt),
        "raw_rounds": raw,
        "rebuild_rounds": rebuilt,
    }


ORDER = ("service", "crud", "crud", "service")
"""Each scenario runs twice per target, in this order, each run half the time: drift in the
machine's load over the run (it is shared) falls on both alike."""


async def measure(
    pg: str,
    *,
    seconds: float,
    concurrency: int,
    workers: int,
    resources: int,
    sweep: tuple[int, ...] = (),
) -> dict[str, Any]:
    """create, hot and get against the service and the baseline in turn, with the CPU time
    the servers and PostgreSQL spent per request; then create again with each number of
    clients in `sweep` (`create_8` ...)."""
    service_db = await new_database(pg, "service")
    crud_db = await new_database(pg, "crud")
    postgres = await postmaster(pg)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {"service": {}, "crud": {}}
    with (
        server(service_command(workers), service_db) as service,
        server(crud_command(workers), crud_db, f"/bookings/{uuid4()}") as crud,
    ):
        servers = {"service": service, "crud": crud}
        spread = {
            "service": await register(service.url, resources),
            "crud": [str(uuid4()) for _ in range(resources)],
        }
        # A hot resource per run: each race starts with all its slots free.
        hot = {
            "service": await register(service.url, 2),
            "crud": [str(uuid4()), str(uuid4())],
        }
        databases = {"service": (service_db, "bookings"), "crud": (crud_db, "crud_bookings")}
        common: dict[str, Any] = {"seconds": seconds / 2}
        created: dict[str, list[str]] = {"service": [], "crud": []}
        # (the label its figures go under, the load generator's scenario, its clients)
        scenarios = [(s, s, concurrency) for s in ("create", "hot", "get")]
        scenarios += [(f"create_{clients}", "create", clients) for clients in sweep]
        for round_, (label, scenario, clients) in enumerate(scenarios):
            for n, name in enumerate(ORDER):
                turn = ORDER[:n].count(name)  # the target's first run or its second
                plan = common | {"url": servers[name].url, "scenario": scenario}
                plan["concurrency"] = clients
                if scenario == "create":
                    first_slot = 100_000 * (2 * round_ + turn)  # every run its own free slots
                    plan |= {"resources": spread[name], "first_slot": first_slot}
                elif scenario == "hot":
                    plan |= {"resources": [hot[name][turn]]}
                else:
                    plan |= {"ids": created[name][:5000]}
                result = costed(plan, servers[name].pid, postgres)
                ids = result.pop("created")
                if scenario == "create":
                    created[name] += ids
                elif scenario == "hot":
                    db, table = databases[name]
                    result["winners"] = len(ids)
                    result["overlapping_pairs"] = await overlaps(db, table, plan["resources"][0])
                runs[name].setdefault(label, []).append(result)
    figures: dict[str, Any] = {
        name: {k: merged(v) for k, v in found.items()} for name, found in runs.items()
    }
    return figures | {"concurrency": concurrency, "sweep": list(sweep)}


def costed(plan: dict[str, Any], server_pid: int, postgres_pid: int) -> dict[str, Any]:
    """The load generator's figures, with the CPU time per request of the server's processes
    and of PostgreSQL's (all of its processes: other work on it counts too), and the busiest
    server process's share of the server's CPU time (with several workers, 0.5 is an even
    split; near 1.0, one worker did the work)."""
    before, postgres_before = cpu_seconds_by_process(server_pid), tree_cpu_seconds(postgres_pid)
    result = load(plan)
    after, postgres_after = cpu_seconds_by_process(server_pid), tree_cpu_seconds(postgres_pid)
    used = [seconds - before.get(pid, 0.0) for pid, seconds in after.items()]
    server = sum(used)
    requests = max(result["requests"], 1)
    result["server_cpu_ms"] = server * 1000 / requests
    result["postgres_cpu_ms"] = (postgres_after - postgres_before) * 1000 / requests
    result["busiest_share"] = max(used) / server if server > 0 else 1.0
    return result


def merged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs of one scenario on one target as one: rates and percentiles averaged over the
    runs (of equal length), counts added up."""
    found: dict[str, Any] = {
        figure: sum(r[figure] for r in runs) / len(runs)
        for figure in (
            "per_second",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "server_cpu_ms",
            "postgres_cpu_ms",
            "busiest_share",
        )
    }
    found["requests"] = sum(r["requests"] for r in runs)
    found["statuses"] = dict(sum((Counter(r["statuses"]) for r in runs), Counter()))
    for count in ("winners", "overlapping_pairs"):
        if count in runs[0]:
            found[count] = sum(r[count] for r in runs)
    return found


async def postmaster(pg: str) -> int:
    """The pid of the PostgreSQL server (the parent of every backend)."""
    conn = await asyncpg.connect(pg)
    try:
        return parent(await conn.fetchval("SELECT pg_backend_pid()"))
    finally:
        await conn.close()

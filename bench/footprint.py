"""Does the server's memory follow active bookings or history? Two sets of resources: one with
a long history of completed bookings (a million events by default) and one with none, both
with a few active bookings each; then both get many more active bookings.

For each of the four (history x active) a fresh server process (one worker, so the process
measured caches every resource) is started; its resident memory is read from /proc when it is
idle, and again after every resource of the set was touched through the API (a `POST /bookings`
on a slot already taken: the aggregate is loaded and cached, the request refused with 409, so no
booking is added).
"""

import time
from datetime import timedelta
from typing import Any

import asyncpg
import httpx

from bench.compare import rebuild_against_raw_read
from bench.harness import new_database, server, service_command
from bench.history import Plan, add_active, catch_up_background, seed, starts
from bench.load import BASE, body
from bench.memory import tree_rss_mib

SETTLE = 1.0
"""Seconds to wait before reading the memory, so the process is at rest."""


def _footprint(database_url: str, plans: list[Plan], workers: int) -> dict[str, Any]:
    """Memory of a fresh server process at rest, and after it cached every resource of `plans`."""
    with server(service_command(workers), database_url) as service:
        time.sleep(SETTLE)
        idle = tree_rss_mib(service.pid)
        statuses: dict[int, int] = {}
        began = time.perf_counter()
        with httpx.Client(base_url=service.url, timeout=60) as http:
            for plan in plans:
                response = http.post("/bookings", json=body(str(plan.resource_id), 0))
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        touched_seconds = time.perf_counter() - began
        time.sleep(SETTLE)
        touched = tree_rss_mib(service.pid)
    return {
        "idle_mib": idle,
        "touched_mib": touched,
        "growth_mib": touched - idle,
        "touch_seconds": touched_seconds,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


async def measure(
    pg: str, *, history_events: int, resources: int, few: int, many: int, workers: int = 1
) -> dict[str, Any]:
    database_url = await new_database(pg, "memory", migrated=True)
    past = history_events // resources // 2
    long = [Plan(f"long history {i}", past, starts(BASE, few)) for i in range(resources)]
    short = [Plan(f"no history {i}", 0, starts(BASE, few)) for i in range(resources)]
    seeded = await seed(database_url, long + short)
    projected = await catch_up_background(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    results: dict[str, Any] = {
        "database_mib": size / 2**20,
        "resources": resources,
        "workers": workers,
        "history_events": resources * 2 * past,
        "seeded": {"events": seeded.events, "seconds": seeded.seconds},
        "background_catch_up": {"events": projected.events, "seconds": projected.seconds},
    }
    history = results["history_events"]
    footprints = {
        "long_few": _footprint(database_url, long, workers),
        "none_few": _footprint(database_url, short, workers),
    }
    more = starts(BASE + timedelta(hours=few), many - few)
    grown = await add_active(database_url, {p.resource_id: more for p in long + short})
    projected = await catch_up_background(database_url)
    results["grown"] = {"events": grown.events, "seconds": grown.seconds + projected.seconds}
    footprints["long_many"] = _footprint(database_url, long, workers)
    footprints["none_many"] = _footprint(database_url, short, workers)
    for key, found in footprints.items():
        found["history_events"] = history if key.startswith("long") else 0
        found["active_bookings"] = resources * (few if key.endswith("few") else many)
    results["footprints"] = footprints
    results["rebuild"] = await rebuild_against_raw_read(database_url)
    return results

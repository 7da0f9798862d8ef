"""The load generator: drives one target over real HTTP from a process of its own and prints
what it measured as JSON. `python -m bench.load < plan.json`."""

import asyncio
import itertools
import json
import random
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

BASE = datetime(2031, 1, 1, tzinfo=UTC)
CLIENT = "00000000-0000-4000-8000-00000000c11e"


def body(resource_id: str, slot: int, hours: int = 1) -> dict[str, str]:
    start = BASE + timedelta(hours=slot)
    return {
        "resource_id": resource_id,
        "client_id": CLIENT,
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(hours=hours)).isoformat(),
    }


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    scenario, resources, ids = plan["scenario"], plan.get("resources", []), plan.get("ids", [])
    slots = itertools.count(plan.get("first_slot", 0))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    created: list[str] = []
    stop_at = time.monotonic() + plan["seconds"]
    limits = httpx.Limits(max_connections=plan["concurrency"])

    async with httpx.AsyncClient(base_url=plan["url"], limits=limits, timeout=30) as http:

        def request() -> Any:
            if scenario == "create":  # every request a free slot, spread over the resources
                slot = next(slots)
                return http.post("/bookings", json=body(resources[slot % len(resources)], slot))
            if scenario == "hot":  # everyone races for one resource's few slots
                return http.post("/bookings", json=body(resources[0], random.randrange(200)))
            return http.get(f"/bookings/{random.choice(ids)}")

        async def worker() -> None:
            while time.monotonic() < stop_at:
                began = time.perf_counter()
                response = await request()
                latencies.append(time.perf_counter() - began)
                statuses[response.status_code] += 1
                if response.status_code == 201:
                    created.append(response.json()["booking_id"])

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(plan["concurrency"])))
        elapsed = time.perf_counter() - began

    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p95_ms": cuts[94] * 1000,
        "p99_ms": cuts[98] * 1000,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "created": created,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(json.load(sys.stdin)))))

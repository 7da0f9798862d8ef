"""The load generator: drives one target over real HTTP from a process of its own and writes
what it measured as JSON to a file. `python -m bench.load result.json < plan.json`.

A plan names a scenario, the server's URL, how many clients (`concurrency`) and for how long
(`seconds`, after `warmup_seconds` whose requests are not counted). Scenarios that compare
resources take `targets` (label -> resource id) and spread their requests over them in turn, so
every target is measured in the same seconds, under the same load and noise; their figures come
back per label in `by_target`.

The client is aiohttp on uvloop: it costs about a tenth of the CPU per request of httpx on
asyncio, so that on a machine with few cores the load generator is not what bounds the measured
throughput.
"""

import asyncio
import itertools
import json
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import uvloop

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


def figures(latencies: list[float]) -> dict[str, Any]:
    """Percentiles in ms, and the 99 cut points of the distribution (for plots)."""
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies),
        "p50_ms": cuts[49] * 1000,
        "p95_ms": cuts[94] * 1000,
        "p99_ms": cuts[98] * 1000,
        "max_ms": max(latencies, default=0.0) * 1000,
        "percentiles_ms": [round(c * 1000, 3) for c in cuts],
    }


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    scenario, resources, ids = plan["scenario"], plan.get("resources", []), plan.get("ids", [])
    targets: dict[str, str] = plan.get("targets") or {"all": ""}
    labels = itertools.cycle(targets)
    slots = itertools.count(plan.get("first_slot", 0))
    target_slots = {label: itertools.count(plan.get("first_slot", 0)) for label in targets}
    query = plan.get("query", {})
    latencies: defaultdict[str, list[float]] = defaultdict(list)
    statuses: Counter[int] = Counter()
    created: list[str] = []
    measure_from = time.monotonic() + plan.get("warmup_seconds", 0)
    stop_at = measure_from + plan["seconds"]
    # One keep-alive connection per client, as many as there are clients.
    connector = aiohttp.TCPConnector(limit=plan["concurrency"])
    timeout = aiohttp.ClientTimeout(total=60)

    def request(label: str) -> tuple[str, str, dict[str, Any]]:
        """The method, path and options of the next request to `label`."""
        resource_id = targets[label]
        if scenario == "create":  # every request a free slot, spread over the resources
            slot = next(slots)
            return "POST", "/bookings", {"json": body(resources[slot % len(resources)], slot)}
        if scenario == "hot":  # everyone races for one resource's few slots
            return "POST", "/bookings", {"json": body(resources[0], random.randrange(200))}
        if scenario == "decide":  # a free slot of the target resource each time
            return "POST", "/bookings", {"json": body(resource_id, next(target_slots[label]))}
        if scenario == "availability":
            return "GET", f"/resources/{resource_id}/availability", {"params": query}
        return "GET", f"/bookings/{random.choice(ids)}", {}

    async with aiohttp.ClientSession(plan["url"], connector=connector, timeout=timeout) as http:

        async def worker() -> None:
            while (began_at := time.monotonic()) < stop_at:
                label = next(labels)
                began = time.perf_counter()
                method, path, options = request(label)
                async with http.request(method, path, **options) as response:
                    # Read to the end, so the connection goes back to the pool for reuse.
                    content = await response.read()
                if began_at >= measure_from:
                    latencies[label].append(time.perf_counter() - began)
                    statuses[response.status] += 1
                if response.status == 201:
                    created.append(json.loads(content)["booking_id"])

        await asyncio.gather(*(worker() for _ in range(plan["concurrency"])))
        elapsed = time.monotonic() - measure_from

    every = [latency for label in targets for latency in latencies[label]]
    result = figures(every) | {
        "per_second": len(every) / elapsed,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "created": created,
    }
    if plan.get("targets"):
        result["by_target"] = {label: figures(latencies[label]) for label in targets}
    return result


if __name__ == "__main__":
    # To a file, not to stdout: results of several hundred kB came through the pipe cut short.
    result = uvloop.run(run(json.load(sys.stdin)))
    with open(sys.argv[1], "w") as out:
        json.dump(result, out)

"""Does a long history slow a resource down? Three resources with the same few active bookings
in one future week: a fresh one, one with a small history and one with a large history of
completed bookings (by default 1k and 100k).

- availability: `GET /resources/{id}/availability` for that week (plain, and with
  `duration=60` for the bookable starts), small against large history;
- decide: `POST /bookings` on a free future slot, fresh against both histories, at concurrency
  1 and 8;
- cold: the first decision on each resource in a fresh server process (the aggregate is loaded
  from its latest snapshot), against the next one (cached);
- as_of: availability `as_of` now, which folds the resource's stream up to then.

The targets of a run take its requests in turn, so they are measured in the same seconds under
the same load; each run first warms up for `WARMUP` seconds (not counted), in which every server
process loads every aggregate it will decide on.
"""

import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.harness import load, new_database, server, service_command
from bench.history import Plan, catch_up_background, check, seed, starts
from bench.load import body
from bench.memory import tree_rss_mib

WEEK = datetime(2030, 6, 3, tzinfo=UTC)
"""The week whose availability is asked (a Monday): the active bookings are in it."""
WEEK_QUERY = {"from": WEEK.isoformat(), "to": (WEEK + timedelta(days=7)).isoformat()}
ACTIVE = starts(WEEK + timedelta(hours=9), 6, step=timedelta(days=1))
WARMUP = 2.0
DECIDE_CONCURRENCY = (1, 8)
DECIDE_SLOTS_APART = 50_000
"""Hours between the first slots of successive decide runs (a run books an hour a request)."""
COLD_ROUNDS = 3
COLD_FIRST_SLOT = 300_000
"""Hours after load.BASE where the cold decisions book (away from the decide runs' slots)."""
AS_OF_REPEATS = 2


def _cold(database_url: str, targets: dict[str, str], warm_ups: list[Plan]) -> dict[str, Any]:
    """First and second decision on each target in fresh single-worker server processes (one
    per warm-up resource), after a decision on the warm-up resource has warmed the process up;
    medians over the rounds, whose order of targets rotates."""
    first: dict[str, list[float]] = {label: [] for label in targets}
    second: dict[str, list[float]] = {label: [] for label in targets}
    slot = COLD_FIRST_SLOT
    labels = list(targets)
    for round_, warm_up in enumerate(warm_ups):
        order = labels[round_ % len(labels) :] + labels[: round_ % len(labels)]
        with (
            server(service_command(1), database_url) as service,
            httpx.Client(base_url=service.url, timeout=60) as http,
        ):
            http.post("/bookings", json=body(str(warm_up.resource_id), slot)).raise_for_status()
            for label in order:
                for times in (first, second):
                    slot += 1
                    began = time.perf_counter()
                    response = http.post("/bookings", json=body(targets[label], slot))
                    times[label].append((time.perf_counter() - began) * 1000)
                    response.raise_for_status()
    return {
        label: {
            "first_ms": statistics.median(first[label]),
            "second_ms": statistics.median(second[label]),
            "first_all_ms": first[label],
        }
        for label in targets
    }


def _as_of(url: str, pid: int, targets: dict[str, str]) -> dict[str, Any]:
    """Availability of the week as of now, folded from each resource's whole stream; its time
    and the server's memory around it."""
    found: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=300) as http:
        for label, resource_id in targets.items():
            rss_before = tree_rss_mib(pid)
            times = []
            for _ in range(AS_OF_REPEATS):
                as_of = datetime.now(UTC).isoformat()
                began = time.perf_counter()
                response = http.get(
                    f"/resources/{resource_id}/availability", params=WEEK_QUERY | {"as_of": as_of}
                )
                times.append((time.perf_counter() - began) * 1000)
                response.raise_for_status()
            found[label] = {
                "ms": times,
                "busy": len(response.json()["busy"]),
                "rss_before_mib": rss_before,
                "rss_after_mib": tree_rss_mib(pid),
            }
    return found


def _visible(url: str, targets: dict[str, str]) -> dict[str, int]:
    """How many busy slots each target shows in the week (each should show the active ones)."""
    with httpx.Client(base_url=url, timeout=60) as http:
        counts = {}
        for label, resource_id in targets.items():
            response = http.get(f"/resources/{resource_id}/availability", params=WEEK_QUERY)
            response.raise_for_status()
            counts[label] = len(response.json()["busy"])
        return counts


async def measure(
    pg: str, *, seconds: float, concurrency: int, workers: int, small: int, large: int
) -> dict[str, Any]:
    database_url = await new_database(pg, "history", migrated=True)
    plans = {
        "fresh": Plan("fresh", 0, ACTIVE),
        "small": Plan(f"{small:,} past bookings", small, ACTIVE),
        "large": Plan(f"{large:,} past bookings", large, ACTIVE),
    }
    warm_ups = [Plan(f"warm-up {i}", 0) for i in range(COLD_ROUNDS)]
    seeded = await seed(database_url, [*plans.values(), *warm_ups], parallel=3)
    projected = await catch_up_background(database_url)
    targets = {label: str(plan.resource_id) for label, plan in plans.items()}
    results: dict[str, Any] = {
        "history": {"small": small, "large": large},
        "seeded": {"events": seeded.events, "seconds": seeded.seconds},
        "background_catch_up": {"events": projected.events, "seconds": projected.seconds},
        "read_models": {
            label: await check(database_url, plan.resource_id) for label, plan in plans.items()
        },
        "cold": _cold(database_url, targets, warm_ups),
    }
    histories = {label: targets[label] for label in ("small", "large")}
    with server(service_command(workers), database_url) as service:
        results["visible_busy"] = _visible(service.url, targets)

        def run(scenario: str, clients: int, chosen: dict[str, str], **plan: Any) -> Any:
            found = load(
                {"url": service.url, "seconds": seconds, "warmup_seconds": WARMUP}
                | {"scenario": scenario, "concurrency": clients, "targets": chosen}
                | plan
            )
            found.pop("created")
            return found

        results["availability"] = run("availability", concurrency, histories, query=WEEK_QUERY)
        bookable = WEEK_QUERY | {"duration": 60}
        results["bookable"] = run("availability", concurrency, histories, query=bookable)
        for i, clients in enumerate(DECIDE_CONCURRENCY):
            first_slot = i * DECIDE_SLOTS_APART
            results[f"decide_c{clients}"] = run("decide", clients, targets, first_slot=first_slot)
        results["as_of"] = _as_of(service.url, service.pid, histories)
    return results

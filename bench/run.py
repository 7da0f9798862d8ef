"""Runs the suite: the service and the CRUD baseline side by side on one embedded PostgreSQL,
each scenario against each in turn, the load from a process of its own. Prints a table of the
figures and the ratios, and writes them to bench/results/latest.json.

    ./run bench [--seconds 10] [--concurrency 32] [--workers 2] [--resources 200]
"""

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import asyncpg
import httpx

from api.database import embedded

RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def server(command: list[str], database_url: str, probe: str) -> Iterator[str]:
    """A server process on a free port, up (its `probe` path answers below 500) until exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {"DATABASE_URL": database_url, "BOOKINGS_SETTLE_SECONDS": "0"}
    process = subprocess.Popen([*command, "--port", str(port)], env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not start")
            try:
                if httpx.get(url + probe, timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


async def new_database(server_url: str, name: str) -> str:
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return urlsplit(server_url)._replace(path=f"/{name}").geturl()


def load(plan: dict[str, Any]) -> dict[str, Any]:
    """Run the load generator in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.load"],
        input=json.dumps(plan),
        capture_output=True,
        check=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


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


async def rebuild_against_raw_read(database_url: str) -> dict[str, float]:
    """Events/s of rebuilding every core read model, and of only reading the events table in
    the same batches (the ceiling a rebuild could reach)."""
    from commands.resource import TRANSCODINGS  # noqa: PLC0415
    from events.store import READ_ALL, EventStore, new_mapper  # noqa: PLC0415
    from projections.runner import rebuild  # noqa: PLC0415

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        began, count, after = time.perf_counter(), 0, 0
        async with pool.acquire() as conn:
            while rows := await conn.fetch(READ_ALL, after, 2000):
                count, after = count + len(rows), rows[-1]["position"]
        raw = count / (time.perf_counter() - began)
        summary = await rebuild(pool, EventStore(pool, new_mapper(*TRANSCODINGS)))
        return {
            "events": count,
            "raw_per_second": raw,
            "rebuild_per_second": summary.events_per_second,
        }
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--resources", type=int, default=200)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bookings-bench-"))
    try:
        with embedded(data_dir) as pg:
            results = asyncio.run(_measure_all(pg, args))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    report(results, args)


async def _measure_all(pg: str, args: argparse.Namespace) -> dict[str, Any]:
    service_db = await new_database(pg, "service")
    crud_db = await new_database(pg, "crud")
    workers = ["--workers", str(args.workers), "--log-level", "warning"]
    service_cmd = [sys.executable, "-m", "api.cli", "serve", *workers]
    crud_cmd = [sys.executable, "-m", "uvicorn", "bench.baseline:create_app", "--factory"]
    crud_cmd += ["--workers", str(args.workers), "--log-level", "warning", "--no-access-log"]
    results: dict[str, Any] = {}
    with (
        server(service_cmd, service_db, "/health") as service,
        server(crud_cmd, crud_db, f"/bookings/{uuid4()}") as crud,
    ):
        spread = {
            "service": await register(service, args.resources),
            "crud": [str(uuid4()) for _ in range(args.resources)],
        }
        hot = {"service": (await register(service, 1))[0], "crud": str(uuid4())}
        targets = {
            "service": (service, service_db, "slots"),
            "crud": (crud, crud_db, "crud_bookings"),
        }
        common = {"seconds": args.seconds, "concurrency": args.concurrency}
        for name, (url, db, table) in targets.items():
            created = load(common | {"url": url, "scenario": "create", "resources": spread[name]})
            raced = load(common | {"url": url, "scenario": "hot", "resources": [hot[name]]})
            ids = created.pop("created")[:5000]
            raced["overlapping_pairs"] = await overlaps(db, table, hot[name])
            raced["winners"] = len(raced.pop("created"))
            fetched = load(common | {"url": url, "scenario": "get", "ids": ids})
            fetched.pop("created")
            results[name] = {"create": created, "hot": raced, "get": fetched}
    results["rebuild"] = await rebuild_against_raw_read(service_db)
    return results


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    RESULTS.mkdir(exist_ok=True)
    run = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "settings": vars(args),
        "results": results,
    }
    (RESULTS / "latest.json").write_text(json.dumps(run, indent=2) + "\n")
    print("| scenario | figure | service | CRUD baseline | ratio |\n|---|---|---|---|---|")
    for scenario in ("create", "hot", "get"):
        service, crud = results["service"][scenario], results["crud"][scenario]
        for figure in ("per_second", "p50_ms", "p95_ms", "p99_ms"):
            ratio = service[figure] / crud[figure] if crud[figure] else float("nan")
            cells = f"{service[figure]:,.1f} | {crud[figure]:,.1f} | {ratio:.2f}"
            print(f"| {scenario} | {figure} | {cells} |")
        print(f"| {scenario} | statuses | {service['statuses']} | {crud['statuses']} | |")
        if scenario == "hot":
            pairs = [f"{r['winners']} / {r['overlapping_pairs']}" for r in (service, crud)]
            print(f"| hot | winners / overlapping pairs | {pairs[0]} | {pairs[1]} | |")
    rebuilt = results["rebuild"]
    ratio = rebuilt["rebuild_per_second"] / rebuilt["raw_per_second"]
    print(
        f"\nrebuild of {rebuilt['events']:,} events: "
        f"{rebuilt['rebuild_per_second']:,.0f} events/s; "
        f"reading them raw: {rebuilt['raw_per_second']:,.0f} events/s; ratio {ratio:.2f}"
    )


if __name__ == "__main__":
    main()

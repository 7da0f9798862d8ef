"""Runs the suite on one embedded PostgreSQL (in a temporary directory), the load from a process
of its own, and prints the figures as markdown tables; writes them to bench/results/latest.json
and, when matplotlib is there (the `bench` extra), plots to docs/images.

- compare: the service against a CRUD baseline: create, hot resource, read; CPU per request.
- history: availability and decisions on resources with a short and a long history (d, e).
- memory: server memory after a long history, against active bookings (g).

    ./run bench [--only compare|history|memory ...] [--seconds 10] [--concurrency 32] ...
"""

import argparse
import asyncio
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from api.database import embedded
from bench import compare, footprint, plots, scaling
from bench.report import LATEST, report

GROUPS = ("compare", "history", "memory")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", choices=GROUPS, help="repeat; default all")
    parser.add_argument("--seconds", type=float, default=10, help="per measured run")
    parser.add_argument("--concurrency", type=int, default=32, help="clients in compare")
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--resources", type=int, default=200, help="resources in compare")
    parser.add_argument(
        "--sweep",
        type=int,
        nargs="*",
        default=[8, 128],
        help="clients of the extra create runs in compare (none: --sweep)",
    )
    history = parser.add_argument_group("history (d, e)")
    history.add_argument("--history-small", type=int, default=1_000, help="past bookings")
    history.add_argument("--history-large", type=int, default=100_000, help="past bookings")
    history.add_argument(
        "--history-concurrency", type=int, default=8, help="clients asking availability"
    )
    memory = parser.add_argument_group("memory (g)")
    memory.add_argument("--history", type=int, default=1_000_000, help="events of history")
    memory.add_argument("--memory-resources", type=int, default=100)
    memory.add_argument("--active-few", type=int, default=10, help="per resource")
    memory.add_argument("--active-many", type=int, default=500, help="per resource")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNGs")
    return parser


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


async def postgres_version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        version: str = await conn.fetchval("SHOW server_version")
        return version
    finally:
        await conn.close()


async def measure(pg: str, args: argparse.Namespace) -> dict[str, Any]:
    groups = args.only or GROUPS
    results: dict[str, Any] = {"postgres": await postgres_version(pg), "seconds": {}}
    for group in GROUPS:
        if group not in groups:
            continue
        began = time.perf_counter()
        if group == "compare":
            results[group] = await compare.measure(
                pg,
                seconds=args.seconds,
                concurrency=args.concurrency,
                workers=args.workers,
                resources=args.resources,
                sweep=tuple(args.sweep),
            )
        elif group == "history":
            results[group] = await scaling.measure(
                pg,
                seconds=args.seconds,
                concurrency=args.history_concurrency,
                workers=args.workers,
                small=args.history_small,
                large=args.history_large,
            )
        else:
            results[group] = await footprint.measure(
                pg,
                history_events=args.history,
                resources=args.memory_resources,
                few=args.active_few,
                many=args.active_many,
            )
        results["seconds"][group] = time.perf_counter() - began
    return results


def main() -> None:
    args = parser().parse_args()
    began = time.perf_counter()
    data_dir = Path(tempfile.mkdtemp(prefix="bookings-bench-"))
    try:
        with embedded(data_dir) as pg:
            results = asyncio.run(measure(pg, args))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    run = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, PostgreSQL {results.pop('postgres')} (embedded)",
        "settings": vars(args),
        "seconds": time.perf_counter() - began,
        "results": results,
    }
    LATEST.parent.mkdir(exist_ok=True)
    LATEST.write_text(json.dumps(run, indent=2) + "\n")
    report(run)
    if args.no_plots:
        return
    if plots.available():
        for path in plots.draw(results):
            print(f"plot: {path}")
    else:
        print("plots skipped: matplotlib is missing (pip install -e '.[bench]')")


if __name__ == "__main__":
    main()

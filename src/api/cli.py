"""The `bookings` command: serve the API, migrate the schema, rebuild read models."""

import argparse
import asyncio
import os
import signal
import sys
import time

import asyncpg

from api.database import DataDirInUseError, database, open_pool
from api.settings import Settings
from events.migrations import migrate


def serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn  # noqa: PLC0415

    # uvicorn re-raises SIGTERM once it has shut down: make that unwind through `database`,
    # which stops an embedded PostgreSQL on the way out.
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    with database(settings) as url:
        # Workers are separate processes: they find the database through the environment.
        os.environ["DATABASE_URL"] = url
        asyncio.run(_migrate(url))
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            access_log=False,
        )


async def _migrate(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for name in await migrate(conn):
            print(f"applied {name}")
    finally:
        await conn.close()


CORE = "core"
"""The read models projected inline with every append (resources, bookings, availability,
history); the others follow the log in the background."""


def _names() -> list[str]:
    from projections.background import BACKGROUND  # noqa: PLC0415

    return [CORE, *(p.NAME for p in BACKGROUND)]


class Progress:
    """A progress bar on a terminal, nothing otherwise."""

    def __init__(self, label: str, total: int, unit: str = "events") -> None:
        self.label, self.total, self.unit = label, max(total, 1), unit
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int) -> None:
        if self.tty:
            share = min(done / self.total, 1.0)
            bar = "#" * int(share * 30)
            line = f"\r{self.label:<10} [{bar:<30}] {share:>4.0%} {done:>12,} {self.unit}"
            print(line, end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr)


async def _rebuild(url: str, settings: Settings, names: list[str]) -> None:
    from commands.resource import TRANSCODINGS  # noqa: PLC0415
    from events.store import EventStore, new_mapper  # noqa: PLC0415
    from projections import background  # noqa: PLC0415
    from projections.runner import REBUILD, rebuild  # noqa: PLC0415

    pool = await open_pool(url, settings)
    try:
        store = EventStore(pool, new_mapper(*TRANSCODINGS))
        total = await pool.fetchval("SELECT count(*) FROM events")
        for name in names or _names():
            started = time.perf_counter()
            if name == CORE:
                progress = Progress(name, len(REBUILD), unit="tables")
                events = (await rebuild(url, progress=progress)).events
            else:
                progress = Progress(name, total)
                projection = background.named(name)
                await background.reset(pool, projection)
                events = await background.catch_up(
                    pool, store, projection, progress=progress, wait=True
                )
            progress.close()
            seconds = time.perf_counter() - started
            rate = events / seconds if seconds else 0.0
            print(
                f"rebuilt {name} from {events:,} events in {seconds:.2f} s ({rate:,.0f} events/s)"
            )
    finally:
        await pool.close()


async def _status(url: str, settings: Settings) -> None:
    from projections import background  # noqa: PLC0415

    pool = await open_pool(url, settings)
    try:
        head = await background.head(pool)
        print(f"{CORE:<10} at {head:>12,}  behind {0:>10,}  (projected with every append)")
        for projection in background.BACKGROUND:
            lag = await background.lag(pool, projection)
            print(f"{lag.name:<10} at {lag.position:>12,}  behind {lag.behind:>10,}")
    finally:
        await pool.close()


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="bookings", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="serve the HTTP API")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--workers", type=int, default=1, help="worker processes")
    run.add_argument("--log-level", default="info")
    sub.add_parser("migrate", help="apply pending schema migrations")
    projections = sub.add_parser("projections", help="manage read models")
    projections_sub = projections.add_subparsers(dest="action", required=True)
    rebuild = projections_sub.add_parser(
        "rebuild", help="rebuild read models from the event log (all, or the ones named)"
    )
    rebuild.add_argument("names", nargs="*", metavar="NAME", help=f"{CORE}, activity")
    projections_sub.add_parser("status", help="how far each projection has got")
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as error:
        sys.exit(f"bookings: {error}")
    try:
        if args.command == "serve":
            serve(args, settings)
            return
        with database(settings, exclusive=False) as url:
            if args.command == "migrate":
                asyncio.run(_migrate(url))
            elif args.action == "status":
                asyncio.run(_status(url, settings))
            else:
                unknown = set(args.names) - set(_names())
                if unknown:
                    sys.exit(f"bookings: no projection named {', '.join(sorted(unknown))}")
                asyncio.run(_rebuild(url, settings, args.names))
    except DataDirInUseError as error:
        sys.exit(f"bookings: {error}")


if __name__ == "__main__":
    main()

"""The `bookings` command: serve the API, migrate the schema, rebuild read models."""

import argparse
import asyncio
import os
import signal
import sys

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


async def _rebuild(url: str, settings: Settings) -> None:
    from commands.resource import TRANSCODINGS  # noqa: PLC0415
    from events.store import EventStore, new_mapper  # noqa: PLC0415
    from projections.runner import rebuild  # noqa: PLC0415

    pool = await open_pool(url, settings)
    try:
        store = EventStore(pool, new_mapper(*TRANSCODINGS))
        tty = sys.stderr.isatty()

        def progress(count: int) -> None:
            if tty:
                print(f"\r{count:>12,} events projected", end="", file=sys.stderr, flush=True)

        summary = await rebuild(pool, store, progress=progress)
        if tty:
            print(file=sys.stderr)
        print(
            f"rebuilt read models from {summary.events:,} events in {summary.seconds:.2f} s "
            f"({summary.events_per_second:,.0f} events/s)"
        )
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
    projections_sub.add_parser("rebuild", help="rebuild every read model from the event log")
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
            else:
                asyncio.run(_rebuild(url, settings))
    except DataDirInUseError as error:
        sys.exit(f"bookings: {error}")


if __name__ == "__main__":
    main()

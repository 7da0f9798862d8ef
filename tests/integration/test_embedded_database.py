"""The embedded PostgreSQL: one owner per data directory, which stops it on exit."""

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from api.database import DataDirInUseError, embedded


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bookings-embedded-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def test_one_owner_others_join_and_the_owner_stops_it(data_dir: Path) -> None:
    with embedded(data_dir) as url:
        assert await answers(url)
        with pytest.raises(DataDirInUseError), embedded(data_dir):
            pass
        with embedded(data_dir, exclusive=False) as joined:
            assert joined == url
        assert await answers(url), "a process that joined must not stop the owner's server"
    assert not await answers(url)


async def test_data_survives_a_restart(data_dir: Path) -> None:
    with embedded(data_dir) as url:
        conn = await asyncpg.connect(url)
        await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        await conn.close()
    with embedded(data_dir) as url:
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT x FROM kept") == 42
        await conn.close()


async def test_a_joiner_never_starts_a_server_it_would_not_stop(data_dir: Path) -> None:
    with embedded(data_dir):
        pass  # initialised, then stopped by its owner
    # An owner that holds the lock but has no server running (it is shutting down, say).
    lock = os.open(data_dir / "owner.lock", os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with pytest.raises(DataDirInUseError), embedded(data_dir, exclusive=False):
            pass
    finally:
        os.close(lock)
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()


def test_the_lock_file_is_private(data_dir: Path) -> None:
    with embedded(data_dir):
        mode = (data_dir / "owner.lock").stat().st_mode & 0o777
    assert mode == 0o600

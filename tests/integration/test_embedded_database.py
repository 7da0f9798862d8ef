"""The embedded PostgreSQL: one owner per data directory, which stops it on exit."""

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

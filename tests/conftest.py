"""Shared fixtures: one real PostgreSQL per test session (embedded unless DATABASE_URL is set)."""

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.database import embedded, open_pool
from api.settings import Settings
from commands.resource import TRANSCODINGS
from events.store import EventStore, new_mapper
from projections.runner import project


class Clock:
    """A clock the tests can move; starts at the real time."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    # A folder of our own: the embedded server changes the permissions of its parents, which
    # would disturb other pytest sessions sharing pytest's temporary root.
    data_dir = Path(tempfile.mkdtemp(prefix="bookings-test-"))
    try:
        with embedded(data_dir) as url:
            yield url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url, snapshot_every=10, settle_seconds=0, webhook_seconds=0
    )


@pytest.fixture(scope="session")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    assert settings.database_url
    pool = await open_pool(settings.database_url, settings)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def store(pool: asyncpg.Pool) -> EventStore:
    return EventStore(pool, new_mapper(*TRANSCODINGS), projector=project)


@pytest.fixture(scope="session")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
async def client(settings: Settings, clock: Clock) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async with AsyncTestClient(create_app(settings, clock=clock)) as client:
        yield client

"""Shared fixtures: one real PostgreSQL per test session (embedded unless DATABASE_URL is set)."""

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.database import open_pool
from api.settings import Settings
from commands.resource import TRANSCODINGS
from events.store import EventStore, new_mapper
from projections.runner import project
from servers import private_postgres


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
    with private_postgres("bookings-test-") as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # Nothing in the background: its transactions would hold the feed back for a moment.
    return Settings(
        database_url=database_url,
        snapshot_every=10,
        settle_seconds=0,
        project_seconds=0,
        webhook_seconds=0,
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

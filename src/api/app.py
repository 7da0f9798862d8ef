"""`create_app(settings)`: the litestar application, its database pool and command handlers."""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
from litestar import Litestar, Response, get
from litestar.openapi import OpenAPIConfig

from api.bookings import BookingController
from api.database import open_pool
from api.dependencies import DEPENDENCIES, Db
from api.errors import EXCEPTION_HANDLERS, problem
from api.events import EventController
from api.operations import projections
from api.resources import ResourceController, search
from api.settings import Settings
from api.settling import keep_settling
from api.subscriptions import SubscriptionController
from commands.handlers import Clock, CommandHandlers
from commands.repository import ResourceRepository
from commands.resource import TRANSCODINGS
from events.appended import keep_listening
from events.store import EventStore, new_mapper
from projections import bookings
from projections.background import keep_projecting
from projections.runner import project
from webhooks.delivery import keep_delivering


def utc_now() -> datetime:
    return datetime.now(UTC)


@get("/health", tags=["operations"])
async def health(db: Db) -> Response[Any]:
    """Readiness: the process answers and reaches its database (else 503)."""
    try:
        await db.fetchval("SELECT 1")
    except (OSError, asyncpg.PostgresError) as error:
        return problem(503, "unavailable", "Database unavailable", str(error))
    return Response({"status": "ok"})


def collect_less_often() -> None:
    """Let Python's cycle collector run less often, and never over what is loaded by now.

    A worker keeps many long-lived objects (its cache of aggregates, their open bookings). With
    the default thresholds (a young collection every 700 allocations) the collector walked them
    so often that it made the slowest 1% of creates about three times slower and cost a tenth of
    the CPU. Requests make little cyclic garbage (mostly exceptions); it is still collected."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def create_app(settings: Settings | None = None, clock: Clock = utc_now) -> Litestar:
    """Build the app; the pool opens (and the schema migrates) when it starts."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if not settings.database_url:
            msg = "create_app needs Settings.database_url (`bookings serve` provides one)"
            raise RuntimeError(msg)
        pool = await open_pool(settings.database_url, settings)
        collect_less_often()
        store = EventStore(pool, new_mapper(*TRANSCODINGS), projector=project)
        repository = ResourceRepository(store, snapshot_every=settings.snapshot_every)

        async def locate_booking(booking_id):  # type: ignore[no-untyped-def]
            return await bookings.resource_of(pool, booking_id)

        app.state.pool = pool
        app.state.store = store
        app.state.commands = commands = CommandHandlers(repository, clock, locate_booking)

        def others_listen(listen: bool) -> None:  # with nobody else to tell, appends do not notify
            store.notify = listen

        background = [
            keep_listening(
                settings.database_url,
                store.mapper,
                repository,
                ours=store.writers,
                others=others_listen,
            )
        ]
        if settings.settle_seconds:
            background.append(keep_settling(pool, commands, settings.settle_seconds))
        if settings.project_seconds:
            background.append(keep_projecting(pool, store, settings.project_seconds))
        if settings.webhook_seconds:
            background.append(keep_delivering(pool, store, settings.webhook_seconds, clock=clock))
        tasks = [asyncio.create_task(work) for work in background]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await store.drained()
            await pool.close()

    return Litestar(
        route_handlers=[
            ResourceController,
            BookingController,
            EventController,
            SubscriptionController,
            search,
            projections,
            health,
        ],
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="Bookings",
            version="1",
            description="Reserve resources for time slots; never double-booked.",
        ),
    )

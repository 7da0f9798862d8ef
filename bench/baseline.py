"""The usual alternative to this service: a plain CRUD booking API, one table whose exclusion
constraint keeps bookings of a resource apart. Same framework, server and driver as the service,
so the comparison measures the designs, not the tools."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
from litestar import Litestar, Response, get, post
from litestar.datastructures import State
from litestar.di import Provide

from api.app import collect_less_often
from api.database import keep_session

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE TABLE IF NOT EXISTS crud_bookings (
    booking_id  uuid        PRIMARY KEY,
    resource_id uuid        NOT NULL,
    client_id   uuid        NOT NULL,
    start_time  timestamptz NOT NULL,
    end_time    timestamptz NOT NULL,
    details     text,
    status      text        NOT NULL DEFAULT 'confirmed',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    EXCLUDE USING gist (resource_id WITH =, tstzrange(start_time, end_time) WITH &&)
        WHERE (status = 'confirmed')
)
"""
INSERT = """
INSERT INTO crud_bookings (booking_id, resource_id, client_id, start_time, end_time, details)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *
"""
SELECT = "SELECT * FROM crud_bookings WHERE booking_id = $1"


class BookingIn(msgspec.Struct, forbid_unknown_fields=True):
    resource_id: UUID
    client_id: UUID
    start_time: datetime
    end_time: datetime
    details: str | None = None


def problem(status: int, detail: str) -> Response[Any]:
    body = {"type": "/problems/slot-taken", "title": detail, "status": status, "detail": detail}
    return Response(body, status_code=status, media_type="application/problem+json")


@post("/bookings", status_code=201)
async def create(data: BookingIn, pool: Any) -> Response[Any]:
    try:
        row = await pool.fetchrow(
            INSERT,
            uuid4(),
            data.resource_id,
            data.client_id,
            data.start_time,
            data.end_time,
            data.details,
        )
    except asyncpg.ExclusionViolationError:
        return problem(409, "The slot is taken")
    return Response(dict(row), status_code=201)


@get("/bookings/{booking_id:uuid}")
async def fetch(booking_id: UUID, pool: Any) -> Response[Any]:
    row = await pool.fetchrow(SELECT, booking_id)
    return Response(dict(row)) if row else problem(404, "Not found")


def create_app() -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # The service's pool settings, its skipped reset round trip on release included.
        pool = await asyncpg.create_pool(
            os.environ["DATABASE_URL"], min_size=2, max_size=10, reset=keep_session
        )
        async with pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock(42)")
            await conn.execute(SCHEMA)
            await conn.execute("SELECT pg_advisory_unlock(42)")
        collect_less_often()  # as the service does
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    def provide_pool(state: State) -> Any:
        return state.pool

    return Litestar(
        route_handlers=[create, fetch],
        lifespan=[lifespan],
        dependencies={"pool": Provide(provide_pool, sync_to_thread=False)},
    )

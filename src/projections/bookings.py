"""The bookings read model: one row per booking, its current state."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from events.resource import (
    BookingApproved,
    BookingCancelled,
    BookingCompleted,
    BookingCreated,
    BookingExpired,
    BookingModified,
    BookingMovedIn,
    BookingNoShow,
    BookingRejected,
)
from events.store import RecordedEvent


class BookingView(msgspec.Struct, kw_only=True):
    booking_id: UUID
    resource_id: UUID
    start_time: datetime
    end_time: datetime
    client_id: UUID
    status: str
    details: str | None
    created_at: datetime
    updated_at: datetime


class BookingFilter(msgspec.Struct, kw_only=True):
    resource_id: UUID | None = None
    client_id: UUID | None = None
    status: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None


INSERT = """
INSERT INTO bookings (booking_id, resource_id, client_id, start_time, end_time, status, details,
                      approval_deadline, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
"""
MOVE_IN = """
UPDATE bookings SET resource_id = $2, start_time = $3, end_time = $4, status = $5,
                    details = COALESCE($6, details), approval_deadline = $7, updated_at = $8
WHERE booking_id = $1
"""
MODIFY = """
UPDATE bookings SET start_time = COALESCE($2, start_time), end_time = COALESCE($3, end_time),
                    details = COALESCE($4, details), updated_at = $5
WHERE booking_id = $1
"""
SET_STATUS = "UPDATE bookings SET status = $2, updated_at = $3 WHERE booking_id = $1"
COLUMNS = """booking_id, resource_id, start_time, end_time, client_id, status, details,
             created_at, updated_at"""
SELECT = f"SELECT {COLUMNS} FROM bookings WHERE booking_id = $1"
RESOURCE_OF = "SELECT resource_id FROM bookings WHERE booking_id = $1"
# Bookings by start time; the window keeps those that overlap [window_start, window_end).
PAGE = f"""
SELECT {COLUMNS} FROM bookings
WHERE ($1::uuid IS NULL OR resource_id = $1)
  AND ($2::uuid IS NULL OR client_id = $2)
  AND ($3::text IS NULL OR status = $3)
  AND ($4::timestamptz IS NULL OR end_time > $4)
  AND ($5::timestamptz IS NULL OR start_time < $5)
  AND ($6::timestamptz IS NULL OR (start_time, booking_id) > ($6, $7))
ORDER BY start_time, booking_id
LIMIT $8
"""
# Resources with bookings `Resource.settle` closes at $1 (given $2, its margin): confirmed ones
# whose end and buffers are behind, and undecided pending ones.
DUE = """
SELECT b.resource_id FROM bookings b JOIN resources r USING (resource_id)
WHERE b.status = 'confirmed' AND b.end_time <= $1::timestamptz - $2::interval
  AND b.end_time + make_interval(mins => COALESCE((r.rules->>'buffer_before_minutes')::int, 0)
                                       + COALESCE((r.rules->>'buffer_after_minutes')::int, 0))
      <= $1::timestamptz - $2::interval
UNION
SELECT resource_id FROM bookings
WHERE status = 'pending' AND (start_time <= $1 OR approval_deadline <= $1)
LIMIT $3
"""
TABLES = ("bookings",)
STATUS_OF = {
    BookingCancelled: "cancelled",
    BookingApproved: "confirmed",
    BookingRejected: "rejected",
    BookingExpired: "expired",
    BookingCompleted: "completed",
    BookingNoShow: "no_show",
}


async def project(conn: asyncpg.Connection, recorded: RecordedEvent) -> None:
    event: Any = recorded.event
    if isinstance(event, BookingCreated):
        await conn.execute(
            INSERT,
            event.booking_id,
            event.originator_id,
            event.client_id,
            event.start_time,
            event.end_time,
            event.status,
            event.details,
            event.approval_deadline,
            event.timestamp,
        )
    elif isinstance(event, BookingMovedIn):
        await conn.execute(
            MOVE_IN,
            event.booking_id,
            event.originator_id,
            event.start_time,
            event.end_time,
            event.status,
            event.details,
            event.approval_deadline,
            event.timestamp,
        )
    elif isinstance(event, BookingModified):
        await conn.execute(
            MODIFY,
            event.booking_id,
            event.start_time,
            event.end_time,
            event.details,
            event.timestamp,
        )
    elif (status := STATUS_OF.get(type(event))) is not None:
        await conn.execute(SET_STATUS, event.booking_id, status, event.timestamp)


async def get(conn: Any, booking_id: UUID) -> BookingView | None:
    row = await conn.fetchrow(SELECT, booking_id)
    return None if row is None else msgspec.convert(dict(row), BookingView)


async def resource_of(conn: Any, booking_id: UUID) -> UUID | None:
    resource_id = await conn.fetchval(RESOURCE_OF, booking_id)
    return None if resource_id is None else _uuid(resource_id)


async def page(
    conn: Any, where: BookingFilter, after: tuple[datetime, UUID] | None, limit: int
) -> list[BookingView]:
    """Bookings matching the filter by (start_time, booking_id), after the given key."""
    start_time, booking_id = after or (None, None)
    rows = await conn.fetch(
        PAGE,
        where.resource_id,
        where.client_id,
        where.status,
        where.window_start,
        where.window_end,
        start_time,
        booking_id,
        limit,
    )
    return [msgspec.convert(dict(row), BookingView) for row in rows]


async def due(conn: Any, now: datetime, margin: timedelta, limit: int) -> list[UUID]:
    """Resources holding bookings that `settle` would close at `now`."""
    return [_uuid(row["resource_id"]) for row in await conn.fetch(DUE, now, margin, limit)]


def _uuid(value: UUID) -> UUID:
    """A plain UUID for asyncpg's subclass, which the event store's JSON cannot encode."""
    return UUID(int=value.int)


def fold(recorded: Iterable[RecordedEvent]) -> BookingView | None:
    """A booking as its events (oldest first) leave it: what `project` writes to the table,
    computed in memory, for answering as of a past moment."""
    view: BookingView | None = None
    for r in recorded:
        event: Any = r.event
        if isinstance(event, BookingCreated):
            view = BookingView(
                booking_id=event.booking_id,
                resource_id=event.originator_id,
                start_time=event.start_time,
                end_time=event.end_time,
                client_id=event.client_id,
                status=event.status,
                details=event.details,
                created_at=event.timestamp,
                updated_at=event.timestamp,
            )
            continue
        if view is None:
            continue
        if isinstance(event, BookingMovedIn):
            view.resource_id, view.status = event.originator_id, event.status
            view.start_time, view.end_time = event.start_time, event.end_time
            view.details = event.details if event.details is not None else view.details
        elif isinstance(event, BookingModified):
            view.start_time = event.start_time or view.start_time
            view.end_time = event.end_time or view.end_time
            view.details = event.details if event.details is not None else view.details
        elif (status := STATUS_OF.get(type(event))) is not None:
            view.status = status
        else:
            continue  # moved out: the moved-in event that comes with it says where to
        view.updated_at = event.timestamp
    return view

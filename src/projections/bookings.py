"""The bookings read model: one row per booking, its current state."""

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from events.resource import (
    BookingApproved,
    BookingCancelled,
    BookingCompleted,
    BookingCreated,
    BookingExpired,
    BookingModified,
    BookingMovedIn,
    BookingMovedOut,
    BookingNoShow,
    BookingRejected,
)
from events.store import Write
from projections.rows import Rows, Table, topic


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


NEW = """
INSERT INTO bookings (booking_id, resource_id, client_id, start_time, end_time, status, details,
                      approval_deadline, created_at, updated_at)
SELECT * FROM json_to_recordset($1::json)
    AS n(booking_id uuid, resource_id uuid, client_id uuid, start_time timestamptz,
         end_time timestamptz, status text, details text, approval_deadline timestamptz,
         created_at timestamptz, updated_at timestamptz)
"""
# Changes to bookings projected before: NULL keeps a column. A move (the one change that sets
# `resource_id`) also sets the approval deadline, NULL included.
CHANGE = """
UPDATE bookings b
SET resource_id = COALESCE(c.resource_id, b.resource_id),
    start_time = COALESCE(c.start_time, b.start_time), end_time = COALESCE(c.end_time, b.end_time),
    status = COALESCE(c.status, b.status), details = COALESCE(c.details, b.details),
    approval_deadline = CASE WHEN c.resource_id IS NULL THEN b.approval_deadline
                             ELSE c.approval_deadline END,
    updated_at = c.updated_at
FROM json_to_recordset($1::json)
     AS c(booking_id uuid, resource_id uuid, start_time timestamptz, end_time timestamptz,
          status text, details text, approval_deadline timestamptz, updated_at timestamptz)
WHERE b.booking_id = c.booking_id
"""
TABLE = Table(
    key="booking_id",
    put=NEW,
    change=CHANGE,
)
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
_STATUS = " ".join(f"WHEN {topic(t)} THEN '{status}'" for t, status in STATUS_OF.items())
# A rebuild runs the statement in parts at once, each for the bookings whose ids lie in its share
# of the UUIDs. The ids are random, so the shares are about even, and the index of bookings'
# events finds each part's events: a part reads only the rows it keeps.
_IN_PART = "event_uuid(state->'booking_id') BETWEEN '{low}' AND '{high}'"
# What `writes` leaves of each booking, from the whole log at once, in one read of its events: its
# creation and, where later events changed it, each column as the last of them that set it left
# it (a move-in sets the resource and the deadline; a move-out changes nothing the move-in after
# it does not). Times stay text until the last step, which parses only the ones a row keeps.
REBUILD = (
    f"""
    INSERT INTO bookings (booking_id, resource_id, client_id, start_time, end_time, status,
                          details, approval_deadline, created_at, updated_at)
    WITH e AS MATERIALIZED (
        SELECT position, stream_id, topic = {topic(BookingCreated)} AS created,
               topic = {topic(BookingMovedIn)} AS moved,
               COALESCE(CASE topic {_STATUS} END, state->>'status') AS status,
               event_uuid(state->'booking_id') AS booking_id,
               state->'client_id'->>'_data_' AS client_id,
               state->'start_time'->>'_data_' AS start_time,
               state->'end_time'->>'_data_' AS end_time,
               state->>'details' AS details,
               state->'approval_deadline'->>'_data_' AS approval_deadline,
               state->'timestamp'->>'_data_' AS at
        FROM events
        WHERE state ? 'booking_id' AND topic <> {topic(BookingMovedOut)} AND {_IN_PART}
    ), changed AS (
        SELECT booking_id,
               bool_or(moved) AS moved,
               (array_agg(stream_id ORDER BY position DESC)
                    FILTER (WHERE moved))[1] AS resource_id,
               (array_agg(start_time ORDER BY position DESC)
                    FILTER (WHERE start_time IS NOT NULL))[1] AS start_time,
               (array_agg(end_time ORDER BY position DESC)
                    FILTER (WHERE end_time IS NOT NULL))[1] AS end_time,
               (array_agg(status ORDER BY position DESC)
                    FILTER (WHERE status IS NOT NULL))[1] AS status,
               (array_agg(details ORDER BY position DESC)
                    FILTER (WHERE details IS NOT NULL))[1] AS details,
               (array_agg(approval_deadline ORDER BY position DESC)
                    FILTER (WHERE moved))[1] AS approval_deadline,
               (array_agg(at ORDER BY position DESC))[1] AS updated_at
        FROM e WHERE NOT created
        GROUP BY booking_id
    )
    SELECT c.booking_id, COALESCE(u.resource_id, c.stream_id), c.client_id::uuid,
           COALESCE(u.start_time, c.start_time)::timestamptz,
           COALESCE(u.end_time, c.end_time)::timestamptz, COALESCE(u.status, c.status),
           COALESCE(u.details, c.details),
           (CASE WHEN u.moved THEN u.approval_deadline ELSE c.approval_deadline END)::timestamptz,
           c.at::timestamptz, COALESCE(u.updated_at, c.at)::timestamptz
    FROM e c LEFT JOIN changed u USING (booking_id)
    WHERE c.created
    """,
)


def changes(event: Any) -> dict[str, Any]:
    """The columns an event sets on its booking's row (none for events of no booking)."""
    if isinstance(event, BookingCreated):
        return {
            "booking_id": event.booking_id,
            "resource_id": event.originator_id,
            "client_id": event.client_id,
            "start_time": event.start_time,
            "end_time": event.end_time,
            "status": event.status,
            "details": event.details,
            "approval_deadline": event.approval_deadline,
            "created_at": event.timestamp,
            "updated_at": event.timestamp,
        }
    if isinstance(event, BookingMovedIn):
        columns = {
            "resource_id": event.originator_id,
            "start_time": event.start_time,
            "end_time": event.end_time,
            "status": event.status,
            "details": event.details,
        }
    elif isinstance(event, BookingModified):
        columns = {
            "start_time": event.start_time,
            "end_time": event.end_time,
            "details": event.details,
        }
    elif (status := STATUS_OF.get(type(event))) is not None:
        columns = {"status": status}
    else:
        return {}  # not a booking's, or moved out (the moved-in event with it says where to)
    # None leaves a column as it was; a move sets the deadline (None lifts it).
    changed = {column: value for column, value in columns.items() if value is not None}
    if isinstance(event, BookingMovedIn):
        changed["approval_deadline"] = event.approval_deadline
    return changed | {"updated_at": event.timestamp}


def writes(events: Sequence[Any]) -> list[Write]:
    rows = Rows(TABLE)
    for event in events:
        if columns := changes(event):
            if isinstance(event, BookingCreated):
                rows.put_row(event.booking_id, columns)
            else:
                rows.change(event.booking_id, columns)
    return rows.writes()


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


def created(event: BookingCreated) -> BookingView:
    """A booking as its first event makes it."""
    return msgspec.convert(changes(event), BookingView)


def fold(events: Iterable[Any]) -> BookingView | None:
    """A booking as its events (oldest first) leave it: what `writes` makes of its row,
    computed in memory, for answering as of a past moment."""
    row: dict[str, Any] | None = None
    for event in events:
        columns = changes(event)
        if isinstance(event, BookingCreated):
            row = columns
        elif row is not None:
            row.update(columns)
    return None if row is None else msgspec.convert(row, BookingView)

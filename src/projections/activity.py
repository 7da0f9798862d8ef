"""Daily activity of each resource: how many bookings were made, moved, cancelled, completed,
missed ... per UTC day. A background projection: it follows the log on its own, a little after
the writes, and can be rebuilt or added later and back-filled from the first event."""

from datetime import UTC, date
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from events.resource import EVENT_TYPES
from events.store import RecordedEvent

NAME = "activity"
TABLES = ("resource_activity",)

COUNT = """
INSERT INTO resource_activity (resource_id, day, type, count) VALUES ($1, $2, $3, 1)
ON CONFLICT (resource_id, day, type) DO UPDATE SET count = resource_activity.count + 1
"""
SELECT = """
SELECT day, type, count FROM resource_activity
WHERE resource_id = $1 AND day >= $2 AND day < $3
ORDER BY day, type
"""


class DayActivity(msgspec.Struct, kw_only=True):
    day: date
    type: str
    count: int


async def project(conn: asyncpg.Connection, recorded: RecordedEvent) -> None:
    event: Any = recorded.event
    day = event.timestamp.astimezone(UTC).date()
    await conn.execute(COUNT, event.originator_id, day, EVENT_TYPES[type(event)])


async def of_resource(conn: Any, resource_id: UUID, start: date, end: date) -> list[DayActivity]:
    """The counts of each day in `[start, end)`, by day and type."""
    rows = await conn.fetch(SELECT, resource_id, start, end)
    return [DayActivity(day=r["day"], type=r["type"], count=r["count"]) for r in rows]

"""Daily activity of each resource: how many bookings were made, moved, cancelled, completed,
missed ... per UTC day. A background projection: it follows the log on its own, a little after
the writes, and can be rebuilt or added later and back-filled from the first event."""

from collections import Counter
from collections.abc import Sequence
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
INSERT INTO resource_activity (resource_id, day, type, count)
SELECT * FROM unnest($1::uuid[], $2::date[], $3::text[], $4::integer[])
ON CONFLICT (resource_id, day, type) DO UPDATE SET count = resource_activity.count + excluded.count
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


async def project(conn: asyncpg.Connection, batch: Sequence[RecordedEvent]) -> None:
    """Count a batch of events: one statement, a row per resource, day and type."""
    counts: Counter[tuple[UUID, date, str]] = Counter()
    for recorded in batch:
        event: Any = recorded.event
        day = event.timestamp.astimezone(UTC).date()
        counts[event.originator_id, day, EVENT_TYPES[type(event)]] += 1
    if counts:
        resource_ids, days, types = zip(*counts, strict=True)
        await conn.execute(COUNT, resource_ids, days, types, list(counts.values()))


async def of_resource(conn: Any, resource_id: UUID, start: date, end: date) -> list[DayActivity]:
    """The counts of each day in `[start, end)`, by day and type."""
    rows = await conn.fetch(SELECT, resource_id, start, end)
    return [DayActivity(day=r["day"], type=r["type"], count=r["count"]) for r in rows]

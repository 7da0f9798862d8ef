"""Daily activity of each resource: how many bookings were made, moved, cancelled, completed,
missed ... per UTC day. A background projection: it follows the log on its own, a little after
the writes, and can be rebuilt or added later and back-filled from the first event."""

from collections.abc import Sequence
from datetime import date
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from eventsourcing.utils import get_topic

from events.resource import EVENT_TYPES
from events.store import RecordedEvent

NAME = "activity"
TABLES = ("resource_activity",)

# The events at the given positions, counted in the database, which reads of each only its
# stream, topic (named by `$2` -> `$3`) and time: nothing is decoded in Python.
COUNT = """
INSERT INTO resource_activity (resource_id, day, type, count)
SELECT e.stream_id, (event_time(e.state->'timestamp') AT TIME ZONE 'UTC')::date, t.type,
       count(*)::integer
FROM events e JOIN unnest($2::text[], $3::text[]) AS t (topic, type) USING (topic)
WHERE e.position = ANY($1::bigint[])
GROUP BY 1, 2, 3
ON CONFLICT (resource_id, day, type) DO UPDATE SET count = resource_activity.count + excluded.count
"""
TOPICS = [get_topic(event_type) for event_type in EVENT_TYPES]
TYPES = list(EVENT_TYPES.values())
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
    """Count a batch of events: one statement, a row per resource, day (UTC) and type."""
    if batch:
        await conn.execute(COUNT, [recorded.position for recorded in batch], TOPICS, TYPES)


async def of_resource(conn: Any, resource_id: UUID, start: date, end: date) -> list[DayActivity]:
    """The counts of each day in `[start, end)`, by day and type."""
    rows = await conn.fetch(SELECT, resource_id, start, end)
    return [DayActivity(day=r["day"], type=r["type"], count=r["count"]) for r in rows]

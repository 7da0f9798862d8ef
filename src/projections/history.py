"""The booking history read model: every event about a booking, oldest first."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from events.feed import event_data
from events.resource import EVENT_TYPES
from events.store import RecordedEvent, Write


class HistoryEntry(msgspec.Struct, kw_only=True):
    position: int
    version: int
    type: str
    occurred_at: datetime
    actor: str | None
    data: dict[str, Any]


# The position comes from `ev`, the events being projected.
INSERT = """
INSERT INTO booking_history (booking_id, position, version, type, occurred_at, actor, data)
SELECT h.booking_id, ev.position, h.version, h.type, h.occurred_at, h.actor, h.data
FROM unnest($1::uuid[], $2::integer[], $3::uuid[], $4::text[], $5::timestamptz[], $6::text[],
            $7::jsonb[]) AS h(stream_id, version, booking_id, type, occurred_at, actor, data)
JOIN ev USING (stream_id, version)
"""
COLUMNS = ("stream_id", "version", "booking_id", "type", "occurred_at", "actor", "data")
SELECT = """
SELECT position, version, type, occurred_at, actor, data::text FROM booking_history
WHERE booking_id = $1 ORDER BY position
"""
POSITIONS_UNTIL = """
SELECT position FROM booking_history WHERE booking_id = $1 AND occurred_at <= $2 ORDER BY position
"""
TABLES = ("booking_history",)
_BOOKING = frozenset({"booking_id"})


def writes(events: Sequence[Any]) -> list[Write]:
    rows = [
        {
            "stream_id": event.originator_id,
            "version": event.originator_version,
            "booking_id": event.booking_id,
            "type": EVENT_TYPES[type(event)],
            "occurred_at": event.timestamp,
            "actor": event.actor,
            "data": msgspec.json.encode(event_data(event, _BOOKING)).decode(),
        }
        for event in events
        if hasattr(event, "booking_id")
    ]
    return [Write.of_rows(INSERT, rows, COLUMNS)] if rows else []


async def of_booking(conn: Any, booking_id: UUID) -> list[HistoryEntry]:
    rows = await conn.fetch(SELECT, booking_id)
    return [
        HistoryEntry(
            position=row["position"],
            version=row["version"],
            type=row["type"],
            occurred_at=row["occurred_at"],
            actor=row["actor"],
            data=msgspec.json.decode(row["data"]),
        )
        for row in rows
    ]


async def positions_until(conn: Any, booking_id: UUID, at: datetime) -> list[int]:
    """Where in the log the booking's events up to `at` stand, oldest first."""
    return [row["position"] for row in await conn.fetch(POSITIONS_UNTIL, booking_id, at)]


def entry(recorded: RecordedEvent) -> HistoryEntry:
    """A history entry straight from the log (a resource's history reads its stream)."""
    event: Any = recorded.event
    return HistoryEntry(
        position=recorded.position,
        version=event.originator_version,
        type=EVENT_TYPES[type(event)],
        occurred_at=event.timestamp,
        actor=event.actor,
        data=event_data(event),
    )

"""Histories, read from the log itself: a booking's events are found by the index
`events_by_booking`, a resource's are its stream."""

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from events.feed import event_data
from events.resource import EVENT_TYPES
from events.store import EventStore, RecordedEvent


class HistoryEntry(msgspec.Struct, kw_only=True):
    position: int
    version: int
    type: str
    occurred_at: datetime
    actor: str | None
    data: dict[str, Any]


POSITIONS = """
SELECT position FROM events
WHERE state ? 'booking_id' AND event_uuid(state->'booking_id') = $1
  AND ($2::timestamptz IS NULL OR event_time(state->'timestamp') <= $2)
ORDER BY position
"""
_BOOKING = frozenset({"booking_id"})


async def positions(conn: Any, booking_id: UUID, until: datetime | None = None) -> list[int]:
    """Where in the log the booking's events (up to `until`) stand, oldest first."""
    return [row["position"] for row in await conn.fetch(POSITIONS, booking_id, until)]


async def of_booking(conn: Any, store: EventStore, booking_id: UUID) -> list[HistoryEntry]:
    """Every event of the booking, oldest first (the booking's id is not repeated in each)."""
    recorded = await store.read_positions(await positions(conn, booking_id))
    return [entry(r, leave_out=_BOOKING) for r in recorded]


def entry(recorded: RecordedEvent, leave_out: frozenset[str] = frozenset()) -> HistoryEntry:
    """A history entry: the event, with the fields that `leave_out` names left out."""
    event: Any = recorded.event
    return HistoryEntry(
        position=recorded.position,
        version=event.originator_version,
        type=EVENT_TYPES[type(event)],
        occurred_at=event.timestamp,
        actor=event.actor,
        data=event_data(event, leave_out),
    )

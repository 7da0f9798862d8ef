"""The availability view: the slots that hold a resource's time, and the free time around them."""

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from events.resource import BookingCancelled, BookingCreated, BookingModified
from events.store import RecordedEvent

HOLDING = ("pending", "confirmed")


class BusySlot(msgspec.Struct, kw_only=True):
    booking_id: UUID
    start_time: datetime
    end_time: datetime
    status: str


class FreeSlot(msgspec.Struct, kw_only=True):
    start_time: datetime
    end_time: datetime


INSERT = """
INSERT INTO slots (booking_id, resource_id, start_time, end_time, status)
VALUES ($1, $2, $3, $4, $5)
"""
MOVE = """
UPDATE slots SET start_time = COALESCE($2, start_time), end_time = COALESCE($3, end_time)
WHERE booking_id = $1
"""
DELETE = "DELETE FROM slots WHERE booking_id = $1"
# Every slot that overlaps [$2, $3); the index on (resource_id, end_time) skips the past.
BUSY = """
SELECT booking_id, start_time, end_time, status FROM slots
WHERE resource_id = $1 AND end_time > $2 AND start_time < $3
ORDER BY start_time, booking_id
"""
TABLES = ("slots",)


async def project(conn: asyncpg.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    if isinstance(event, BookingCreated):
        if event.status in HOLDING:
            await conn.execute(
                INSERT,
                event.booking_id,
                event.originator_id,
                event.start_time,
                event.end_time,
                event.status,
            )
    elif isinstance(event, BookingModified):
        if event.start_time or event.end_time:
            await conn.execute(MOVE, event.booking_id, event.start_time, event.end_time)
    elif isinstance(event, BookingCancelled):
        await conn.execute(DELETE, event.booking_id)


async def busy(conn: Any, resource_id: UUID, start: datetime, end: datetime) -> list[BusySlot]:
    """The slots holding the resource that overlap `[start, end)`, by start time."""
    rows = await conn.fetch(BUSY, resource_id, start, end)
    return [msgspec.convert(dict(row), BusySlot) for row in rows]


def free(busy: list[BusySlot], capacity: int, start: datetime, end: datetime) -> list[FreeSlot]:
    """The parts of `[start, end)` where fewer than `capacity` slots overlap."""
    edges = sorted(
        [(max(s.start_time, start), 1) for s in busy] + [(min(s.end_time, end), -1) for s in busy]
    )
    free_slots: list[FreeSlot] = []
    level, free_since = 0, start
    for at, step in edges:
        was_full = level >= capacity
        level += step
        is_full = level >= capacity
        if is_full and not was_full:
            if free_since < at:
                free_slots.append(FreeSlot(start_time=free_since, end_time=at))
        elif was_full and not is_full:
            free_since = at
    if level < capacity and free_since < end:
        free_slots.append(FreeSlot(start_time=free_since, end_time=end))
    return free_slots

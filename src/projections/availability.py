"""The availability view: the bookings that hold a resource's time, the owner's closures, and
the free and bookable time around them."""

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

import msgspec

from commands.policy import Closure, Hold, Policy
from commands.resource import Resource
from events.resource import (
    ClosureAdded,
    ClosureRemoved,
)
from events.store import EventStore, Write
from projections.resources import ResourceView
from projections.rows import Rows, Table, topic

OPEN = ("pending", "confirmed")
AS_OF_PAGE = 2_000
"""How many events a fold `as_of` a moment reads from the store at a time. Read whole, a stream
of 200,000 events raised the process's peak memory by about 340 MiB; a page at a time, by 6."""


class BusySlot(msgspec.Struct, kw_only=True):
    booking_id: UUID
    start_time: datetime
    end_time: datetime
    status: str


class FreeSlot(msgspec.Struct, kw_only=True):
    start_time: datetime
    end_time: datetime


class ClosureView(msgspec.Struct, kw_only=True):
    closure_id: UUID
    resource_id: UUID
    start_time: datetime
    end_time: datetime
    reason: str | None
    created_at: datetime


# The open bookings that overlap [$2, $3), from the bookings read model; the partial index on
# (resource_id, end_time) of the open ones skips the past and the closed.
BUSY = """
SELECT booking_id, start_time, end_time, status, approval_deadline FROM bookings
WHERE resource_id = $1 AND status IN ('pending', 'confirmed') AND end_time > $2
  AND start_time < $3
ORDER BY start_time, booking_id
"""
ADD_CLOSURES = """
INSERT INTO closures (closure_id, resource_id, start_time, end_time, reason, created_at)
SELECT * FROM json_to_recordset($1::json)
    AS c(closure_id uuid, resource_id uuid, start_time timestamptz, end_time timestamptz,
         reason text, created_at timestamptz)
"""
REMOVE_CLOSURES = "DELETE FROM closures WHERE closure_id = ANY($1::uuid[])"
CLOSURES_TABLE = Table(
    key="closure_id",
    put=ADD_CLOSURES,
    delete=REMOVE_CLOSURES,
)
CLOSURES = """
SELECT closure_id, resource_id, start_time, end_time, reason, created_at FROM closures
WHERE resource_id = $1 AND end_time > $2 AND start_time < $3
ORDER BY start_time, closure_id
"""
CLOSURE = """
SELECT closure_id, resource_id, start_time, end_time, reason, created_at FROM closures
WHERE resource_id = $1 AND closure_id = $2
"""
TABLES = ("closures",)
# What `writes` leaves, from the whole log at once: the closures added and not removed.
REBUILD = (
    f"""
    WITH c AS (  -- read once (by the index of the resources' own events) for both sides
        SELECT stream_id, topic, state FROM events
        WHERE topic IN ({topic(ClosureAdded)}, {topic(ClosureRemoved)})
    )
    INSERT INTO closures (closure_id, resource_id, start_time, end_time, reason, created_at)
    SELECT event_uuid(a.state->'closure_id'), a.stream_id, event_time(a.state->'start_time'),
           event_time(a.state->'end_time'), a.state->>'reason', event_time(a.state->'timestamp')
    FROM c a
    WHERE a.topic = {topic(ClosureAdded)}
      AND NOT EXISTS (SELECT FROM c r
                      WHERE r.topic = {topic(ClosureRemoved)} AND r.stream_id = a.stream_id
                        AND r.state->'closure_id' = a.state->'closure_id')
    """,
)


def writes(events: Sequence[Any]) -> list[Write]:
    closures = Rows(CLOSURES_TABLE)
    for event in events:
        if isinstance(event, ClosureAdded):
            row = {
                "closure_id": event.closure_id,
                "resource_id": event.originator_id,
                "start_time": event.start_time,
                "end_time": event.end_time,
                "reason": event.reason,
                "created_at": event.timestamp,
            }
            closures.put_row(event.closure_id, row)
        elif isinstance(event, ClosureRemoved):
            closures.delete(event.closure_id)
    return closures.writes()


async def busy(
    conn: Any, resource_id: UUID, start: datetime, end: datetime, policy: Policy, *, now: datetime
) -> list[Hold]:
    """The bookings occupying the resource's time that overlap `[start, end)`, by start time
    (pending ones only where they hold their slot, and until their decision is due)."""
    rows = await conn.fetch(BUSY, resource_id, start, end)
    holds = [
        Hold(r["booking_id"], r["start_time"], r["end_time"], r["status"], r["approval_deadline"])
        for r in rows
    ]
    return [hold for hold in holds if policy.occupies(hold, now)]


async def closures(
    conn: Any, resource_id: UUID, start: datetime, end: datetime
) -> list[ClosureView]:
    """The owner's closures overlapping `[start, end)`, by start time."""
    rows = await conn.fetch(CLOSURES, resource_id, start, end)
    return [msgspec.convert(dict(row), ClosureView) for row in rows]


async def closure(conn: Any, resource_id: UUID, closure_id: UUID) -> ClosureView | None:
    row = await conn.fetchrow(CLOSURE, resource_id, closure_id)
    return None if row is None else msgspec.convert(dict(row), ClosureView)


def as_busy(holds: list[Hold], start: datetime, end: datetime) -> list[BusySlot]:
    """The holds that overlap `[start, end)`, as the API shows them."""
    return [
        BusySlot(booking_id=h.booking_id, start_time=h.start, end_time=h.end, status=h.status)
        for h in holds
        if h.overlaps(start, end)
    ]


def as_closures(views: list[ClosureView]) -> list[Closure]:
    return [Closure(c.closure_id, c.start_time, c.end_time) for c in views]


def free(
    busy: list[Hold],
    closed: list[ClosureView],
    policy: Policy,
    start: datetime,
    end: datetime,
) -> list[FreeSlot]:
    """The parts of `[start, end)` where the resource is open, not closed, and fewer than
    `capacity` bookings (widened by the buffers) occupy it."""
    before, after = policy.buffers()
    full = policy.capacity
    busy = [h for h in busy if h.start - before < end and start < h.end + after]
    open_spans = policy.open_spans(start, end)
    edges = (
        [(max(h.start - before, start), 1) for h in busy]
        + [(min(h.end + after, end), -1) for h in busy]
        + [(max(c.start_time, start), full) for c in closed]
        + [(min(c.end_time, end), -full) for c in closed]
    )
    if open_spans is not None:  # closed outside opening hours: `full` except in each span
        edges += [(start, full)]
        edges += [(max(s, start), -full) for s, e in open_spans if s < end and start < e]
        edges += [(min(e, end), full) for s, e in open_spans if s < end and start < e]
    free_slots: list[FreeSlot] = []
    level, free_since = 0, start
    for at, step in sorted(edges):
        was_full = level >= full
        level += step
        is_full = level >= full
        if is_full and not was_full:
            if free_since < at:
                free_slots.append(FreeSlot(start_time=free_since, end_time=at))
        elif was_full and not is_full:
            free_since = at
    if level < full and free_since < end:
        free_slots.append(FreeSlot(start_time=free_since, end_time=end))
    return free_slots


@dataclass(frozen=True)
class Situation:
    """What a resource's availability over a window follows from: its policy, whether it takes
    bookings, the bookings occupying its time (widened by the buffers) and its closures."""

    policy: Policy
    retired: bool
    holds: list[Hold]
    closures: list[ClosureView]

    def busy(self, start: datetime, end: datetime) -> list[BusySlot]:
        return as_busy(self.holds, start, end)

    def closed(self, start: datetime, end: datetime) -> list[ClosureView]:
        return [c for c in self.closures if c.start_time < end and start < c.end_time]

    def free(self, start: datetime, end: datetime) -> list[FreeSlot]:
        """Where a booking could go; nowhere on a retired resource."""
        if self.retired:
            return []
        return free(self.holds, self.closed(start, end), self.policy, start, end)

    def bookable(
        self, start: datetime, end: datetime, duration: timedelta, now: datetime
    ) -> list[FreeSlot]:
        """Where a booking of `duration` starting in `[start, end)` would be accepted at `now`."""
        if self.retired:
            return []
        closures = as_closures(self.closures)
        starts = self.policy.bookable(
            start, end, duration, now, holds=self.holds, closures=closures
        )
        return [FreeSlot(start_time=s, end_time=s + duration) for s in starts]


def reach(policy: Policy, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The stretch whose bookings can matter to `[start, end)`: widened by both buffers."""
    before, after = policy.buffers()
    return start - before - after, end + before + after


async def situation(
    conn: Any, resource: ResourceView, start: datetime, end: datetime, now: datetime
) -> Situation:
    """The situation over `[start, end)` now, from the read models."""
    policy = resource.policy
    low, high = reach(policy, start, end)
    holds = await busy(conn, resource.resource_id, low, high, policy, now=now)
    closed = await closures(conn, resource.resource_id, start, end)
    return Situation(policy, resource.retired_at is not None, holds, closed)


async def situation_as_of(
    store: EventStore, resource_id: UUID, start: datetime, end: datetime, at: datetime
) -> Situation | None:
    """The situation over `[start, end)` as it stood at `at`, folded from the resource's
    events up to then (None: the resource did not exist yet)."""
    resource: Resource | None = None
    closed: dict[UUID, ClosureView] = {}
    async for event in _events_until(store, resource_id, at):
        resource = cast(Resource, event.mutate(resource))
        if isinstance(event, ClosureAdded):
            closed[event.closure_id] = ClosureView(
                closure_id=event.closure_id,
                resource_id=resource_id,
                start_time=event.start_time,
                end_time=event.end_time,
                reason=event.reason,
                created_at=event.timestamp,
            )
        elif isinstance(event, ClosureRemoved):
            closed.pop(event.closure_id, None)
    if resource is None:
        return None
    policy = resource.policy
    low, high = reach(policy, start, end)
    holds = [h for h in resource.holds.values() if h.overlaps(low, high) and policy.occupies(h, at)]
    holds.sort(key=lambda h: (h.start, h.booking_id))
    views = sorted(closed.values(), key=lambda c: (c.start_time, c.closure_id))
    return Situation(policy, resource.retired, holds, views)


async def _events_until(store: EventStore, stream_id: UUID, at: datetime) -> AsyncIterator[Any]:
    """The stream's events up to `at` (by their time), oldest first, read `AS_OF_PAGE` at a
    time."""
    after, page = 0, AS_OF_PAGE
    while True:
        recorded = await store.read_stream(stream_id, after_version=after, limit=page)
        for r in recorded:
            event: Any = r.event
            if event.timestamp > at:
                return
            yield event
        if len(recorded) < page:
            return
        after = recorded[-1].event.originator_version

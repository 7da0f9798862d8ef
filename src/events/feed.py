"""The public shape of an event: how the feed, its stream, webhooks and histories show it."""

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

import msgspec

from events.resource import EVENT_TYPES
from events.store import RecordedEvent

_IDS = UUID("9a3c1f0e-4b7d-5e2a-8c6f-1d0b2e3a4f5c")
_NOT_DATA = {"originator_id", "originator_version", "originator_topic", "timestamp", "actor"}


class FeedEvent(msgspec.Struct, kw_only=True):
    event_id: UUID
    """Stable: the same event always has the same id (receivers deduplicate by it)."""
    position: int
    """Where the event stands in the log; pass the last one seen as `after` to read on."""
    type: str
    stream_id: UUID
    """The resource the event belongs to."""
    version: int
    """The event's number within its stream, from 1."""
    occurred_at: datetime
    actor: str | None
    data: dict[str, Any]


def event_id(stream_id: UUID, version: int) -> UUID:
    """The stable id of the event at `version` of a stream."""
    return uuid5(_IDS, f"{stream_id}/{version}")


def event_data(event: Any, leave_out: frozenset[str] = frozenset()) -> dict[str, Any]:
    """What an event says beyond where, when and by whom; fields it leaves unchanged (None)
    are not shown."""
    hidden = _NOT_DATA | leave_out
    return {k: v for k, v in vars(event).items() if k not in hidden and v is not None}


def to_feed(recorded: RecordedEvent) -> FeedEvent:
    event: Any = recorded.event
    return FeedEvent(
        event_id=event_id(event.originator_id, event.originator_version),
        position=recorded.position,
        type=EVENT_TYPES[type(event)],
        stream_id=event.originator_id,
        version=event.originator_version,
        occurred_at=event.timestamp,
        actor=event.actor,
        data=event_data(event),
    )

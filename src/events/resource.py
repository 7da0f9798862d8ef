"""Events on a resource's stream: the permanent contract of the write model.

Events are only ever extended with new fields that have defaults; a field is never renamed or
retyped (use the library's upcasting when a shape must change). Every event carries the time it
happened (`timestamp`, from the deciding command's clock) and the acting principal (`actor`).
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate


class ResourceEvent(Aggregate.Event):
    """An event on a resource stream after its registration."""

    actor: str | None

    def apply(self, aggregate: Any) -> None:
        aggregate.when(self)


class ResourceRegistered(Aggregate.Created):
    """A resource that can be booked came into existence."""

    name: str
    timezone: str
    capacity: int
    requires_approval: bool
    details: str | None
    actor: str | None


class BookingCreated(ResourceEvent):
    """A client booked a slot; `status` is `confirmed`, or `pending` awaiting approval."""

    booking_id: UUID
    client_id: UUID
    start_time: datetime
    end_time: datetime
    details: str | None
    status: str


class BookingModified(ResourceEvent):
    """A booking's time and/or details changed; fields that did not change are None."""

    booking_id: UUID
    start_time: datetime | None
    end_time: datetime | None
    details: str | None


class BookingCancelled(ResourceEvent):
    """A booking was cancelled; its slot is free again."""

    booking_id: UUID
    reason: str | None


EVENT_TYPES: dict[type[Aggregate.Event], str] = {
    ResourceRegistered: "resource.registered",
    BookingCreated: "booking.created",
    BookingModified: "booking.modified",
    BookingCancelled: "booking.cancelled",
}
"""Public, dotted names of the event classes, as the API and the feed show them."""

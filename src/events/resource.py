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
    """A resource that can be booked came into existence.

    `rules` holds the booking rules by name (see `commands.policy.Rules`); missing ones are off.
    """

    name: str
    timezone: str
    capacity: int
    requires_approval: bool
    details: str | None
    actor: str | None
    rules: dict[str, Any] | None = None


class ResourceUpdated(ResourceEvent):
    """The owner changed settings: `changes` maps each changed setting to its new value."""

    changes: dict[str, Any]


class ResourceRetired(ResourceEvent):
    """The resource takes no new bookings; the bookings it has keep their state."""

    reason: str | None


class ClosureAdded(ResourceEvent):
    """The owner closed the resource over `[start_time, end_time)` (a blackout)."""

    closure_id: UUID
    start_time: datetime
    end_time: datetime
    reason: str | None


class ClosureRemoved(ResourceEvent):
    """A closure was lifted."""

    closure_id: UUID


class BookingCreated(ResourceEvent):
    """A client booked a slot; `status` is `confirmed`, or `pending` awaiting approval.

    A pending booking not decided by `approval_deadline` (or by its start) expires.
    """

    booking_id: UUID
    client_id: UUID
    start_time: datetime
    end_time: datetime
    details: str | None
    status: str
    approval_deadline: datetime | None = None


class BookingModified(ResourceEvent):
    """A booking's time and/or details changed; fields that did not change are None."""

    booking_id: UUID
    start_time: datetime | None
    end_time: datetime | None
    details: str | None


class BookingCancelled(ResourceEvent):
    """A booking was cancelled by its client or the resource's owner (`by`); its slot is free."""

    booking_id: UUID
    reason: str | None
    by: str = "client"


class BookingApproved(ResourceEvent):
    """The owner confirmed a pending booking."""

    booking_id: UUID
    reason: str | None = None


class BookingRejected(ResourceEvent):
    """The owner turned a pending booking down."""

    booking_id: UUID
    reason: str | None


class BookingExpired(ResourceEvent):
    """Nobody decided a pending booking in time."""

    booking_id: UUID


class BookingCompleted(ResourceEvent):
    """A confirmed booking took place: marked by the owner, or `automatic` after its end."""

    booking_id: UUID
    automatic: bool
    reason: str | None = None


class BookingNoShow(ResourceEvent):
    """The owner recorded that the client did not come."""

    booking_id: UUID
    reason: str | None = None


class BookingMovedOut(ResourceEvent):
    """The booking moved to another resource (recorded with `BookingMovedIn`, atomically)."""

    booking_id: UUID
    to_resource_id: UUID


class BookingMovedIn(ResourceEvent):
    """A booking arrived from another resource, with its time here and the status it takes."""

    booking_id: UUID
    from_resource_id: UUID
    start_time: datetime
    end_time: datetime
    status: str
    details: str | None
    approval_deadline: datetime | None


EVENT_TYPES: dict[type[Aggregate.Event], str] = {
    ResourceRegistered: "resource.registered",
    ResourceUpdated: "resource.updated",
    ResourceRetired: "resource.retired",
    ClosureAdded: "resource.closure_added",
    ClosureRemoved: "resource.closure_removed",
    BookingCreated: "booking.created",
    BookingModified: "booking.modified",
    BookingCancelled: "booking.cancelled",
    BookingApproved: "booking.approved",
    BookingRejected: "booking.rejected",
    BookingExpired: "booking.expired",
    BookingCompleted: "booking.completed",
    BookingNoShow: "booking.no_show",
    BookingMovedOut: "booking.moved_out",
    BookingMovedIn: "booking.moved_in",
}
"""Public, dotted names of the event classes, as the API and the feed show them."""

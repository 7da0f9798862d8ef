"""The Resource aggregate: one stream per resource, the one place that decides its bookings.

It is pure: no I/O, and `now` is passed in. Its state holds only what can still collide: the
bookings that hold time (pending or confirmed) and have not ended. Everything else is pruned,
so deciding costs the same however long the resource's history is.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, singledispatchmethod
from importlib import resources
from typing import Any, Literal
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Transcoding

from commands.errors import BookingClosedError, InvalidCommandError, SlotTakenError
from events.resource import (
    BookingCancelled,
    BookingCreated,
    BookingModified,
    ResourceEvent,
    ResourceRegistered,
)

PRUNE_MARGIN = timedelta(hours=1)
"""How long after its end a booking stays in the state (bounds tolerated clock skew)."""

Status = Literal["pending", "confirmed", "cancelled"]
PENDING: Status = "pending"
CONFIRMED: Status = "confirmed"


@dataclass(frozen=True, slots=True)
class Hold:
    """A booking that holds the resource over `[start, end)`."""

    booking_id: UUID
    start: datetime
    end: datetime
    status: str

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end


class HoldAsList(Transcoding):
    """Stores a Hold in snapshots as a compact list."""

    type = Hold
    name = "hold"

    def encode(self, obj: Hold) -> list[Any]:
        return [obj.booking_id.hex, obj.start.isoformat(), obj.end.isoformat(), obj.status]

    def decode(self, data: list[Any]) -> Hold:
        booking_id, start, end, status = data
        fromiso = datetime.fromisoformat
        return Hold(UUID(booking_id), fromiso(start), fromiso(end), status)


class Resource(Aggregate):
    """Something bookable: a room, a person, a piece of equipment."""

    def __init__(
        self, name: str, timezone: str, capacity: int, requires_approval: bool, details: str | None
    ) -> None:
        self.name = name
        self.timezone = timezone
        self.capacity = capacity
        self.requires_approval = requires_approval
        self.details = details
        self.holds: dict[str, Hold] = {}

    @classmethod
    def register(
        cls,
        resource_id: UUID,
        *,
        name: str,
        timezone: str = "UTC",
        capacity: int = 1,
        requires_approval: bool = False,
        details: str | None = None,
        actor: str | None = None,
        now: datetime,
    ) -> "Resource":
        """Register a new resource."""
        if not name.strip():
            raise InvalidCommandError("A resource needs a non-blank name.", "name")
        if capacity < 1:
            raise InvalidCommandError("Capacity must be at least 1.", "capacity")
        if timezone not in _zone_names():
            msg = f"Unknown IANA time zone {timezone!r}."
            raise InvalidCommandError(msg, "timezone")
        return cls._create(
            ResourceRegistered,
            id=resource_id,
            name=name,
            timezone=timezone,
            capacity=capacity,
            requires_approval=requires_approval,
            details=details,
            actor=actor,
            timestamp=now,
        )

    def create_booking(
        self,
        booking_id: UUID,
        *,
        client_id: UUID,
        start: datetime,
        end: datetime,
        details: str | None,
        actor: str | None,
        now: datetime,
    ) -> None:
        """Book `[start, end)` for a client; pending if the resource requires approval."""
        self._prune(now)
        _check_times(start, end, now)
        self._check_room(start, end, ignoring=None)
        self.trigger_event(
            BookingCreated,
            booking_id=booking_id,
            client_id=client_id,
            start_time=start,
            end_time=end,
            details=details,
            status=PENDING if self.requires_approval else CONFIRMED,
            actor=actor,
            timestamp=now,
        )

    def modify_booking(
        self,
        booking_id: UUID,
        *,
        start: datetime | None,
        end: datetime | None,
        details: str | None,
        actor: str | None,
        now: datetime,
    ) -> None:
        """Move a booking in time and/or change its details; the new time re-checks every rule."""
        self._prune(now)
        hold = self._open_hold(booking_id, now)
        new_start, new_end = start or hold.start, end or hold.end
        moved = (new_start, new_end) != (hold.start, hold.end)
        if moved:
            if new_end <= new_start:
                raise InvalidCommandError("end_time must be after start_time.", "end_time")
            if new_start != hold.start and new_start < now:
                raise InvalidCommandError("A booking cannot be moved into the past.", "start_time")
            if new_end <= now:
                raise InvalidCommandError("end_time must be in the future.", "end_time")
            self._check_room(new_start, new_end, ignoring=booking_id)
        elif details is None:
            return
        self.trigger_event(
            BookingModified,
            booking_id=booking_id,
            start_time=new_start if new_start != hold.start else None,
            end_time=new_end if new_end != hold.end else None,
            details=details,
            actor=actor,
            timestamp=now,
        )

    def cancel_booking(
        self, booking_id: UUID, *, reason: str | None, actor: str | None, now: datetime
    ) -> None:
        """Cancel a booking that is still open; its time becomes free."""
        self._prune(now)
        self._open_hold(booking_id, now)
        self.trigger_event(
            BookingCancelled, booking_id=booking_id, reason=reason, actor=actor, timestamp=now
        )

    def _open_hold(self, booking_id: UUID, now: datetime) -> Hold:
        hold = self.holds.get(str(booking_id))
        if hold is None or hold.end <= now:
            raise BookingClosedError(booking_id)
        return hold

    def _check_room(self, start: datetime, end: datetime, ignoring: UUID | None) -> None:
        """Refuse when `[start, end)` would take more than `capacity` bookings at any instant."""
        overlapping = [
            h for h in self.holds.values() if h.booking_id != ignoring and h.overlaps(start, end)
        ]
        if _peak(overlapping, start, end) >= self.capacity:
            ordered = sorted(overlapping, key=lambda h: (h.start, h.booking_id))
            raise SlotTakenError(self.id, [h.booking_id for h in ordered])

    def _prune(self, now: datetime) -> None:
        """Forget bookings that ended a while ago: they can neither change nor collide any more.

        The margin keeps a process whose clock runs behind from deciding on state that a
        process with a clock ahead pruned (and snapshotted) too early.
        """
        ended = [key for key, hold in self.holds.items() if hold.end <= now - PRUNE_MARGIN]
        for key in ended:
            del self.holds[key]

    @singledispatchmethod
    def when(self, event: ResourceEvent) -> None:
        """Apply an event to the state (events are applied, never decided, here)."""
        raise NotImplementedError(type(event).__name__)

    @when.register
    def _(self, event: BookingCreated) -> None:
        hold = Hold(event.booking_id, event.start_time, event.end_time, event.status)
        self.holds[str(event.booking_id)] = hold

    @when.register
    def _(self, event: BookingModified) -> None:
        key = str(event.booking_id)
        hold = self.holds.get(key)
        if hold is None:  # pruned already: it can no longer collide
            return
        self.holds[key] = Hold(
            hold.booking_id, event.start_time or hold.start, event.end_time or hold.end, hold.status
        )

    @when.register
    def _(self, event: BookingCancelled) -> None:
        self.holds.pop(str(event.booking_id), None)


@cache
def _zone_names() -> frozenset[str]:
    """The IANA zone names, as the tzdata package lists them (the system's folder also holds
    files such as `localtime` that are not zones)."""
    return frozenset(resources.files("tzdata").joinpath("zones").read_text().split())


def _check_times(start: datetime, end: datetime, now: datetime) -> None:
    if end <= start:
        raise InvalidCommandError("end_time must be after start_time.", "end_time")
    if start < now:
        raise InvalidCommandError("start_time must not be in the past.", "start_time")


def _peak(holds: list[Hold], start: datetime, end: datetime) -> int:
    """The most of `holds` that overlap at any one instant within `[start, end)`."""
    if len(holds) <= 1:
        return len(holds)
    # An end sorts before a start at the same instant: touching intervals do not overlap.
    edges = sorted(
        [(max(h.start, start), 1) for h in holds] + [(min(h.end, end), -1) for h in holds]
    )
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak

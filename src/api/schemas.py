"""Request and response bodies (msgspec Structs); snake_case as in the brief."""

from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from msgspec import Meta, Struct

from projections.availability import BusySlot, FreeSlot
from projections.bookings import BookingView
from projections.history import HistoryEntry
from projections.resources import ResourceView

NO_NUL = r"^[^\x00]*$"
"""PostgreSQL text cannot hold NUL characters: refuse them up front."""
Details = Annotated[
    str, Meta(max_length=10_000, pattern=NO_NUL, description="Free text about the booking.")
]
Time = Annotated[datetime, Meta(tz=True, description="RFC 3339 with an offset; stored in UTC.")]


EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
"""Times outside [EARLIEST, LATEST) are refused: far from any booking, and near the ends of
datetime's and PostgreSQL's ranges (where 9999-12-31 becomes 'infinity')."""


def to_utc(value: datetime, field: str) -> datetime:
    """The same instant in UTC; ValueError for naive times and times out of range."""
    if value.tzinfo is None:
        raise ValueError(f"{field} needs an offset, e.g. 2030-05-18T10:00:00Z")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = EARLIEST - timedelta(days=1)
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"{field} must lie between {EARLIEST.year} and {LATEST.year}")
    return utc


class ResourceCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
    timezone: Annotated[str, Meta(min_length=1, max_length=64, pattern=NO_NUL)] = "UTC"
    capacity: Annotated[int, Meta(ge=1, le=100_000)] = 1
    requires_approval: bool = False
    details: Details | None = None


class BookingCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    resource_id: UUID
    start_time: Time
    end_time: Time
    client_id: UUID
    details: Details | None = None

    def __post_init__(self) -> None:
        self.start_time = to_utc(self.start_time, "start_time")
        self.end_time = to_utc(self.end_time, "end_time")
        if self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")


class BookingUpdate(Struct, forbid_unknown_fields=True, kw_only=True):
    start_time: Time | None = None
    end_time: Time | None = None
    details: Details | None = None

    def __post_init__(self) -> None:
        if self.start_time is None and self.end_time is None and self.details is None:
            raise ValueError("give at least one of start_time, end_time, details")
        if self.start_time is not None:
            self.start_time = to_utc(self.start_time, "start_time")
        if self.end_time is not None:
            self.end_time = to_utc(self.end_time, "end_time")
        if self.start_time and self.end_time and self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")


class BookingPage(Struct, kw_only=True):
    items: list[BookingView]
    next_cursor: str | None


class ResourcePage(Struct, kw_only=True):
    items: list[ResourceView]
    next_cursor: str | None


class History(Struct, kw_only=True):
    booking_id: UUID
    items: list[HistoryEntry]


class Availability(Struct, kw_only=True, rename={"window_start": "from", "window_end": "to"}):
    resource_id: UUID
    window_start: datetime
    window_end: datetime
    capacity: int
    busy: list[BusySlot]
    free: list[FreeSlot]

"""Request and response bodies (msgspec Structs); snake_case as in the brief."""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from msgspec import UNSET, Meta, Struct, UnsetType, to_builtins

from commands.policy import RULE_NAMES
from commands.resource import SETTINGS
from projections.activity import DayActivity
from projections.availability import BusySlot, ClosureView, FreeSlot
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


Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Zone = Annotated[
    str, Meta(min_length=1, max_length=64, pattern=NO_NUL, description="An IANA time zone.")
]
Capacity = Annotated[int, Meta(ge=1, le=100_000, description="Bookings allowed at one instant.")]
Minutes = Annotated[int, Meta(ge=0, le=5_270_400)]
Days = Annotated[int, Meta(ge=1, le=3_660)]
Clock = Annotated[
    str,
    Meta(
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$",
        description='Local "HH:MM"; "24:00" ends a day.',
    ),
]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
Day = Annotated[str, Meta(pattern=r"^\d{4}-\d{2}-\d{2}$", description="A local date, YYYY-MM-DD.")]


class Interval(Struct, forbid_unknown_fields=True):
    """Open from `start` to `end` (local wall-clock time) on one day."""

    start: Clock
    end: Clock


Hours = Annotated[list[Interval], Meta(max_length=48)]
OpeningHours = Annotated[
    dict[Weekday, Hours],
    Meta(
        description="Open intervals per weekday; a weekday left out is closed. null: always open."
    ),
]
DateExceptions = Annotated[
    dict[Day, Hours],
    Meta(max_length=2_000, description="Hours of particular dates; [] closes the date."),
]


class ResourceCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    timezone: Zone = "UTC"
    capacity: Capacity = 1
    requires_approval: bool = False
    details: Details | None = None
    pending_holds_slot: bool = True
    approval_window_minutes: Minutes | None = None
    min_notice_minutes: Minutes = 0
    max_advance_days: Days | None = None
    min_duration_minutes: Minutes | None = None
    max_duration_minutes: Minutes | None = None
    start_step_minutes: Minutes | None = None
    buffer_before_minutes: Minutes = 0
    buffer_after_minutes: Minutes = 0
    change_notice_minutes: Minutes = 0
    cancel_notice_minutes: Minutes = 0
    opening_hours: OpeningHours | None = None
    date_exceptions: DateExceptions | None = None

    def settings(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SETTINGS}

    def rules(self) -> dict[str, Any]:
        values: dict[str, Any] = to_builtins({name: getattr(self, name) for name in RULE_NAMES})
        return values


class ResourceUpdate(Struct, forbid_unknown_fields=True, kw_only=True):
    """Any settings to change; a field left out stays as it is, null lifts a limit."""

    name: Name | UnsetType = UNSET
    timezone: Zone | UnsetType = UNSET
    capacity: Capacity | UnsetType = UNSET
    requires_approval: bool | UnsetType = UNSET
    details: Details | UnsetType | None = UNSET
    pending_holds_slot: bool | UnsetType = UNSET
    approval_window_minutes: Minutes | UnsetType | None = UNSET
    min_notice_minutes: Minutes | UnsetType = UNSET
    max_advance_days: Days | UnsetType | None = UNSET
    min_duration_minutes: Minutes | UnsetType | None = UNSET
    max_duration_minutes: Minutes | UnsetType | None = UNSET
    start_step_minutes: Minutes | UnsetType | None = UNSET
    buffer_before_minutes: Minutes | UnsetType = UNSET
    buffer_after_minutes: Minutes | UnsetType = UNSET
    change_notice_minutes: Minutes | UnsetType = UNSET
    cancel_notice_minutes: Minutes | UnsetType = UNSET
    opening_hours: OpeningHours | UnsetType | None = UNSET
    date_exceptions: DateExceptions | UnsetType | None = UNSET

    def changes(self) -> dict[str, Any]:
        given: dict[str, Any] = to_builtins(self)  # leaves out UNSET fields
        return given


class ClosureCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    start_time: Time
    end_time: Time
    reason: Annotated[str, Meta(max_length=1_000, pattern=NO_NUL)] | None = None

    def __post_init__(self) -> None:
        self.start_time = to_utc(self.start_time, "start_time")
        self.end_time = to_utc(self.end_time, "end_time")
        if self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")


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
    resource_id: Annotated[UUID, Meta(description="Move the booking to this resource.")] | None = (
        None
    )

    def __post_init__(self) -> None:
        if (self.start_time, self.end_time, self.details, self.resource_id) == (None,) * 4:
            raise ValueError("give at least one of start_time, end_time, details, resource_id")
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


class ActivityPage(Struct, kw_only=True):
    resource_id: UUID
    items: list[DayActivity]


class ResourceHistory(Struct, kw_only=True):
    resource_id: UUID
    items: list[HistoryEntry]
    next_after: int | None
    """Pass as `after` for the next page (null: this page is the last)."""


class ClosurePage(Struct, kw_only=True):
    items: list[ClosureView]


class Availability(Struct, kw_only=True, rename={"window_start": "from", "window_end": "to"}):
    resource_id: UUID
    window_start: datetime
    window_end: datetime
    capacity: int
    busy: list[BusySlot]
    closures: list[ClosureView]
    free: list[FreeSlot]
    bookable: list[FreeSlot] | None = None
    """With `duration`: each start time (and the end it gives) a booking would be accepted at."""


class Match(Struct, kw_only=True):
    resource_id: UUID
    name: str
    bookable: list[FreeSlot]


class Search(Struct, kw_only=True, rename={"window_start": "from", "window_end": "to"}):
    window_start: datetime
    window_end: datetime
    duration_minutes: int
    items: list[Match]
    next_cursor: str | None

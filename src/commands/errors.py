"""Domain errors: each names what was refused and why, for the API to turn into a problem."""

from uuid import UUID


class DomainError(Exception):
    """Base of the errors a command can be refused with."""


class InvalidCommandError(DomainError):
    """Raised when a command's values break a rule on their own (end before start, bad zone)."""

    def __init__(self, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


class ResourceNotFoundError(DomainError):
    """Raised when no resource has the given id."""

    def __init__(self, resource_id: UUID) -> None:
        super().__init__(f"Resource {resource_id} does not exist.")
        self.resource_id = resource_id


class BookingNotFoundError(DomainError):
    """Raised when no booking has the given id."""

    def __init__(self, booking_id: UUID) -> None:
        super().__init__(f"Booking {booking_id} does not exist.")
        self.booking_id = booking_id


class ClosureNotFoundError(DomainError):
    """Raised when a resource has no closure with the given id."""

    def __init__(self, resource_id: UUID, closure_id: UUID) -> None:
        super().__init__(f"Resource {resource_id} has no closure {closure_id}.")
        self.closure_id = closure_id


class SlotTakenError(DomainError):
    """Raised when a slot would overlap bookings that already hold the resource's capacity."""

    def __init__(self, resource_id: UUID, conflicting: list[UUID]) -> None:
        ids = ", ".join(str(b) for b in conflicting)
        super().__init__(f"The slot on resource {resource_id} overlaps booking(s) {ids}.")
        self.resource_id = resource_id
        self.conflicting_booking_ids = conflicting


class BookingClosedError(DomainError):
    """Raised when changing a booking that is in a final state or already over."""

    def __init__(self, booking_id: UUID) -> None:
        super().__init__(f"Booking {booking_id} is final or over and can no longer change.")
        self.booking_id = booking_id


class RuleViolationError(DomainError):
    """Raised when a request breaks one of the resource's booking rules (`rule` names it)."""

    def __init__(self, rule: str, detail: str, field: str) -> None:
        super().__init__(detail)
        self.rule = rule
        self.field = field


class ResourceClosedError(DomainError):
    """Raised when a slot falls into a time the owner closed the resource."""

    def __init__(self, resource_id: UUID, closure_ids: list[UUID]) -> None:
        ids = ", ".join(str(c) for c in closure_ids)
        super().__init__(f"Resource {resource_id} is closed then (closure {ids}).")
        self.resource_id = resource_id
        self.closure_ids = closure_ids


class ResourceRetiredError(DomainError):
    """Raised when booking, or changing, a retired resource."""

    def __init__(self, resource_id: UUID) -> None:
        super().__init__(f"Resource {resource_id} is retired and takes no new bookings.")
        self.resource_id = resource_id


class IllegalTransitionError(DomainError):
    """Raised when a booking's status does not allow the requested change."""

    def __init__(self, booking_id: UUID, status: str, action: str, why: str = "") -> None:
        reason = why or f"it is {status}"
        super().__init__(f"Booking {booking_id} cannot be {action}: {reason}.")
        self.booking_id = booking_id
        self.status = status


class ContentionError(DomainError):
    """Raised when a command kept losing version races on one resource until its deadline."""

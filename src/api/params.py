"""Parsing of path and query values that litestar cannot check the way the API promises."""

from datetime import UTC, datetime
from typing import overload
from uuid import UUID

from api.errors import InvalidInputError


def parse_uuid(value: str, field: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise InvalidInputError(field, f"{value!r} is not a UUID") from None


@overload
def aware(value: datetime, field: str) -> datetime: ...
@overload
def aware(value: datetime | None, field: str) -> datetime | None: ...
def aware(value: datetime | None, field: str) -> datetime | None:
    """The time in UTC; naive times are refused (an offset is required)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidInputError(field, "a time needs an offset, e.g. 2024-05-18T10:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidInputError(field, "the time is out of range") from None

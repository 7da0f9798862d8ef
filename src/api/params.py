"""Parsing of path and query values that litestar cannot check the way the API promises."""

import base64
import binascii
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar, overload
from uuid import UUID

import msgspec

from api.errors import InvalidInputError
from api.schemas import to_utc

TIME = "RFC 3339 time with an offset, e.g. 2030-05-18T10:00:00Z"


def parse_uuid(value: str, field: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise InvalidInputError(field, f"{value!r} is not a UUID") from None


@overload
def parse_time(value: str, field: str) -> datetime: ...
@overload
def parse_time(value: str | None, field: str) -> datetime | None: ...
def parse_time(value: str | None, field: str) -> datetime | None:
    """An RFC 3339 time with an offset, in UTC (numbers are not times here)."""
    if value is None:
        return None
    try:
        return aware(msgspec.convert(value, datetime, strict=True), field)
    except msgspec.ValidationError:
        raise InvalidInputError(field, f"not an {TIME}") from None


def aware(value: datetime, field: str) -> datetime:
    """The time in UTC; naive times and times out of range are refused."""
    try:
        return to_utc(value, field)
    except ValueError as error:
        raise InvalidInputError(field, str(error)) from None


T = TypeVar("T")
_AT_PATH = re.compile(r" - at (?:`key` in )?`\$(?:\.(?P<path>.*))?`$")


def strict_body(data: Any, schema: type[T]) -> T:
    """The JSON body as `schema`, with no type coercion ("2" is not 2, 1798190527 not a time).

    litestar converts bodies leniently, so handlers take the decoded JSON as is
    (`SkipValidation`) and convert it here.
    """
    try:
        return msgspec.convert(data, schema, strict=True)
    except msgspec.ValidationError as error:
        message = str(error)
        match = _AT_PATH.search(message)
        field = (match and match.group("path")) or "body"
        raise InvalidInputError(field, message[: match.start()] if match else message) from None


Key = tuple[datetime, UUID]
"""Where a page ended: the sort time and id of its last item."""


def page_after(cursor: str | None) -> Key | None:
    """The key a `cursor` query value carries (None: the first page)."""
    if not cursor:
        return None
    try:
        at, key = msgspec.json.decode(base64.urlsafe_b64decode(cursor), type=Key)
    except (ValueError, binascii.Error, msgspec.DecodeError):
        raise InvalidInputError("cursor", "not a cursor this API issued") from None
    return aware(at, "cursor"), key


def next_page(items: list[T], limit: int, key: Callable[[T], Key]) -> tuple[list[T], str | None]:
    """The page (queried with `limit + 1` rows) and the cursor of the next one, if any."""
    if len(items) <= limit:
        return items, None
    items = items[:limit]
    return items, base64.urlsafe_b64encode(msgspec.json.encode(key(items[-1]))).decode()

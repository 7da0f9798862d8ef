"""The one place where errors become RFC 9457 problem details (`application/problem+json`)."""

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from commands.errors import (
    BookingClosedError,
    BookingNotFoundError,
    ClosureNotFoundError,
    ContentionError,
    DomainError,
    IllegalTransitionError,
    InvalidCommandError,
    ResourceClosedError,
    ResourceNotFoundError,
    ResourceRetiredError,
    RuleViolationError,
    SlotTakenError,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class InvalidInputError(Exception):
    """Raised by the API when a request value is well-formed JSON but not acceptable."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def problem(status: int, kind: str, title: str, detail: str, **extra: Any) -> Response[Any]:
    body = {"type": f"/problems/{kind}", "title": title, "status": status, "detail": detail}
    return Response(body | extra, status_code=status, media_type=PROBLEM_JSON)


def invalid(errors: list[dict[str, str]]) -> Response[Any]:
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(422, "invalid-field", "A field has an invalid value", detail, errors=errors)


def on_invalid_input(_: Request[Any, Any, Any], error: InvalidInputError) -> Response[Any]:
    return invalid([{"field": error.field, "message": error.message}])


# Parameters whose Python names differ from their names on the wire.
_QUERY_NAMES = {
    "window_start": "from",
    "window_end": "to",
    "first": "from",
    "last": "to",
    "actor": "X-Actor",
    "role": "X-Actor-Role",
}


def on_validation(_: Request[Any, Any, Any], error: ValidationException) -> Response[Any]:
    """msgspec/litestar validation of body, query and path values."""
    cause = str(error.__cause__ or "")
    if "missing required field `data`" in cause:
        return problem(
            400, "malformed-request", "Malformed request", "The request body must be a JSON object."
        )
    errors = []
    for item in error.extra if isinstance(error.extra, list) else []:
        key = str(item.get("key", ""))
        message = str(item.get("message", "invalid value"))
        key = _QUERY_NAMES.get(key, key)
        errors.append({"field": key, "message": message})
    return invalid(errors or [{"field": "request", "message": str(error.detail)}])


def on_domain(_: Request[Any, Any, Any], error: DomainError) -> Response[Any]:  # noqa: PLR0911
    detail = str(error)
    match error:
        case ResourceNotFoundError() | BookingNotFoundError() | ClosureNotFoundError():
            return problem(404, "not-found", "Not found", detail)
        case SlotTakenError():
            return problem(
                409,
                "slot-taken",
                "The slot is taken",
                detail,
                conflicting_booking_ids=[str(b) for b in error.conflicting_booking_ids],
            )
        case BookingClosedError():
            return problem(409, "booking-closed", "The booking can no longer change", detail)
        case IllegalTransitionError():
            title = "The booking's status does not allow this"
            return problem(409, "illegal-transition", title, detail, booking_status=error.status)
        case ResourceClosedError():
            title = "The resource is closed then"
            closure_ids = [str(c) for c in error.closure_ids]
            return problem(409, "resource-closed", title, detail, closure_ids=closure_ids)
        case ResourceRetiredError():
            return problem(409, "resource-retired", "The resource is retired", detail)
        case RuleViolationError():
            title = "The request breaks a booking rule of the resource"
            return problem(422, error.rule, title, detail, rule=error.rule, field=error.field)
        case InvalidCommandError():
            return invalid([{"field": error.field or "request", "message": detail}])
        case ContentionError():
            return problem(503, "contention", "Too many concurrent changes", detail)
    return problem(400, "refused", "The command was refused", detail)


def on_http(_: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    status = error.status_code
    if status == 400:
        return problem(400, "malformed-request", "Malformed request", str(error.detail))
    kind = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(status, "http")
    return problem(status, kind, str(error.detail), str(error.detail))


def on_not_utf8(_: Request[Any, Any, Any], __: UnicodeDecodeError) -> Response[Any]:
    return problem(400, "malformed-request", "Malformed request", "The body is not valid UTF-8.")


def on_too_deep(_: Request[Any, Any, Any], __: RecursionError) -> Response[Any]:
    return problem(400, "malformed-request", "Malformed request", "The JSON is nested too deeply.")


def on_unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    return problem(500, "internal", "Internal error", "The server failed to handle the request.")


EXCEPTION_HANDLERS: Any = {
    InvalidInputError: on_invalid_input,
    ValidationException: on_validation,
    DomainError: on_domain,
    HTTPException: on_http,
    RecursionError: on_too_deep,
    UnicodeDecodeError: on_not_utf8,
    Exception: on_unexpected,
}

"""How a delivery is signed, and how a receiver checks it.

`Bookings-Signature: v1=<hex>` where `<hex>` is HMAC-SHA256 keyed with the subscription's secret
over `"{Bookings-Timestamp}.{body}"`. Signing the timestamp with the body lets a receiver refuse
replays of old deliveries; comparing in constant time keeps the signature from leaking.
"""

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from uuid import UUID

EVENT_ID = "Bookings-Event-Id"
TIMESTAMP = "Bookings-Timestamp"
SIGNATURE = "Bookings-Signature"
SUBSCRIPTION_ID = "Bookings-Subscription-Id"
SCHEME = "v1"
TOLERANCE = 300
"""Seconds a receiver accepts between a delivery's timestamp and its own clock, by default."""

_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Bookings-Signature` value of `body` sent at `timestamp` (unix seconds)."""
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def delivery_headers(
    secret: str, subscription_id: UUID, event_id: UUID, timestamp: int, body: bytes
) -> dict[str, str]:
    """The headers a delivery of `body` carries."""
    return {
        "Content-Type": "application/json",
        EVENT_ID: str(event_id),
        SUBSCRIPTION_ID: str(subscription_id),
        TIMESTAMP: str(timestamp),
        SIGNATURE: sign(secret, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: float = TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether `body` was signed with `secret` no more than `tolerance` seconds from `now`
    (default: this machine's clock). Header names are matched case-insensitively."""
    found = {name.lower(): value for name, value in headers.items()}
    stamp = found.get(TIMESTAMP.lower(), "").strip()
    signatures = found.get(SIGNATURE.lower(), "")
    if not _UNIX_SECONDS.fullmatch(stamp):
        return False
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).encode()
    # Several signatures may be sent (`v1=…,v1=…`); one match is enough.
    return any(
        hmac.compare_digest(expected, candidate.strip().encode())
        for candidate in signatures.split(",")
    )

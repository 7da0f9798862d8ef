"""Signing of webhook deliveries: what a receiver's `verify` accepts and refuses."""

import hashlib
import hmac
import time
from uuid import uuid4

import pytest

from webhooks.signing import SIGNATURE, TIMESTAMP, delivery_headers, sign, verify

SECRET = "whsec-0123456789abcdef"
BODY = b'{"event_id":"4d7c","type":"booking.created","data":{}}'
NOW = 1_900_000_000


def signed(body: bytes = BODY, at: int = NOW, secret: str = SECRET) -> dict[str, str]:
    return delivery_headers(secret, uuid4(), uuid4(), at, body)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body_in_hex() -> None:
    expected = hmac.new(SECRET.encode(), b"1900000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, NOW, BODY) == f"v1={expected}"


def test_a_delivery_carries_its_ids_timestamp_and_signature() -> None:
    subscription_id, event_id = uuid4(), uuid4()
    headers = delivery_headers(SECRET, subscription_id, event_id, NOW, BODY)
    assert headers == {
        "Content-Type": "application/json",
        "Bookings-Event-Id": str(event_id),
        "Bookings-Subscription-Id": str(subscription_id),
        "Bookings-Timestamp": "1900000000",
        "Bookings-Signature": sign(SECRET, NOW, BODY),
    }


def test_an_untouched_delivery_verifies() -> None:
    assert verify(SECRET, signed(), BODY, now=NOW)


def test_header_names_are_matched_whatever_their_case() -> None:
    lowered = {name.lower(): value for name, value in signed().items()}
    assert verify(SECRET, lowered, BODY, now=NOW)


def test_the_receivers_own_clock_is_the_default() -> None:
    at = int(time.time())
    assert verify(SECRET, signed(at=at), BODY)
    assert not verify(SECRET, signed(at=at - 3600), BODY)


@pytest.mark.parametrize(
    "body",
    [BODY.replace(b"created", b"canceled"), BODY + b" ", BODY[:-1], b""],
    ids=["changed", "appended", "truncated", "empty"],
)
def test_a_tampered_body_is_refused(body: bytes) -> None:
    assert not verify(SECRET, signed(), body, now=NOW)


def test_another_secret_is_refused() -> None:
    assert not verify("whsec-someone-else-entirely", signed(), BODY, now=NOW)


def test_a_changed_timestamp_is_refused() -> None:
    headers = signed() | {TIMESTAMP: str(NOW + 1)}
    assert not verify(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("age", [301, -301, 86_400])
def test_a_timestamp_outside_the_tolerance_is_refused(age: int) -> None:
    assert not verify(SECRET, signed(at=NOW - age), BODY, now=NOW)


@pytest.mark.parametrize("age", [0, 300, -300])
def test_a_timestamp_within_the_tolerance_is_accepted(age: int) -> None:
    assert verify(SECRET, signed(at=NOW - age), BODY, now=NOW)


def test_the_tolerance_can_be_chosen() -> None:
    assert verify(SECRET, signed(at=NOW - 3600), BODY, tolerance=3600, now=NOW)
    assert not verify(SECRET, signed(at=NOW - 11), BODY, tolerance=10, now=NOW)


def test_one_matching_signature_among_several_is_enough() -> None:
    headers = signed()
    headers[SIGNATURE] = f"v1={'0' * 64}, {headers[SIGNATURE]}"
    assert verify(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {SIGNATURE: ""},
        {SIGNATURE: "v1="},
        {SIGNATURE: "v0=" + "0" * 64},
        {SIGNATURE: "v1=é"},
        {TIMESTAMP: ""},
        {TIMESTAMP: "soon"},
        {TIMESTAMP: "-1900000000"},
        {TIMESTAMP: "1900000000.5"},
        {TIMESTAMP: "1" * 40},
    ],
    ids=repr,
)
def test_malformed_headers_are_refused_without_error(changes: dict[str, str]) -> None:
    assert not verify(SECRET, signed() | changes, BODY, now=NOW)


def test_missing_headers_are_refused() -> None:
    for name in (SIGNATURE, TIMESTAMP):
        headers = signed()
        del headers[name]
        assert not verify(SECRET, headers, BODY, now=NOW)


def test_the_scheme_prefix_is_part_of_the_signature() -> None:
    headers = signed()
    headers[SIGNATURE] = headers[SIGNATURE].removeprefix("v1=")
    assert not verify(SECRET, headers, BODY, now=NOW)

"""Webhook subscriptions: configuration rows (not events), each a receiver's cursor on the feed.

`position` is the last feed position handled for the receiver (0: from the first event). A
delivery process leases a subscription for one short batch with a single statement; every
write it makes is guarded by its lease and by the position it last wrote, so a process that
lost its lease, or a cursor an operator moved meanwhile, is never overwritten. No statement
here keeps a transaction open: an open writing transaction would hold back the feed.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

ACTIVE, DEAD = "active", "dead"


class SubscriptionView(msgspec.Struct, kw_only=True):
    subscription_id: UUID
    url: str
    event_types: list[str] | None
    """The event types delivered; null: every type."""
    status: str
    """`active`, or `dead`: delivery stopped after too many failures until a redrive."""
    position: int
    """The feed position of the last event handled (delivered or filtered out); 0: none."""
    failures: int
    """Consecutive failed attempts at the event at `failed_position`."""
    last_error: str | None
    failed_position: int | None
    """The event the last failed attempt tried to deliver; cleared by the next success."""
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime


class Subscription(SubscriptionView, kw_only=True):
    """A subscription with its signing secret (shown once, when created)."""

    secret: str


VIEW_COLUMNS = """subscription_id, url, event_types, status, position, failures, last_error,
                  failed_position, next_attempt_at, created_at, updated_at"""
COLUMNS = f"{VIEW_COLUMNS}, secret"

INSERT = f"""
INSERT INTO subscriptions (subscription_id, url, event_types, secret, position, next_attempt_at,
                           created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $6, $6)
RETURNING {COLUMNS}
"""
SELECT = f"SELECT {VIEW_COLUMNS} FROM subscriptions WHERE subscription_id = $1"
PAGE = f"""
SELECT {VIEW_COLUMNS} FROM subscriptions
WHERE $1::timestamptz IS NULL OR (created_at, subscription_id) > ($1, $2)
ORDER BY created_at, subscription_id
LIMIT $3
"""
DELETE = "DELETE FROM subscriptions WHERE subscription_id = $1 RETURNING subscription_id"
REDRIVE = f"""
UPDATE subscriptions SET status = 'active', failures = 0, next_attempt_at = $2, updated_at = $2
WHERE subscription_id = $1
RETURNING {VIEW_COLUMNS}
"""
REPLAY = f"""
UPDATE subscriptions SET position = $2, status = 'active', failures = 0, next_attempt_at = $3,
                         updated_at = $3
WHERE subscription_id = $1
RETURNING {VIEW_COLUMNS}
"""
# The last event in feed order whose transaction ended before every running one: a cursor there
# misses nothing that commits later (docs/adr/0003-feed-order.md).
FEED_END = """
SELECT position FROM events
WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY transaction_id DESC, position DESC
LIMIT 1
"""

# One statement: pick the active subscription due longest ago that nobody holds, and hold it.
LEASE_DUE = f"""
UPDATE subscriptions SET lease_owner = $1, lease_until = $3
WHERE subscription_id = (
    SELECT subscription_id FROM subscriptions
    WHERE status = 'active' AND next_attempt_at <= $2
      AND (lease_until IS NULL OR lease_until < $2)
      AND subscription_id <> ALL($4::uuid[])
    ORDER BY next_attempt_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING {COLUMNS}
"""
ADVANCE = """
UPDATE subscriptions SET position = $4, failures = 0, last_error = NULL, failed_position = NULL,
                         lease_until = $6, updated_at = $5
WHERE subscription_id = $1 AND lease_owner = $2 AND position = $3
RETURNING position
"""
FAIL = f"""
UPDATE subscriptions SET position = $4, failures = failures + 1,
                         status = CASE WHEN failures + 1 >= $5 THEN 'dead' ELSE status END,
                         last_error = $6, failed_position = $7, next_attempt_at = $8,
                         lease_owner = NULL, lease_until = NULL, updated_at = $9
WHERE subscription_id = $1 AND lease_owner = $2 AND position = $3
RETURNING {VIEW_COLUMNS}
"""
# Served: to the back of the queue (behind the subscriptions due longer), unless due later.
RELEASE = """
UPDATE subscriptions SET lease_owner = NULL, lease_until = NULL,
                         next_attempt_at = GREATEST(next_attempt_at, $3)
WHERE subscription_id = $1 AND lease_owner = $2
"""


def _view(row: Any) -> SubscriptionView:
    return msgspec.convert(dict(row), SubscriptionView)


def _subscription(row: Any) -> Subscription:
    return msgspec.convert(dict(row), Subscription)


async def create(
    db: asyncpg.Pool,
    *,
    url: str,
    event_types: list[str] | None,
    secret: str,
    position: int,
    now: datetime,
    subscription_id: UUID,
) -> Subscription:
    """Subscribe `url` to the feed after `position`; due at once."""
    row = await db.fetchrow(INSERT, subscription_id, url, event_types, secret, position, now)
    return _subscription(row)


async def get(db: asyncpg.Pool, subscription_id: UUID) -> SubscriptionView | None:
    row = await db.fetchrow(SELECT, subscription_id)
    return None if row is None else _view(row)


async def page(
    db: asyncpg.Pool, after: tuple[datetime, UUID] | None, limit: int
) -> list[SubscriptionView]:
    """Subscriptions in creation order, after the key of the previous page's last one."""
    created_at, subscription_id = after or (None, None)
    return [_view(row) for row in await db.fetch(PAGE, created_at, subscription_id, limit)]


async def delete(db: asyncpg.Pool, subscription_id: UUID) -> bool:
    """Unsubscribe; False if there was no such subscription."""
    return await db.fetchval(DELETE, subscription_id) is not None


async def redrive(
    db: asyncpg.Pool, subscription_id: UUID, now: datetime
) -> SubscriptionView | None:
    """Make a dead (or backing-off) subscription active and due now; it resumes at its cursor,
    so the event that failed is the first one retried."""
    row = await db.fetchrow(REDRIVE, subscription_id, now)
    return None if row is None else _view(row)


async def replay(
    db: asyncpg.Pool, subscription_id: UUID, after: int, now: datetime
) -> SubscriptionView | None:
    """Move the cursor to `after` (0: the first event), active and due now."""
    row = await db.fetchrow(REPLAY, subscription_id, after, now)
    return None if row is None else _view(row)


async def feed_end(db: asyncpg.Pool) -> int:
    """The position of the newest event in the feed (0 if none): a cursor for "from now on"."""
    position: int | None = await db.fetchval(FEED_END)
    return position or 0


async def lease_due(
    db: asyncpg.Pool, owner: UUID, now: datetime, until: datetime, skip: list[UUID]
) -> Subscription | None:
    """Hold the active subscription due longest ago (not in `skip`) until `until`."""
    row = await db.fetchrow(LEASE_DUE, owner, now, until, skip)
    return None if row is None else _subscription(row)


async def advance(
    db: asyncpg.Pool,
    subscription_id: UUID,
    owner: UUID,
    *,
    written: int,
    to: int,
    now: datetime,
    lease_until: datetime,
) -> bool:
    """Move the cursor from `written` to `to` and extend the lease; False if `owner` lost the
    lease or the cursor was moved meanwhile (then stop: someone else decides now)."""
    moved = await db.fetchval(ADVANCE, subscription_id, owner, written, to, now, lease_until)
    return moved is not None


async def record_failure(
    db: asyncpg.Pool,
    subscription_id: UUID,
    owner: UUID,
    *,
    written: int,
    handled: int,
    failed_position: int,
    error: str,
    retry_at: datetime,
    max_failures: int,
    now: datetime,
) -> SubscriptionView | None:
    """Count a failed attempt at `failed_position` (the cursor moves to `handled`, past the
    events filtered out before it) and release the lease; dead after `max_failures` in a row."""
    row = await db.fetchrow(
        FAIL,
        subscription_id,
        owner,
        written,
        handled,
        max_failures,
        error,
        failed_position,
        retry_at,
        now,
    )
    return None if row is None else _view(row)


async def release(db: asyncpg.Pool, subscription_id: UUID, owner: UUID, now: datetime) -> None:
    """Let go of a lease `owner` still holds."""
    await db.execute(RELEASE, subscription_id, owner, now)

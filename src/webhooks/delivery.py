"""Delivering the feed to subscribers: signed POSTs, one event at a time in feed order, retried
with exponential backoff, dead-lettered after too many failures in a row.

At least once: the cursor moves only after the receiver answered 2xx, so a crash in between
delivers that event again, with the same `event_id`. Nothing here holds a transaction while a
receiver is called, and commands never wait for deliveries: they only append to the log.
"""

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import asyncpg
import httpx
import msgspec

from events.feed import FeedEvent, to_feed
from events.store import EventStore
from webhooks import subscriptions
from webhooks.signing import delivery_headers
from webhooks.subscriptions import Subscription

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
USER_AGENT = "bookings-webhooks/1"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DeliveryConfig:
    batch: int = 100
    """Events read per visit to a subscription before others get their turn."""
    timeout: float = 10.0
    """Seconds a receiver has to answer one delivery, all told."""
    lease: timedelta = timedelta(seconds=60)
    """How long a process holds a subscription without writing; renewed at every delivery."""
    max_failures: int = 8
    """Failed attempts in a row after which the subscription is dead (dead letter)."""
    backoff_base: timedelta = timedelta(seconds=5)
    backoff_cap: timedelta = timedelta(minutes=10)
    jitter: float = 0.2
    """Each wait is shortened by up to this fraction, at random, so retries spread out."""
    workers: int = 4
    """Subscriptions one process delivers to at the same time (a slow receiver holds one)."""

    def __post_init__(self) -> None:
        if self.lease.total_seconds() < 2 * self.timeout:
            raise ValueError("the lease must last at least twice the delivery timeout")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must lie in [0, 1)")
        if min(self.batch, self.max_failures, self.workers) < 1:
            raise ValueError("batch, max_failures and workers must be at least 1")


def backoff(
    failures: int, config: DeliveryConfig, rand: Callable[[], float] = random.random
) -> timedelta:
    """The wait after the `failures`-th failure in a row: base * 2^(failures - 1), capped,
    less up to `jitter` of it."""
    doublings = min(max(failures - 1, 0), 64)
    wait = config.backoff_base.total_seconds() * 2.0**doublings
    capped = min(wait, config.backoff_cap.total_seconds())
    return timedelta(seconds=capped * (1 - config.jitter * rand()))


@dataclass
class _Cursor:
    """Where one leased subscription stands: written to the database, and handled here."""

    pool: asyncpg.Pool
    subscription: Subscription
    owner: UUID
    clock: Clock
    lease: timedelta
    written: int
    handled: int

    async def write(self, position: int) -> bool:
        """Move the stored cursor to `position` (renewing the lease); False if it is no
        longer ours to move."""
        if position == self.written:
            return True
        now = self.clock()
        moved = await subscriptions.advance(
            self.pool,
            self.subscription.subscription_id,
            self.owner,
            written=self.written,
            to=position,
            now=now,
            lease_until=now + self.lease,
        )
        if moved:
            self.written = self.handled = position
        return moved


@dataclass(frozen=True)
class Deliverer:
    """What delivering needs: the database, the log, an HTTP client, a clock, the limits."""

    pool: asyncpg.Pool
    store: EventStore
    client: httpx.AsyncClient
    clock: Clock = utc_now
    config: DeliveryConfig = DeliveryConfig()

    async def deliver_due(self, owner: UUID) -> int:
        """Deliver the next batch of every subscription due now that no other process holds,
        one subscription after the other; the number of events handled."""
        served: list[UUID] = []
        handled = 0
        while True:
            now = self.clock()
            until = now + self.config.lease
            sub = await subscriptions.lease_due(self.pool, owner, now, until, served)
            if sub is None:
                return handled
            served.append(sub.subscription_id)
            try:
                handled += await self.deliver_batch(sub, owner)
            finally:
                await subscriptions.release(self.pool, sub.subscription_id, owner, self.clock())

    async def deliver_batch(self, sub: Subscription, owner: UUID) -> int:
        """Deliver the events after the cursor of a subscription `owner` holds, one at a time
        in feed order; the number handled (delivered or filtered out). Stops at a failure."""
        lease = self.config.lease
        cursor = _Cursor(self.pool, sub, owner, self.clock, lease, sub.position, sub.position)
        count = 0
        for recorded in await self.store.read_feed(after=sub.position, limit=self.config.batch):
            event = to_feed(recorded)
            if sub.event_types is None or event.type in sub.event_types:
                error = await self.post(sub, event)
                if error is not None:
                    await self.record_failure(cursor, event.position, error)
                    return count
                if not await cursor.write(event.position):
                    return count  # the lease was lost or the cursor moved (a replay): stop
            cursor.handled = event.position
            count += 1
        await cursor.write(cursor.handled)  # past the events filtered out at the end
        return count

    async def post(self, sub: Subscription, event: FeedEvent) -> str | None:
        """POST one signed event; None if the receiver took it (2xx), else what went wrong."""
        body = msgspec.json.encode(event)
        timestamp = int(self.clock().timestamp())
        headers = delivery_headers(sub.secret, sub.subscription_id, event.event_id, timestamp, body)
        headers["User-Agent"] = USER_AGENT
        timeout = self.config.timeout
        try:
            async with asyncio.timeout(timeout):
                request = self.client.stream(
                    "POST", sub.url, content=body, headers=headers, timeout=timeout
                )
                async with request as response:  # the status is all we need: skip the body
                    status = response.status_code
        except TimeoutError:
            return f"no answer within {timeout:g} s"
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            return f"{type(error).__name__}: {error}".removesuffix(": ")[:500]
        return None if 200 <= status < 300 else f"HTTP {status}"

    async def record_failure(self, cursor: _Cursor, failed_position: int, error: str) -> None:
        """Count the failed attempt, schedule the next one, and let go of the subscription."""
        sub, config = cursor.subscription, self.config
        failures = sub.failures + 1
        now = self.clock()
        view = await subscriptions.record_failure(
            self.pool,
            sub.subscription_id,
            cursor.owner,
            written=cursor.written,
            handled=cursor.handled,
            failed_position=failed_position,
            error=error,
            retry_at=now + backoff(failures, config),
            max_failures=config.max_failures,
            now=now,
        )
        if view is not None and view.status == subscriptions.DEAD:
            log.error(
                "webhook %s is dead after %s failures: %s", sub.subscription_id, failures, error
            )
        else:
            log.warning("webhook %s failed at %s: %s", sub.subscription_id, failed_position, error)


async def deliver_due(
    pool: asyncpg.Pool,
    store: EventStore,
    client: httpx.AsyncClient,
    clock: Clock,
    owner: UUID,
    *,
    config: DeliveryConfig = DeliveryConfig(),
) -> int:
    """Deliver the next batch of every subscription due now (see `Deliverer.deliver_due`)."""
    return await Deliverer(pool, store, client, clock, config).deliver_due(owner)


async def keep_delivering(
    pool: asyncpg.Pool,
    store: EventStore,
    interval: float,
    *,
    clock: Clock = utc_now,
    config: DeliveryConfig = DeliveryConfig(),
    client: httpx.AsyncClient | None = None,
) -> None:
    """Deliver due webhooks until cancelled: `config.workers` loops, each looking again at once
    while there was work and after `interval` seconds when there was none; never crashes."""
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=config.timeout))
        deliverer = Deliverer(pool, store, client, clock, config)
        async with asyncio.TaskGroup() as workers:
            for _ in range(config.workers):
                workers.create_task(_work(deliverer, interval))


async def _work(deliverer: Deliverer, interval: float) -> None:
    owner = uuid4()
    while True:
        try:
            handled = await deliverer.deliver_due(owner)
        except Exception:
            log.exception("delivering webhooks failed; trying again in %s s", interval)
            handled = 0
        if not handled:
            await asyncio.sleep(interval)

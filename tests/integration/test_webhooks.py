"""Webhook delivery against real PostgreSQL and a real HTTP receiver on localhost: signed, in feed
order, filtered by type, retried with backoff, dead-lettered, redriven, replayed, at least once,
one process per subscription at a time, and never in the way of the booking commands.

`deliver_due` serves every due subscription in the database, so each test delivers on a clock of
its own in the far future, each test a month before the one before it: subscriptions of earlier
tests are never due again for a later one (they are due from their own, later, era), and server
processes delivering on the real clock never find these due. The events are the whole feed
after a subscription's cursor, so tests compare with what `read_feed` returns.
"""

import asyncio
import contextlib
import itertools
import json
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import msgspec
import pytest

from commands.handlers import CancelBooking, CommandHandlers, CreateBooking, RegisterResource
from commands.repository import ResourceRepository
from events.feed import FeedEvent, event_id, to_feed
from events.store import EventStore, RecordedEvent
from projections import bookings
from webhooks import subscriptions
from webhooks.delivery import DeliveryConfig, backoff, deliver_due, keep_delivering, utc_now
from webhooks.signing import verify
from webhooks.subscriptions import Subscription, SubscriptionView

SECOND, HOUR = timedelta(seconds=1), timedelta(hours=1)
ERA = datetime(2400, 1, 1, tzinfo=UTC)
_eras = itertools.count()
CONFIG = DeliveryConfig(
    timeout=5,
    lease=timedelta(seconds=30),
    max_failures=3,
    backoff_base=SECOND,
    backoff_cap=8 * SECOND,
    jitter=0,
)


class MovableClock:
    """The time the test's delivery processes see; only the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Request:
    headers: dict[str, str]
    """Names in lower case."""
    body: bytes

    @property
    def event_id(self) -> str:
        event_id: str = json.loads(self.body)["event_id"]
        return event_id


@dataclass
class Receiver:
    """A webhook receiver on localhost (HTTP/1.1, keep-alive) that records every request and
    answers as the test tells it: `status`, after `delay` seconds, or once `hold` is set."""

    status: int = 200
    delay: float = 0.0
    hold: asyncio.Event | None = None
    requests: list[Request] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    most_in_flight: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/bookings"

    def event_ids(self) -> list[str]:
        return [request.event_id for request in self.requests]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.hold:
            self.hold.set()
        assert self._server
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while await reader.readline():  # the request line; b"" when the client hung up
                headers = {}
                while (line := await reader.readline()).strip():
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = await self._answer(Request(headers, body))
                writer.write(f"HTTP/1.1 {status} Answer\r\nContent-Length: 2\r\n\r\nok".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, request: Request) -> int:
        self.requests.append(request)
        self.arrived.set()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            if self.hold:
                await self.hold.wait()
            return self.status
        finally:
            self.in_flight -= 1


@dataclass
class Bench:
    """What a delivery test works with: the log, commands on the real clock (bookings lie in the
    real future), a delivery clock of the test's own, an HTTP client and a receiver."""

    store: EventStore
    commands: CommandHandlers
    clock: MovableClock
    http: httpx.AsyncClient
    receiver: Receiver
    made: list[UUID] = field(default_factory=list)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.store.pool

    async def subscribe(
        self, url: str | None = None, event_types: list[str] | None = None
    ) -> Subscription:
        """Subscribe the receiver (or `url`) from now on; unsubscribed after the test."""
        created = await subscriptions.create(
            self.pool,
            subscription_id=uuid4(),
            url=url or self.receiver.url,
            event_types=event_types,
            secret=secrets.token_urlsafe(32),
            position=await subscriptions.feed_end(self.pool),
            now=self.clock(),
        )
        self.made.append(created.subscription_id)
        return created

    async def activity(self, bookings: int = 2) -> UUID:
        """A new resource with bookings, the first one cancelled: several types, one stream."""
        resource_id = await self.commands.register_resource(RegisterResource(f"Room {uuid4()}"))
        for booking_id in [await self.book(resource_id, i) for i in range(bookings)][:1]:
            await self.commands.cancel_booking(CancelBooking(booking_id))
        return resource_id

    async def book(self, resource_id: UUID, hour: int) -> UUID:
        start = utc_now().replace(microsecond=0) + timedelta(days=30) + hour * HOUR
        booking = CreateBooking(resource_id, uuid4(), start, start + HOUR)
        return (await self.commands.create_booking(booking)).booking_id

    async def feed_after(self, position: int) -> list[FeedEvent]:
        return [to_feed(recorded) for recorded in await self.store.read_feed(after=position)]

    async def deliver(self, config: DeliveryConfig = CONFIG) -> int:
        """One round of one delivery process."""
        return await deliver_due(
            self.pool, self.store, self.http, self.clock, uuid4(), config=config
        )

    async def state(self, subscription: Subscription) -> SubscriptionView:
        view = await subscriptions.get(self.pool, subscription.subscription_id)
        assert view is not None
        return view

    async def until_dead(self) -> None:
        """Fail every attempt until the subscriptions are dead (CONFIG: after 3)."""
        self.receiver.status = 500
        for _ in range(CONFIG.max_failures):
            await self.deliver()
            self.clock.advance(CONFIG.backoff_cap)


@pytest.fixture
async def bench(store: EventStore) -> AsyncIterator[Bench]:
    async def locate_booking(booking_id: UUID) -> UUID | None:
        return await bookings.resource_of(store.pool, booking_id)

    commands = CommandHandlers(ResourceRepository(store), utc_now, locate_booking)
    clock = MovableClock(ERA - next(_eras) * timedelta(days=30))  # see the module's docstring
    receiver = Receiver()
    await receiver.start()
    async with httpx.AsyncClient(trust_env=False) as http:  # no proxy for localhost
        bench = Bench(store, commands, clock, http, receiver)
        yield bench
    await receiver.stop()
    for subscription_id in bench.made:
        await subscriptions.delete(store.pool, subscription_id)


def ids(events: list[FeedEvent]) -> list[str]:
    return [str(event.event_id) for event in events]


# --- delivery -----------------------------------------------------------------------------------


async def test_events_arrive_one_at_a_time_in_feed_order_signed_with_the_secret(
    bench: Bench,
) -> None:
    # given
    sub = await bench.subscribe()
    resource_id = await bench.activity()
    expected = await bench.feed_after(sub.position)
    # when
    handled = await bench.deliver()
    # then
    requests = bench.receiver.requests
    assert handled >= len(expected)
    assert [r.body for r in requests] == [msgspec.json.encode(e) for e in expected]
    ours = [e for e in expected if e.stream_id == resource_id]
    assert [e.type for e in ours] == [
        "resource.registered",
        "booking.created",
        "booking.created",
        "booking.cancelled",
    ]
    assert [e.event_id for e in ours] == [event_id(resource_id, v) for v in (1, 2, 3, 4)]
    now = bench.clock().timestamp()
    for request, event in zip(requests, expected, strict=True):
        assert verify(sub.secret, request.headers, request.body, now=now)
        assert not verify(secrets.token_urlsafe(32), request.headers, request.body, now=now)
        assert request.headers["bookings-event-id"] == str(event.event_id)
        assert request.headers["bookings-subscription-id"] == str(sub.subscription_id)
        assert request.headers["bookings-timestamp"] == str(int(now))
        assert request.headers["content-type"] == "application/json"
    assert bench.receiver.most_in_flight == 1
    assert (await bench.state(sub)).position == expected[-1].position
    # nothing new: nothing delivered again
    await bench.deliver()
    assert len(requests) == len(expected)


async def test_a_receiver_gets_only_the_types_it_chose_and_its_cursor_passes_the_others(
    bench: Bench,
) -> None:
    cancellations = await bench.subscribe(event_types=["booking.cancelled"])
    elsewhere = Receiver()
    await elsewhere.start()
    retirements = await bench.subscribe(elsewhere.url, event_types=["resource.retired"])
    try:
        resource_id = await bench.activity()
        expected = await bench.feed_after(cancellations.position)

        await bench.deliver()

        cancelled = [e for e in expected if e.type == "booking.cancelled"]
        assert bench.receiver.event_ids() == ids(cancelled)
        assert [e.stream_id for e in cancelled] == [resource_id]
        assert elsewhere.requests == []
        for sub in (cancellations, retirements):
            assert (await bench.state(sub)).position == expected[-1].position
    finally:
        await elsewhere.stop()


@pytest.mark.parametrize(
    ("status", "delivered"),
    [
        *[(200, True), (202, True), (204, True), (299, True)],
        *[(301, False), (304, False), (400, False), (410, False), (500, False), (503, False)],
    ],
)
async def test_only_a_2xx_answer_counts_as_delivered(
    bench: Bench, status: int, delivered: bool
) -> None:
    bench.receiver.status = status
    sub = await bench.subscribe()
    await bench.commands.register_resource(RegisterResource(name=f"Room {uuid4()}"))
    (event,) = await bench.feed_after(sub.position)

    await bench.deliver()

    view = await bench.state(sub)
    assert bench.receiver.event_ids() == [str(event.event_id)]
    if delivered:
        assert (view.position, view.failures, view.last_error) == (event.position, 0, None)
    else:
        assert (view.position, view.failures) == (sub.position, 1)
        assert (view.last_error, view.failed_position) == (f"HTTP {status}", event.position)


# --- retries, dead letter, redrive ----------------------------------------------------------------


async def test_a_failed_delivery_is_retried_after_a_doubling_wait_then_goes_on(
    bench: Bench,
) -> None:
    config = replace(CONFIG, max_failures=8)
    bench.receiver.status = 500
    sub = await bench.subscribe()
    await bench.activity()
    expected = await bench.feed_after(sub.position)
    first = expected[0]

    for failures, wait in [(1, 1), (2, 2), (3, 4)]:
        await bench.deliver(config)
        view = await bench.state(sub)
        assert len(bench.receiver.requests) == failures
        assert (view.status, view.failures, view.position) == ("active", failures, sub.position)
        assert (view.last_error, view.failed_position) == ("HTTP 500", first.position)
        assert view.next_attempt_at == bench.clock() + wait * SECOND
        # not before the wait is over
        bench.clock.advance(wait * SECOND - timedelta(microseconds=1))
        await bench.deliver(config)
        assert len(bench.receiver.requests) == failures
        bench.clock.advance(timedelta(microseconds=1))

    bench.receiver.status = 200
    await bench.deliver(config)

    assert bench.receiver.event_ids() == [str(first.event_id)] * 3 + ids(expected)
    view = await bench.state(sub)
    assert (view.status, view.failures, view.position) == ("active", 0, expected[-1].position)
    assert (view.last_error, view.failed_position) == (None, None)


async def test_timeouts_and_refused_connections_count_as_failures(bench: Bench) -> None:
    bench.receiver.hold = asyncio.Event()  # never answers
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    slow = await bench.subscribe()
    gone = await bench.subscribe(f"http://127.0.0.1:{closed_port}/hooks")
    await bench.commands.register_resource(RegisterResource(name=f"Room {uuid4()}"))
    (event,) = await bench.feed_after(slow.position)

    await bench.deliver(replace(CONFIG, timeout=0.2, lease=SECOND))

    slow_view, gone_view = await bench.state(slow), await bench.state(gone)
    assert (slow_view.failures, slow_view.last_error) == (1, "no answer within 0.2 s")
    assert gone_view.failures == 1
    assert gone_view.last_error
    assert gone_view.last_error.startswith("ConnectError")
    for view in (slow_view, gone_view):
        assert (view.position, view.failed_position) == (slow.position, event.position)


async def test_after_too_many_failures_the_subscription_is_dead_and_skips_nothing(
    bench: Bench,
) -> None:
    sub = await bench.subscribe()
    await bench.activity()
    first = (await bench.feed_after(sub.position))[0]

    await bench.until_dead()

    view = await bench.state(sub)
    assert (view.status, view.failures, view.last_error) == ("dead", 3, "HTTP 500")
    assert (view.position, view.failed_position) == (sub.position, first.position)
    assert bench.receiver.event_ids() == [str(first.event_id)] * 3
    # dead: no more attempts, however long one waits, even once the receiver is back
    bench.receiver.status = 200
    bench.clock.advance(timedelta(days=1))
    await bench.deliver()
    assert len(bench.receiver.requests) == 3
    assert (await bench.state(sub)).status == "dead"


async def test_a_redriven_dead_letter_delivers_from_the_failed_event_on(bench: Bench) -> None:
    sub = await bench.subscribe()
    await bench.activity()
    expected = await bench.feed_after(sub.position)
    await bench.until_dead()
    bench.receiver.status, bench.receiver.requests = 200, []

    redriven = await subscriptions.redrive(bench.pool, sub.subscription_id, bench.clock())
    assert redriven is not None
    assert (redriven.status, redriven.failures) == ("active", 0)
    assert redriven.next_attempt_at == bench.clock()
    await bench.deliver()

    assert bench.receiver.event_ids() == ids(expected)
    view = await bench.state(sub)
    assert (view.status, view.failures) == ("active", 0)
    assert (view.position, view.failed_position) == (expected[-1].position, None)


# --- replay and at-least-once -------------------------------------------------------------------


async def test_a_replay_delivers_again_from_any_position_with_the_same_event_ids(
    bench: Bench,
) -> None:
    sub = await bench.subscribe()
    await bench.activity()
    expected = await bench.feed_after(sub.position)
    await bench.deliver()
    first_bodies = [r.body for r in bench.receiver.requests]

    for after, again in [(sub.position, expected), (expected[1].position, expected[2:])]:
        bench.receiver.requests = []
        await subscriptions.replay(bench.pool, sub.subscription_id, after, bench.clock())
        await bench.deliver()
        assert bench.receiver.event_ids() == ids(again)
    assert [r.body for r in bench.receiver.requests] == first_bodies[2:]  # the very same events

    # 0: from the first event of the log (a batch at a time)
    bench.receiver.requests = []
    await subscriptions.replay(bench.pool, sub.subscription_id, 0, bench.clock())
    await bench.deliver(replace(CONFIG, batch=3))
    assert bench.receiver.event_ids() == ids(await bench.feed_after(0))[:3]


class Crash(BaseException):
    """The delivering process stops dead."""


class CrashAfterSending(httpx.AsyncBaseTransport):
    """Sends the request for real, then the process dies before it hears the answer."""

    def __init__(self) -> None:
        self.transport = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.transport.handle_async_request(request)
        await response.aclose()
        raise Crash

    async def aclose(self) -> None:
        await self.transport.aclose()


async def test_a_crash_between_sending_and_moving_the_cursor_delivers_the_event_again(
    bench: Bench,
) -> None:
    sub = await bench.subscribe()
    await bench.activity()
    expected = await bench.feed_after(sub.position)

    async with httpx.AsyncClient(transport=CrashAfterSending()) as crashing:
        with pytest.raises(Crash):
            await deliver_due(bench.pool, bench.store, crashing, bench.clock, uuid4())
    assert bench.receiver.event_ids() == ids(expected[:1])
    assert (await bench.state(sub)).position == sub.position

    await bench.deliver()  # the next process

    assert bench.receiver.event_ids() == ids([expected[0], *expected])  # the same id, twice


async def test_a_subscription_held_by_a_stopped_process_waits_for_its_lease_to_run_out(
    bench: Bench,
) -> None:
    sub = await bench.subscribe()
    await bench.activity()
    expected = await bench.feed_after(sub.position)
    stopped = uuid4()
    await bench.pool.execute(
        "UPDATE subscriptions SET lease_owner = $2, lease_until = $3 WHERE subscription_id = $1",
        sub.subscription_id,
        stopped,
        bench.clock() + CONFIG.lease,
    )

    await bench.deliver()
    assert bench.receiver.requests == []

    bench.clock.advance(CONFIG.lease + SECOND)
    await bench.deliver()
    assert bench.receiver.event_ids() == ids(expected)
    # the process that lost its lease can no longer move the cursor
    moved = await subscriptions.advance(
        bench.pool,
        sub.subscription_id,
        stopped,
        written=expected[-1].position,
        to=sub.position,
        now=bench.clock(),
        lease_until=bench.clock() + CONFIG.lease,
    )
    assert not moved
    assert (await bench.state(sub)).position == expected[-1].position


async def test_two_processes_never_deliver_to_one_subscription_at_the_same_time(
    bench: Bench,
) -> None:
    bench.receiver.delay = 0.02
    sub = await bench.subscribe()
    await bench.activity(bookings=5)
    expected = await bench.feed_after(sub.position)
    config = replace(CONFIG, batch=2)

    async def process() -> None:
        owner = uuid4()
        while (await bench.state(sub)).position != expected[-1].position:
            store, http, clock = bench.store, bench.http, bench.clock
            if not await deliver_due(bench.pool, store, http, clock, owner, config=config):
                await asyncio.sleep(0.005)

    await asyncio.wait_for(asyncio.gather(process(), process()), timeout=60)

    assert bench.receiver.event_ids() == ids(expected)  # each once, in order
    assert bench.receiver.most_in_flight == 1


async def test_a_replay_during_a_delivery_is_not_undone_by_it(bench: Bench) -> None:
    bench.receiver.hold = asyncio.Event()
    sub = await bench.subscribe()
    await bench.activity()
    expected = await bench.feed_after(sub.position)
    delivering = asyncio.create_task(bench.deliver())
    await asyncio.wait_for(bench.receiver.arrived.wait(), timeout=10)

    await subscriptions.replay(bench.pool, sub.subscription_id, expected[2].position, bench.clock())
    bench.receiver.hold.set()
    await asyncio.wait_for(delivering, timeout=10)

    assert bench.receiver.event_ids() == ids(expected[:1])
    assert (await bench.state(sub)).position == expected[2].position
    await bench.deliver()
    assert bench.receiver.event_ids() == ids(expected[:1]) + ids(expected[3:])


# --- deliveries and commands --------------------------------------------------------------------


async def test_a_hanging_receiver_holds_back_neither_bookings_nor_the_feed(bench: Bench) -> None:
    bench.receiver.hold = asyncio.Event()
    sub = await bench.subscribe()
    resource_id = await bench.commands.register_resource(RegisterResource(f"Room {uuid4()}"))
    config = replace(CONFIG, timeout=120, lease=timedelta(minutes=5))
    delivering = asyncio.create_task(bench.deliver(config))
    await asyncio.wait_for(bench.receiver.arrived.wait(), timeout=10)

    # when: bookings are made while the receiver holds the delivery
    booked = [await asyncio.wait_for(bench.book(resource_id, i), timeout=30) for i in range(5)]

    # then: they are done, and in the feed, while the delivery still waits
    assert not delivering.done()
    created = [
        e.data["booking_id"]
        for e in await bench.feed_after(sub.position)
        if e.type == "booking.created" and e.stream_id == resource_id
    ]
    assert created == booked
    bench.receiver.hold.set()
    await asyncio.wait_for(delivering, timeout=10)
    await bench.deliver(config)
    assert bench.receiver.event_ids() == ids(await bench.feed_after(sub.position))


class FlakyStore(EventStore):
    """The event store, whose feed fails the first `failures` reads."""

    def __init__(self, store: EventStore, failures: int) -> None:
        super().__init__(store.pool, store.mapper)
        self.failures = failures

    async def read_feed(
        self, after: int = 0, limit: int = 1000, conn: Any = None
    ) -> list[RecordedEvent]:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the database went away for a moment")
        return await super().read_feed(after, limit, conn)


async def test_keep_delivering_delivers_in_the_background_and_outlives_errors(
    bench: Bench,
) -> None:
    sub = await bench.subscribe()
    flaky = FlakyStore(bench.store, failures=2)
    loop = asyncio.create_task(
        keep_delivering(
            bench.pool, flaky, 0.01, clock=bench.clock, config=CONFIG, client=bench.http
        )
    )
    try:
        await bench.activity()
        expected = await bench.feed_after(sub.position)
        async with asyncio.timeout(30):
            while bench.receiver.event_ids() != ids(expected):
                assert len(bench.receiver.requests) <= len(expected)
                await asyncio.sleep(0.01)
        assert flaky.failures == 0
        assert not loop.done()
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    assert loop.cancelled()


# --- backoff ------------------------------------------------------------------------------------


def test_the_wait_doubles_from_the_base_up_to_the_cap() -> None:
    config = DeliveryConfig(backoff_base=SECOND, backoff_cap=timedelta(minutes=10), jitter=0)
    waits = [backoff(n, config).total_seconds() for n in range(1, 13)]
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]
    assert backoff(10_000, config) == timedelta(minutes=10)
    weekly = DeliveryConfig(backoff_base=timedelta(days=1), backoff_cap=timedelta(days=7))
    assert backoff(10_000, replace(weekly, jitter=0)) == timedelta(days=7)


def test_jitter_shortens_the_wait_by_at_most_its_fraction() -> None:
    config = DeliveryConfig(backoff_base=10 * SECOND, jitter=0.2)
    assert backoff(1, config, rand=lambda: 0.0) == 10 * SECOND
    assert backoff(1, config, rand=lambda: 0.5) == 9 * SECOND
    assert backoff(1, config, rand=lambda: 1.0) == 8 * SECOND
    assert len({backoff(3, config) for _ in range(20)}) > 1


@pytest.mark.parametrize(
    "changes",
    [
        {"timeout": 40.0},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"batch": 0},
        {"max_failures": 0},
        {"workers": 0},
    ],
    ids=repr,
)
def test_a_config_that_cannot_work_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        DeliveryConfig(**changes)

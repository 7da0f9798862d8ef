"""End to end over HTTP: answers as of a past moment. `GET /bookings/{id}?as_of=` and
`GET /resources/{id}/availability?as_of=` answer as the service knew things then, folded from
the log; at the present moment they must agree with the read models the plain GETs use.

Changes happen at the test clock's `now`; the clock moves between them, so each change has its
own moment and the moments in between can be asked about.
"""

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from e2e.helpers import (
    Client,
    assert_invalid,
    assert_problem,
    book,
    day,
    hours,
    iso,
    iso_plus_two,
    minutes,
    new_resource,
)
from events.store import EventStore, RecordedEvent
from projections import availability as availability_view

SECOND = timedelta(seconds=1)
GAP = minutes(2)
"""How far the clock moves between two changes."""


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def booking_as_of(client: Client, booking_id: str, at: datetime) -> dict[str, Any]:
    return ok(await client.get(f"/bookings/{booking_id}", params={"as_of": iso(at)}))


async def fetch(client: Client, booking_id: str) -> dict[str, Any]:
    return ok(await client.get(f"/bookings/{booking_id}"))


async def assert_states(
    client: Client, booking_id: str, states: list[tuple[datetime, dict[str, Any]]]
) -> None:
    """At each change's moment, and until just before the next one, the booking as of then is
    the state that change left; just before the first one it did not exist yet."""
    first = states[0][0]
    response = await client.get(f"/bookings/{booking_id}", params={"as_of": iso(first - SECOND)})
    assert_invalid(response, "as_of")
    ends = [at - SECOND for at, _ in states[1:]]
    for (at, state), until in zip(states, [*ends, states[-1][0] + GAP], strict=True):
        assert await booking_as_of(client, booking_id, at) == state, f"as of {iso(at)}"
        assert await booking_as_of(client, booking_id, until) == state, f"as of {iso(until)}"


# --- a booking as of a moment ------------------------------------------------------------------


async def test_a_booking_as_of_each_moment_is_what_its_changes_had_made_it(
    client: Client, clock
) -> None:
    d = day(clock.now)
    home, away = await new_resource(client), await new_resource(client)
    clock.advance(GAP)
    states = []

    # given: created, moved in time, retitled, moved to another resource, cancelled
    created = await book(client, home, d + hours(10), d + hours(11), details="v1")
    booking_id = created["booking_id"]
    states.append((clock.now, created))
    url = f"/bookings/{booking_id}"
    changes = [
        {"start_time": iso(d + hours(12)), "end_time": iso(d + hours(13))},
        {"details": "v2"},
        {"resource_id": away, "start_time": iso(d + hours(14)), "end_time": iso(d + hours(15))},
    ]
    for change in changes:
        clock.advance(GAP)
        states.append((clock.now, ok(await client.put(url, json=change))))
    clock.advance(GAP)
    cancelled = ok(await client.delete(url, params={"reason": "Ill"}))
    states.append((clock.now, cancelled))
    clock.advance(GAP)

    # then: each state as it was; the final one equals the booking now
    assert [s["status"] for _, s in states] == ["confirmed"] * 4 + ["cancelled"]
    assert [s["resource_id"] for _, s in states] == [home] * 3 + [away] * 2
    assert len({s["start_time"] for _, s in states}) == 3
    await assert_states(client, booking_id, states)
    assert await booking_as_of(client, booking_id, clock.now) == await fetch(client, booking_id)
    assert await fetch(client, booking_id) == cancelled


async def test_a_request_as_of_each_moment_has_the_status_it_had_then(
    client: Client, clock
) -> None:
    d = day(clock.now)
    gate = await new_resource(client, requires_approval=True)
    plain = await new_resource(client)
    clock.advance(GAP)
    states = []

    # given: requested, moved to a resource without approval (confirmed there), moved back
    # (a request again), approved, then moved in time
    requested = await book(client, gate, d + hours(9), d + hours(10))
    booking_id = requested["booking_id"]
    url = f"/bookings/{booking_id}"
    states.append((clock.now, requested))
    for change in ({"resource_id": plain}, {"resource_id": gate}):
        clock.advance(GAP)
        states.append((clock.now, ok(await client.put(url, json=change))))
    clock.advance(GAP)
    states.append((clock.now, ok(await client.post(f"{url}/approve"))))
    clock.advance(GAP)
    later = {"start_time": iso(d + hours(11)), "end_time": iso(d + hours(12))}
    states.append((clock.now, ok(await client.put(url, json=later))))
    clock.advance(GAP)

    assert [(s["resource_id"], s["status"]) for _, s in states] == [
        (gate, "pending"),
        (plain, "confirmed"),
        (gate, "pending"),
        (gate, "confirmed"),
        (gate, "confirmed"),
    ]
    await assert_states(client, booking_id, states)


async def test_as_of_may_be_written_with_any_offset(client: Client, clock) -> None:
    d = day(clock.now)
    resource_id = await new_resource(client)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))
    created_at = clock.now
    clock.advance(GAP)
    url = f"/bookings/{booking['booking_id']}"
    ok(await client.put(url, json={"details": "later"}))

    response = await client.get(url, params={"as_of": iso_plus_two(created_at)})

    assert ok(response) == booking


async def test_a_booking_as_of_before_it_was_created_is_refused(client: Client, clock) -> None:
    resource_id = await new_resource(client)
    clock.advance(GAP)
    booking = await book(client, resource_id, *slot(clock.now))
    url = f"/bookings/{booking['booking_id']}"

    for before in (clock.now - SECOND, clock.now - GAP, clock.now - timedelta(days=400)):
        response = await client.get(url, params={"as_of": iso(before)})

        body = assert_invalid(response, "as_of")
        assert booking["booking_id"] in body["detail"]
    assert ok(await client.get(url, params={"as_of": iso(clock.now)})) == booking


@pytest.mark.parametrize(
    "as_of", ["yesterday", "2030-05-18T10:00:00", "1798190527", "2030-02-30T10:00:00Z", ""]
)
async def test_an_as_of_that_is_not_a_time_is_refused(client: Client, clock, as_of: str) -> None:
    resource_id = await new_resource(client)
    booking = await book(client, resource_id, *slot(clock.now))

    response = await client.get(f"/bookings/{booking['booking_id']}", params={"as_of": as_of})

    assert_invalid(response, "as_of")


async def test_an_unknown_booking_as_of_any_time_is_404(client: Client, clock) -> None:
    response = await client.get(f"/bookings/{uuid4()}", params={"as_of": iso(clock.now)})

    assert_problem(response, 404, "not-found")


def slot(now: datetime, n: int = 0) -> tuple[datetime, datetime]:
    """The n-th half hour of the day after tomorrow (from `now`)."""
    start = day(now, days=2) + minutes(30 * n)
    return start, start + minutes(30)


class Bookings:
    """Makes bookings on a day and changes them, a second apart, remembering their ids."""

    def __init__(self, client: Client, clock: Any) -> None:
        self.client, self.clock = client, clock
        self.day = day(clock.now)
        self.ids: list[str] = []

    def at(self, hour: float) -> str:
        return iso(self.day + hours(hour))

    async def new(self, resource_id: str, hour: int, **fields: Any) -> str:
        start = self.day + hours(hour)
        booked = await book(self.client, resource_id, start, start + hours(1), **fields)
        self.ids.append(booked["booking_id"])
        return str(booked["booking_id"])

    async def put(self, booking_id: str, **body: Any) -> None:
        self.clock.advance(SECOND)
        ok(await self.client.put(f"/bookings/{booking_id}", json=body))

    async def post(self, booking_id: str, action: str) -> None:
        self.clock.advance(SECOND)
        ok(await self.client.post(f"/bookings/{booking_id}/{action}"))

    async def cancel(self, booking_id: str) -> None:
        self.clock.advance(SECOND)
        ok(await self.client.delete(f"/bookings/{booking_id}", headers=OWNER))


OWNER = {"X-Actor-Role": "owner"}


async def test_as_of_now_is_the_booking_as_it_is_for_every_kind_of_history(
    client: Client, clock
) -> None:
    """Folding the log (`as_of`) and the bookings table (plain GET) must agree on every
    booking: a change that one of them misses shows here."""
    plain = await new_resource(client, capacity=3)
    other = await new_resource(client, capacity=3)
    gate = await new_resource(client, requires_approval=True, capacity=3)
    b = Bookings(client, clock)

    # given: bookings with every kind of history on resources with and without approval
    await b.new(plain, 1)
    await b.new(plain, 2, details="kept")
    await b.put(await b.new(plain, 3), start_time=b.at(20), end_time=b.at(22))
    await b.put(await b.new(plain, 4, details="old"), details="new")
    await b.put(await b.new(plain, 5), end_time=b.at(7))
    await b.cancel(await b.new(plain, 6))
    await b.put(await b.new(plain, 7, details="moving"), resource_id=other)
    there = {"start_time": b.at(30), "end_time": b.at(31), "details": "there"}
    await b.put(await b.new(plain, 8), resource_id=other, **there)
    round_trip = await b.new(plain, 9)
    await b.put(round_trip, resource_id=other)
    await b.put(round_trip, resource_id=plain, end_time=b.at(11))
    moved_then_cancelled = await b.new(plain, 10)
    await b.put(moved_then_cancelled, resource_id=other)
    await b.cancel(moved_then_cancelled)
    await b.post(await b.new(gate, 1), "approve")
    await b.post(await b.new(gate, 2), "reject")
    await b.cancel(await b.new(gate, 3))
    await b.new(gate, 4, details="still waiting")
    await b.put(await b.new(plain, 12), resource_id=gate)
    await b.put(await b.new(gate, 5, details="asked"), resource_id=plain, details="moved")
    approved_then_moved = await b.new(gate, 6)
    await b.post(approved_then_moved, "approve")
    await b.put(approved_then_moved, start_time=b.at(40), end_time=b.at(41))
    # bookings that have started: one completed, one a no-show
    soon = clock.now + minutes(30)
    started = [await book(client, other, soon, soon + hours(1)) for _ in range(2)]
    b.ids += [s["booking_id"] for s in started]
    clock.advance(hours(1))
    await b.post(b.ids[-2], "complete")
    await b.post(b.ids[-1], "no-show")
    clock.advance(SECOND)

    # then
    for booking_id in b.ids:
        now = await fetch(client, booking_id)

        assert await booking_as_of(client, booking_id, clock.now) == now, booking_id
    statuses = {(await fetch(client, i))["status"] for i in b.ids}
    assert statuses == {"confirmed", "pending", "cancelled", "rejected", "completed", "no_show"}


# --- availability as of a moment -----------------------------------------------------------------


async def availability(
    client: Client,
    resource_id: str,
    start: datetime,
    end: datetime,
    *,
    as_of: datetime | None = None,
    duration: int | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"from": iso(start), "to": iso(end)}
    if as_of is not None:
        params["as_of"] = iso(as_of)
    if duration is not None:
        params["duration"] = duration
    return ok(await client.get(f"/resources/{resource_id}/availability", params=params))


def spans(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(item["start_time"], item["end_time"]) for item in items]


def busy_slot(booking: dict[str, Any]) -> dict[str, Any]:
    keys = ("booking_id", "start_time", "end_time", "status")
    return {k: booking[k] for k in keys}


def done(clock: Any) -> datetime:
    """The moment of the change just made; the clock moves on before the next one."""
    moment: datetime = clock.now
    clock.advance(GAP)
    return moment


@pytest.fixture(params=[1, 2, availability_view.AS_OF_PAGE])
def as_of_page(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, list[int | None]]:
    """Folds `as_of` read this many events at a time; and the limits of every stream read."""
    monkeypatch.setattr(availability_view, "AS_OF_PAGE", request.param)
    limits: list[int | None] = []
    read = EventStore.read_stream

    async def recorded(
        self: EventStore, stream_id: UUID, after_version: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        limits.append(limit)
        return await read(self, stream_id, after_version, limit)

    monkeypatch.setattr(EventStore, "read_stream", recorded)
    return request.param, limits


async def test_availability_as_of_each_moment_shows_busy_closed_and_free_time_as_it_was(
    client: Client, clock, as_of_page: tuple[int, list[int | None]]
) -> None:
    d = day(clock.now)
    window = (d + hours(9), d + hours(17))
    resource_id = await new_resource(client, start_step_minutes=60)
    url = f"/resources/{resource_id}"
    registered = done(clock)

    # given: two bookings, one cancelled; a closure added and lifted; capacity raised; a second
    # booking beside the first; the resource retired
    first = await book(client, resource_id, d + hours(10), d + hours(11))
    second = await book(client, resource_id, d + hours(12), d + hours(13))
    booked = done(clock)
    ok(await client.delete(f"/bookings/{first['booking_id']}"))
    cancelled = done(clock)
    works = {"start_time": iso(d + hours(14)), "end_time": iso(d + hours(16)), "reason": "Works"}
    closure = ok(await client.post(f"{url}/closures", json=works), 201)
    closed = done(clock)
    reopen = await client.delete(f"{url}/closures/{closure['closure_id']}")
    assert reopen.status_code == 204, reopen.text
    reopened = done(clock)
    ok(await client.patch(url, json={"capacity": 2}))
    widened = done(clock)
    beside = await book(client, resource_id, d + hours(12), d + hours(13))
    rebooked = done(clock)
    params = {"from": iso(window[0]), "to": iso(window[1]), "duration": 60}
    before_retiring = ok(await client.get(f"{url}/availability", params=params))
    still_open = done(clock)
    ok(await client.delete(url))
    retired = done(clock)

    # then: at each moment, and until the next change, what there was then
    def at(*hour_spans: tuple[int, int]) -> list[tuple[str, str]]:
        return [(iso(d + hours(a)), iso(d + hours(b))) for a, b in hour_spans]

    def starts(*hour_list: int) -> list[tuple[str, str]]:
        return at(*((h, h + 1) for h in hour_list))

    all_day, all_starts = at((9, 17)), starts(*range(9, 17))
    not_second = at((9, 12), (13, 17))
    starts_not_second = starts(9, 10, 11, 13, 14, 15, 16)
    both = sorted([second, beside], key=lambda b: b["booking_id"])
    expected = [
        (registered, 1, [], [], all_day, all_starts),
        (booked, 1, [first, second], [], at((9, 10), (11, 12), (13, 17)),
         starts(9, 11, 13, 14, 15, 16)),
        (cancelled, 1, [second], [], not_second, starts_not_second),
        (closed, 1, [second], [closure], at((9, 12), (13, 14), (16, 17)),
         starts(9, 10, 11, 13, 16)),
        (reopened, 1, [second], [], not_second, starts_not_second),
        (widened, 2, [second], [], all_day, all_starts),
        (rebooked, 2, both, [], not_second, starts_not_second),
        (retired, 2, both, [], [], []),  # a retired resource takes nothing new
    ]  # fmt: skip
    for moment, capacity, busy, closures, free, bookable in expected:
        for when in (moment, moment + GAP - SECOND):
            view = ok(await client.get(f"{url}/availability", params=params | {"as_of": iso(when)}))

            assert view["capacity"] == capacity, iso(when)
            assert view["busy"] == [busy_slot(b) for b in busy], iso(when)
            assert view["closures"] == closures, iso(when)
            assert spans(view["free"]) == free, iso(when)
            assert spans(view["bookable"]) == bookable, iso(when)
            assert (view["from"], view["to"]) == (params["from"], params["to"])
    # The present as the log tells it is what the read models tell.
    then = params | {"as_of": iso(still_open)}
    assert ok(await client.get(f"{url}/availability", params=then)) == before_retiring
    now = params | {"as_of": iso(clock.now)}
    assert ok(await client.get(f"{url}/availability", params=now)) == ok(
        await client.get(f"{url}/availability", params=params)
    )
    # Each fold read the stream a page at a time (its 9 events over several pages, unless
    # a page holds them all).
    page, limits = as_of_page
    assert set(limits) == {page}


async def test_availability_as_of_without_duration_has_no_bookable_times(
    client: Client, clock
) -> None:
    d = day(clock.now)
    resource_id = await new_resource(client)
    booking = await book(client, resource_id, d + hours(10), d + hours(11))
    clock.advance(GAP)

    view = await availability(client, resource_id, d, d + hours(24), as_of=clock.now)

    assert view == await availability(client, resource_id, d, d + hours(24))
    assert view["bookable"] is None
    assert view["busy"] == [busy_slot(booking)]


async def test_a_request_is_busy_as_of_a_moment_before_its_decision_was_due_and_free_after(
    client: Client, clock
) -> None:
    d = day(clock.now)
    window = (d + hours(9), d + hours(12))
    resource_id = await new_resource(client, requires_approval=True, approval_window_minutes=60)
    request = await book(client, resource_id, d + hours(10), d + hours(11))
    asked = clock.now
    clock.advance(minutes(61))  # nobody decided within the hour; nothing settles it here

    before_due = await availability(client, resource_id, *window, as_of=asked + minutes(30))
    after_due = await availability(client, resource_id, *window, as_of=asked + minutes(61))

    assert before_due["busy"] == [busy_slot(request)]
    assert busy_slot(request)["status"] == "pending"
    assert spans(before_due["free"]) == [
        (iso(d + hours(9)), iso(d + hours(10))),
        (iso(d + hours(11)), iso(d + hours(12))),
    ]
    assert after_due["busy"] == []
    assert spans(after_due["free"]) == [(iso(window[0]), iso(window[1]))]
    assert after_due == await availability(client, resource_id, *window)


async def test_availability_as_of_before_the_resource_existed_is_refused(
    client: Client, clock
) -> None:
    d = day(clock.now)
    resource_id = await new_resource(client)
    registered = clock.now
    clock.advance(GAP)

    for before in (registered - SECOND, registered - timedelta(days=30)):
        response = await client.get(
            f"/resources/{resource_id}/availability",
            params={"from": iso(d), "to": iso(d + hours(24)), "as_of": iso(before)},
        )

        body = assert_invalid(response, "as_of")
        assert resource_id in body["detail"]
    view = await availability(client, resource_id, d, d + hours(24), as_of=registered)
    assert spans(view["free"]) == [(iso(d), iso(d + hours(24)))]


@pytest.mark.parametrize("as_of", ["soon", "2030-05-18T10:00:00", "1798190527"])
async def test_availability_with_an_as_of_that_is_not_a_time_is_refused(
    client: Client, clock, as_of: str
) -> None:
    d = day(clock.now)
    resource_id = await new_resource(client)

    response = await client.get(
        f"/resources/{resource_id}/availability",
        params={"from": iso(d), "to": iso(d + hours(24)), "as_of": as_of},
    )

    assert_invalid(response, "as_of")

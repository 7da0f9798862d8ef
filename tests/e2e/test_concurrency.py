"""Races over real HTTP: many clients, several server processes, one resource (or a few).

Each race ends by reading the outcome back: the answers must agree with the bookings listing
and the availability view, and no instant may ever hold more bookings than the capacity.
"""

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest

from e2e.helpers import assert_problem
from servers import three_processes

REQUESTS = 60
WINDOW = timedelta(days=5)
"""How far the availability checks look from the start of a test's day."""


@pytest.fixture(scope="module")
def servers(database_url: str) -> Iterator[list[str]]:
    """Two `bookings serve` instances (one with two workers): three server processes."""
    with three_processes(database_url) as urls:
        yield urls


def client() -> httpx.AsyncClient:
    """An HTTP client that lets every request of a race be in flight at once."""
    return httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=2 * REQUESTS))


async def register(http: httpx.AsyncClient, base: str, capacity: int = 1, **rules: Any) -> str:
    body = {"name": "Contested", "capacity": capacity} | rules
    r = await http.post(f"{base}/resources", json=body)
    assert r.status_code == 201, r.text
    resource_id: str = r.json()["resource_id"]
    return resource_id


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def booking_json(resource_id: str, start: datetime, end: datetime) -> dict[str, str]:
    return {
        "resource_id": resource_id,
        "start_time": iso(start),
        "end_time": iso(end),
        "client_id": str(uuid4()),
    }


async def create_each(
    http: httpx.AsyncClient,
    servers: list[str],
    resource_id: str,
    slots: Sequence[tuple[datetime, datetime]],
) -> list[httpx.Response]:
    """Ask for a booking of each slot, all at once, spread over the server processes."""
    return await asyncio.gather(
        *(
            http.post(
                f"{servers[i % len(servers)]}/bookings", json=booking_json(resource_id, *slot)
            )
            for i, slot in enumerate(slots)
        )
    )


async def race(
    servers: list[str], resource_id: str, slots: list[tuple[datetime, datetime]]
) -> list[httpx.Response]:
    async with client() as http:
        return await create_each(http, servers, resource_id, slots)


async def book_each(
    http: httpx.AsyncClient,
    servers: list[str],
    resource_id: str,
    slots: Sequence[tuple[datetime, datetime]],
) -> list[dict[str, Any]]:
    """Create a booking of each slot (all at once); every one must be accepted."""
    answers = await create_each(http, servers, resource_id, slots)
    assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
    return [r.json() for r in answers]


async def approve_each(
    http: httpx.AsyncClient, servers: list[str], booking_ids: Sequence[str]
) -> list[httpx.Response]:
    """Owners approve the bookings all at once, each through another server process."""
    return await asyncio.gather(
        *(
            http.post(
                f"{servers[i % len(servers)]}/bookings/{booking_id}/approve",
                headers={"X-Actor": f"owner-{i}"},
            )
            for i, booking_id in enumerate(booking_ids)
        )
    )


async def holding(database_url: str, resource_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(
            "SELECT booking_id, start_time, end_time FROM bookings WHERE resource_id = $1"
            " AND status IN ('pending', 'confirmed') ORDER BY start_time",
            resource_id,
        )
    finally:
        await conn.close()


async def listed(
    http: httpx.AsyncClient, base: str, resource_id: str, status: str
) -> list[dict[str, Any]]:
    """The resource's bookings with this status, as GET /bookings lists them."""
    r = await http.get(
        f"{base}/bookings", params={"resource_id": resource_id, "status": status, "limit": 500}
    )
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["next_cursor"] is None
    items: list[dict[str, Any]] = page["items"]
    return items


async def availability(
    http: httpx.AsyncClient, base: str, resource_id: str, start: datetime
) -> dict[str, Any]:
    """GET /resources/{id}/availability over WINDOW from `start`."""
    r = await http.get(
        f"{base}/resources/{resource_id}/availability",
        params={"from": iso(start), "to": iso(start + WINDOW)},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def fetch(http: httpx.AsyncClient, base: str, booking_id: str) -> dict[str, Any]:
    r = await http.get(f"{base}/bookings/{booking_id}")
    assert r.status_code == 200, r.text
    booking: dict[str, Any] = r.json()
    return booking


async def history(http: httpx.AsyncClient, base: str, booking_id: str) -> list[dict[str, Any]]:
    r = await http.get(f"{base}/bookings/{booking_id}/history")
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def most_at_once(spans: Sequence[tuple[datetime, datetime]]) -> int:
    """The most spans that overlap at one instant (touching spans do not overlap)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def spans_of(bookings: Sequence[dict[str, Any]]) -> list[tuple[datetime, datetime]]:
    return [(when(b["start_time"]), when(b["end_time"])) for b in bookings]


def overlaps(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def day_ahead() -> datetime:
    tomorrow = datetime.now(UTC) + timedelta(days=2)
    return tomorrow.replace(hour=8, minute=0, second=0, microsecond=0)


# --- creating bookings --------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [1, 3])
async def test_same_slot_from_many_clients_has_exactly_capacity_winners(
    servers: list[str], database_url: str, capacity: int
) -> None:
    async with httpx.AsyncClient() as http:
        resource_id = await register(http, servers[0], capacity)
    start = day_ahead()
    slot = (start, start + timedelta(hours=1))

    answers = await race(servers, resource_id, [slot] * REQUESTS)

    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] * capacity + [409] * (REQUESTS - capacity)
    winners = {r.json()["booking_id"] for r in answers if r.status_code == 201}
    for loser in (r for r in answers if r.status_code == 409):
        assert_problem(loser, 409, "slot-taken")
        assert sorted(loser.json()["conflicting_booking_ids"]) == sorted(winners)
    rows = await holding(database_url, resource_id)
    assert {str(row["booking_id"]) for row in rows} == winners
    async with httpx.AsyncClient() as http:
        seen = await availability(http, servers[-1], resource_id, start)
    assert {b["booking_id"] for b in seen["busy"]} == winners
    assert not any(overlaps(slot, span) for span in spans_of(seen["free"])), "a full slot is free"


@pytest.mark.parametrize("capacity", [1, 3])
async def test_overlapping_slots_never_exceed_capacity(
    servers: list[str], database_url: str, capacity: int
) -> None:
    async with httpx.AsyncClient() as http:
        resource_id = await register(http, servers[0], capacity)
    base = day_ahead()
    # Overlapping slots on a quarter-hour grid within eight hours: plenty of collisions.
    slots = [
        (
            base + timedelta(minutes=15 * (i * 7 % 29)),
            base + timedelta(minutes=15 * (i * 7 % 29 + 2 + i % 5)),
        )
        for i in range(REQUESTS)
    ]

    answers = await race(servers, resource_id, slots)

    assert {r.status_code for r in answers} <= {201, 409}, [r.text for r in answers]
    rows = await holding(database_url, resource_id)
    won = {r.json()["booking_id"] for r in answers if r.status_code == 201}
    assert won == {str(row["booking_id"]) for row in rows}
    assert 0 < len(won) < REQUESTS
    assert most_at_once([(row["start_time"], row["end_time"]) for row in rows]) <= capacity
    for loser in (r for r in answers if r.status_code == 409):
        assert set(loser.json()["conflicting_booking_ids"]) <= won


@pytest.mark.parametrize(
    ("before", "after"), [(0, 30), (15, 30)], ids=["after-only", "before-and-after"]
)
async def test_racing_neighbours_never_come_closer_than_the_buffers(
    servers: list[str], before: int, after: int
) -> None:
    gap = timedelta(minutes=before + after)
    base = day_ahead()
    # Half-hour and three-quarter-hour slots starting every quarter hour over six hours: most
    # pairs touch or nearly touch, which the buffers forbid.
    slots = [
        (
            base + timedelta(minutes=15 * (i * 7 % 24)),
            base + timedelta(minutes=15 * (i * 7 % 24) + 30 + 15 * (i % 2)),
        )
        for i in range(REQUESTS)
    ]
    async with client() as http:
        resource_id = await register(
            http, servers[0], buffer_before_minutes=before, buffer_after_minutes=after
        )

        answers = await race(servers, resource_id, slots)

        confirmed = await listed(http, servers[1], resource_id, "confirmed")
        seen = await availability(http, servers[-1], resource_id, base)

    assert {r.status_code for r in answers} <= {201, 409}, [r.text for r in answers]
    won = {r.json()["booking_id"]: r.json() for r in answers if r.status_code == 201}
    assert 1 < len(won) < REQUESTS
    assert {b["booking_id"] for b in confirmed} == set(won)
    assert {b["booking_id"] for b in seen["busy"]} == set(won)
    ordered = sorted(spans_of(confirmed))
    for (_, earlier_end), (later_start, _) in itertools.pairwise(ordered):
        assert later_start - earlier_end >= gap, (earlier_end, later_start)
    # Every refusal names winners that really are too close to the refused slot.
    for slot, answer in zip(slots, answers, strict=True):
        if answer.status_code == 409:
            conflicts = assert_problem(answer, 409, "slot-taken")["conflicting_booking_ids"]
            assert conflicts
            assert set(conflicts) <= set(won)
            for conflict in conflicts:
                start, end = spans_of([won[conflict]])[0]
                assert overlaps((start - gap, end + gap), slot), (conflict, slot)
    # The free time keeps the buffers around every booking.
    widened = [(s - timedelta(minutes=before), e + timedelta(minutes=after)) for s, e in ordered]
    for free in spans_of(seen["free"]):
        assert not any(overlaps(free, busy) for busy in widened), free


# --- approving pending bookings -----------------------------------------------------------------


@pytest.mark.parametrize("capacity", [1, 3])
async def test_racing_approvals_of_overlapping_requests_confirm_exactly_capacity(
    servers: list[str], capacity: int
) -> None:
    base = day_ahead()
    core = (base + timedelta(hours=1), base + timedelta(hours=3))
    # Requests of different shapes that all cover `core`: any capacity + 1 of them collide.
    slots = [
        (base + timedelta(minutes=15 * (i % 5)), base + timedelta(hours=3, minutes=15 * (i % 3)))
        for i in range(REQUESTS)
    ]
    async with client() as http:
        resource_id = await register(
            http, servers[0], capacity, requires_approval=True, pending_holds_slot=False
        )
        requested = await book_each(http, servers, resource_id, slots)
        assert {b["status"] for b in requested} == {"pending"}
        ids = [b["booking_id"] for b in requested]

        answers = await approve_each(http, servers, ids)

        confirmed = await listed(http, servers[1], resource_id, "confirmed")
        pending = await listed(http, servers[-1], resource_id, "pending")
        seen = await availability(http, servers[0], resource_id, base)

    assert sorted(r.status_code for r in answers) == [200] * capacity + [409] * (
        REQUESTS - capacity
    )
    winners = {r.json()["booking_id"] for r in answers if r.status_code == 200}
    assert {r.json()["status"] for r in answers if r.status_code == 200} == {"confirmed"}
    for loser in (r for r in answers if r.status_code == 409):
        body = assert_problem(loser, 409, "slot-taken")
        assert sorted(body["conflicting_booking_ids"]) == sorted(winners)
    assert {b["booking_id"] for b in confirmed} == winners
    assert most_at_once(spans_of(confirmed)) <= capacity
    # The refused ones are still pending: the owner may decide on them later.
    assert {b["booking_id"] for b in pending} == set(ids) - winners
    assert {b["booking_id"] for b in seen["busy"]} == winners
    assert {b["status"] for b in seen["busy"]} == {"confirmed"}
    assert not any(overlaps(core, span) for span in spans_of(seen["free"]))


async def test_two_owners_approving_overlapping_requests_at_once_confirm_one(
    servers: list[str],
) -> None:
    base = day_ahead()
    pairs = REQUESTS // 2
    async with client() as http:
        resource_ids = await asyncio.gather(
            *(
                register(
                    http,
                    servers[i % len(servers)],
                    requires_approval=True,
                    pending_holds_slot=False,
                )
                for i in range(pairs)
            )
        )
        requests = [
            await book_each(
                http,
                servers,
                resource_id,
                [
                    (base, base + timedelta(hours=2)),
                    (base + timedelta(hours=1), base + timedelta(hours=3)),
                ],
            )
            for resource_id in resource_ids
        ]

        # Each pair through two different server processes, all pairs at once.
        answers = await asyncio.gather(
            *(
                http.post(f"{servers[(k + j) % len(servers)]}/bookings/{b['booking_id']}/approve")
                for k, pair in enumerate(requests)
                for j, b in enumerate(pair)
            )
        )

        confirmed = [await listed(http, servers[0], r, "confirmed") for r in resource_ids]
        busy = [(await availability(http, servers[1], r, base))["busy"] for r in resource_ids]

    for k in range(pairs):
        first, second = answers[2 * k], answers[2 * k + 1]
        assert sorted([first.status_code, second.status_code]) == [200, 409]
        winner, loser = (first, second) if first.status_code == 200 else (second, first)
        assert winner.json()["status"] == "confirmed"
        body = assert_problem(loser, 409, "slot-taken")
        assert body["conflicting_booking_ids"] == [winner.json()["booking_id"]]
        assert [b["booking_id"] for b in confirmed[k]] == [winner.json()["booking_id"]]
        assert [b["booking_id"] for b in busy[k]] == [winner.json()["booking_id"]]


async def test_one_request_approved_by_many_owners_at_once_is_approved_once(
    servers: list[str],
) -> None:
    base = day_ahead()
    async with client() as http:
        resource_id = await register(http, servers[0], requires_approval=True)
        [requested] = await book_each(
            http, servers, resource_id, [(base, base + timedelta(hours=1))]
        )
        booking_id = requested["booking_id"]

        answers = await approve_each(http, servers, [booking_id] * REQUESTS)

        events = await history(http, servers[1], booking_id)
        booking = await fetch(http, servers[-1], booking_id)

    assert sorted(r.status_code for r in answers) == [200] + [409] * (REQUESTS - 1)
    for refused in (r for r in answers if r.status_code == 409):
        body = assert_problem(refused, 409, "illegal-transition")
        assert body["booking_status"] == "confirmed"
    assert [e["type"] for e in events] == ["booking.created", "booking.approved"]
    assert booking["status"] == "confirmed"


# --- moving bookings ----------------------------------------------------------------------------


async def test_moves_racing_into_one_slot_have_exactly_one_winner(
    servers: list[str], database_url: str
) -> None:
    base = day_ahead()
    async with httpx.AsyncClient(timeout=60) as http:
        resource_id = await register(http, servers[0])
        booked = [
            await http.post(
                f"{servers[i % len(servers)]}/bookings",
                json=booking_json(
                    resource_id,
                    base + timedelta(hours=2 + i),
                    base + timedelta(hours=2 + i, minutes=30),
                ),
            )
            for i in range(REQUESTS)
        ]
        assert {r.status_code for r in booked} == {201}
        target = {"start_time": iso(base), "end_time": iso(base + timedelta(hours=1))}

        moves = await asyncio.gather(
            *(
                http.put(
                    f"{servers[i % len(servers)]}/bookings/{r.json()['booking_id']}", json=target
                )
                for i, r in enumerate(booked)
            )
        )

    statuses = sorted(r.status_code for r in moves)
    assert statuses == [200] + [409] * (REQUESTS - 1)
    winner = next(r.json()["booking_id"] for r in moves if r.status_code == 200)
    rows = await holding(database_url, resource_id)
    in_target = [str(row["booking_id"]) for row in rows if row["start_time"] == base]
    assert in_target == [winner]
    assert len(rows) == REQUESTS


async def test_moves_from_many_resources_into_one_free_slot_have_exactly_one_winner(
    servers: list[str],
) -> None:
    base = day_ahead()
    slot = (base, base + timedelta(hours=1))
    later = (base + timedelta(hours=3), base + timedelta(hours=4))
    sources = REQUESTS // 2
    async with client() as http:
        target_id = await register(http, servers[0])
        source_ids = await asyncio.gather(
            *(register(http, servers[i % len(servers)]) for i in range(sources))
        )
        # Each source holds one booking at the target slot's time and one later.
        booked = {
            b["booking_id"]: b
            for source_id in source_ids
            for b in await book_each(http, servers, source_id, [slot, later])
        }
        moves = {
            booking_id: {"resource_id": target_id}
            | (
                {}
                if when(b["start_time"]) == base
                else {"start_time": iso(slot[0]), "end_time": iso(slot[1])}
            )
            for booking_id, b in booked.items()
        }

        answers = await asyncio.gather(
            *(
                http.put(f"{servers[i % len(servers)]}/bookings/{booking_id}", json=body)
                for i, (booking_id, body) in enumerate(moves.items())
            )
        )

        after = {b: await fetch(http, servers[i % len(servers)], b) for i, b in enumerate(booked)}
        busy = {
            r: [s["booking_id"] for s in (await availability(http, servers[1], r, base))["busy"]]
            for r in [target_id, *source_ids]
        }
        winner = next((r.json()["booking_id"] for r in answers if r.status_code == 200), None)
        moved = await history(http, servers[-1], winner) if winner else []

    assert sorted(r.status_code for r in answers) == [200] + [409] * (REQUESTS - 1)
    for loser in (r for r in answers if r.status_code == 409):
        assert assert_problem(loser, 409, "slot-taken")["conflicting_booking_ids"] == [winner]
    assert after[winner]["resource_id"] == target_id
    assert spans_of([after[winner]]) == [slot]
    for booking_id, booking in after.items():
        if booking_id != winner:
            assert booking == booked[booking_id], "a refused move changed the booking"
    assert busy[target_id] == [winner]
    # Every booking is on exactly one resource, the one it says it is on.
    held = [b for ids in busy.values() for b in ids]
    assert sorted(held) == sorted(booked)
    for resource_id, ids in busy.items():
        assert all(after[b]["resource_id"] == resource_id for b in ids)
    assert [e["type"] for e in moved] == [
        "booking.created",
        "booking.moved_out",
        "booking.moved_in",
    ]


async def test_crossing_moves_between_two_resources_all_land_exactly_once(
    servers: list[str],
) -> None:
    base = day_ahead()
    half = REQUESTS // 2
    # Half-hour bookings on alternate half hours: the left ones never meet the right ones.
    left_slots = [
        (base + timedelta(hours=k), base + timedelta(hours=k, minutes=30)) for k in range(half)
    ]
    right_slots = [(s + timedelta(minutes=30), e + timedelta(minutes=30)) for s, e in left_slots]
    async with client() as http:
        left, right = await register(http, servers[0]), await register(http, servers[1])
        on_left = [b["booking_id"] for b in await book_each(http, servers, left, left_slots)]
        on_right = [b["booking_id"] for b in await book_each(http, servers, right, right_slots)]

        # Every booking swaps sides, all at once, both directions through every process.
        answers = await asyncio.gather(
            *(
                http.put(f"{servers[i % len(servers)]}/bookings/{b}", json={"resource_id": to})
                for i, (b, to) in enumerate(
                    [(b, right) for b in on_left] + [(b, left) for b in on_right]
                )
            )
        )

        now_left = (await availability(http, servers[-1], left, base))["busy"]
        now_right = (await availability(http, servers[0], right, base))["busy"]
        fetched = [
            await fetch(http, servers[i % len(servers)], b)
            for i, b in enumerate(on_left + on_right)
        ]

    assert {r.status_code for r in answers} == {200}, [
        r.text for r in answers if r.status_code != 200
    ]
    assert sorted(b["booking_id"] for b in now_left) == sorted(on_right)
    assert sorted(b["booking_id"] for b in now_right) == sorted(on_left)
    assert [b["resource_id"] for b in fetched] == [right] * half + [left] * half
    assert spans_of(fetched) == left_slots + right_slots, "a move changed the time"


async def test_one_booking_raced_to_many_resources_ends_on_exactly_one(
    servers: list[str],
) -> None:
    base = day_ahead()
    targets = 12
    async with client() as http:
        home = await register(http, servers[0])
        target_ids = await asyncio.gather(
            *(register(http, servers[i % len(servers)]) for i in range(targets))
        )
        [booking] = await book_each(http, servers, home, [(base, base + timedelta(hours=1))])
        booking_id = booking["booking_id"]

        answers = await asyncio.gather(
            *(
                http.put(
                    f"{servers[i % len(servers)]}/bookings/{booking_id}", json={"resource_id": t}
                )
                for i, t in enumerate(target_ids)
            )
        )

        final = await fetch(http, servers[1], booking_id)
        busy = {
            r: [s["booking_id"] for s in (await availability(http, servers[-1], r, base))["busy"]]
            for r in [home, *target_ids]
        }
        events = await history(http, servers[0], booking_id)

    # A move that finds the booking gone from where it looked follows it to its new resource.
    assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
    assert final["resource_id"] in target_ids
    assert {r: ids for r, ids in busy.items() if ids} == {final["resource_id"]: [booking_id]}
    # The history is one unbroken chain of moves from `home` to where the booking is now.
    assert events[0]["type"] == "booking.created"
    moves = events[1:]
    assert 1 <= len(moves) // 2 <= targets
    at = home
    for moved_out, moved_in in zip(moves[::2], moves[1::2], strict=True):
        assert (moved_out["type"], moved_in["type"]) == ("booking.moved_out", "booking.moved_in")
        assert moved_in["data"]["from_resource_id"] == at
        at = moved_out["data"]["to_resource_id"]
        assert at in target_ids
    assert at == final["resource_id"]
    targeted = [e["data"]["to_resource_id"] for e in moves[::2]]
    assert len(targeted) == len(set(targeted)), "a request moved the booking twice"


# --- a process that saw a resource before another process changed it ----------------------------


async def test_a_change_through_a_process_that_saw_an_older_state_is_applied(
    servers: list[str],
) -> None:
    # servers[-1] is a single process: it keeps what it saw of the resource in its cache.
    stale, other = servers[-1], servers[0]
    base = day_ahead()
    ten, twelve = base + timedelta(hours=2), base + timedelta(hours=4)
    async with client() as http:
        resource_id = await register(http, stale)
        [booking] = await book_each(http, [stale], resource_id, [(ten, ten + timedelta(hours=1))])
        url = f"/bookings/{booking['booking_id']}"
        moved = await http.put(
            f"{other}{url}",
            json={"start_time": iso(twelve), "end_time": iso(twelve + timedelta(hours=1))},
        )
        assert moved.status_code == 200, moved.text

        # when: moved back to ten through the process that last saw it at ten
        back = await http.put(
            f"{stale}{url}",
            json={"start_time": iso(ten), "end_time": iso(ten + timedelta(hours=1))},
        )

        now = await fetch(http, other, booking["booking_id"])
        busy = (await availability(http, other, resource_id, base))["busy"]

    assert back.status_code == 200, back.text
    assert spans_of([back.json()]) == [(ten, ten + timedelta(hours=1))]
    assert spans_of([now]) == [(ten, ten + timedelta(hours=1))]
    assert spans_of(busy) == [(ten, ten + timedelta(hours=1))]


async def test_a_setting_changed_through_a_process_that_saw_an_older_state_is_applied(
    servers: list[str],
) -> None:
    stale, other = servers[-1], servers[0]
    async with client() as http:
        resource_id = await register(http, stale, capacity=1)
        raised = await http.patch(f"{other}/resources/{resource_id}", json={"capacity": 3})
        assert raised.status_code == 200, raised.text

        # when: set back to 1 through the process that last saw capacity 1
        lowered = await http.patch(f"{stale}/resources/{resource_id}", json={"capacity": 1})

        r = await http.get(f"{other}/resources/{resource_id}")

    assert lowered.status_code == 200, lowered.text
    assert lowered.json()["capacity"] == 1
    assert r.json()["capacity"] == 1

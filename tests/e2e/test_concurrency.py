"""Races over real HTTP: many clients, several server processes, one resource."""

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import httpx
import pytest

REQUESTS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def servers(database_url: str) -> Iterator[list[str]]:
    """Two `bookings serve` instances (one with two workers): three server processes."""
    env = os.environ | {"DATABASE_URL": database_url}
    started = []
    for workers in (2, 1):
        port = free_port()
        command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port)]
        command += ["--workers", str(workers), "--log-level", "warning"]
        started.append((f"http://127.0.0.1:{port}", subprocess.Popen(command, env=env)))
    try:
        for url, process in started:
            wait_until_up(url, process)
        yield [url for url, _ in started]
    finally:
        for _, process in started:
            process.terminate()
        for _, process in started:
            process.wait(timeout=30)


async def register(http: httpx.AsyncClient, base: str, capacity: int = 1) -> str:
    r = await http.post(f"{base}/resources", json={"name": "Contested", "capacity": capacity})
    assert r.status_code == 201, r.text
    resource_id: str = r.json()["resource_id"]
    return resource_id


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def race(
    servers: list[str], resource_id: str, slots: list[tuple[datetime, datetime]]
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=REQUESTS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        requests = [
            http.post(
                f"{servers[i % len(servers)]}/bookings",
                json={
                    "resource_id": resource_id,
                    "start_time": iso(start),
                    "end_time": iso(end),
                    "client_id": str(uuid4()),
                },
            )
            for i, (start, end) in enumerate(slots)
        ]
        return await asyncio.gather(*requests)


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


def day_ahead() -> datetime:
    tomorrow = datetime.now(UTC) + timedelta(days=2)
    return tomorrow.replace(hour=8, minute=0, second=0, microsecond=0)


async def test_same_slot_from_many_clients_has_exactly_one_winner(
    servers: list[str], database_url: str
) -> None:
    async with httpx.AsyncClient() as http:
        resource_id = await register(http, servers[0])
    start = day_ahead()

    answers = await race(servers, resource_id, [(start, start + timedelta(hours=1))] * REQUESTS)

    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] + [409] * (REQUESTS - 1)
    winner = next(r.json()["booking_id"] for r in answers if r.status_code == 201)
    for loser in (r for r in answers if r.status_code == 409):
        assert loser.headers["content-type"].startswith("application/problem+json")
        assert loser.json()["conflicting_booking_ids"] == [winner]
    assert [str(row["booking_id"]) for row in await holding(database_url, resource_id)] == [winner]


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
    edges = sorted(
        [(row["start_time"], 1) for row in rows] + [(row["end_time"], -1) for row in rows]
    )
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    assert peak <= capacity
    for loser in (r for r in answers if r.status_code == 409):
        assert set(loser.json()["conflicting_booking_ids"]) <= won


async def test_moves_racing_into_one_slot_have_exactly_one_winner(
    servers: list[str], database_url: str
) -> None:
    base = day_ahead()
    async with httpx.AsyncClient(timeout=60) as http:
        resource_id = await register(http, servers[0])
        booked = [
            await http.post(
                f"{servers[i % 2]}/bookings",
                json={
                    "resource_id": resource_id,
                    "start_time": iso(base + timedelta(hours=2 + i)),
                    "end_time": iso(base + timedelta(hours=2 + i, minutes=30)),
                    "client_id": str(uuid4()),
                },
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

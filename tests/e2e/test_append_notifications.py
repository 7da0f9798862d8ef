"""Over real HTTP: a server process alone notifies nobody of its appends, and starts to once
another process listens (ADR 0010, amended). On a database of its own: the session's app, and
the servers of other tests, listen on the shared one."""

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count

import asyncpg
import httpx
import pytest

from events.appended import SIGN_IN, SIGNED_IN
from events.store import CHANNEL
from processes import wait_until
from servers import free_port, new_database, wait_until_up

HEARD_WITHIN = 1.0
SLOTS = count()


@pytest.fixture
async def lone_database(database_url: str) -> str:
    return await new_database(database_url, "lone")


@pytest.fixture
def lone_server(lone_database: str) -> Iterator[str]:
    """One `bookings serve` process on a database of its own."""
    port = free_port()
    env = os.environ | {"DATABASE_URL": lone_database, "BOOKINGS_SETTLE_SECONDS": "0"}
    command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port)]
    process = subprocess.Popen([*command, "--log-level", "warning"], env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base, process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


class Spy:
    """A connection that listens on the channel. `heard_booking` books through the server and
    tells whether the notification of that append came within `HEARD_WITHIN` seconds. (They go
    out after the append commits: one sent arrives within milliseconds.)"""

    def __init__(self, conn: asyncpg.Connection, http: httpx.AsyncClient, resource: str) -> None:
        self.conn, self.http, self.resource = conn, http, resource
        self.payloads: asyncio.Queue[str] = asyncio.Queue()

    async def heard_booking(self) -> bool:
        start = datetime(2031, 1, 1, tzinfo=UTC) + timedelta(hours=next(SLOTS))
        body = {
            "resource_id": self.resource,
            "client_id": "00000000-0000-4000-8000-000000000001",
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(hours=1)).isoformat(),
        }
        created = await self.http.post("/bookings", json=body)
        assert created.status_code == 201, created.text
        booking = created.json()["booking_id"].replace("-", "")
        try:
            async with asyncio.timeout(HEARD_WITHIN):
                while booking not in await self.payloads.get():
                    pass
        except TimeoutError:
            return False
        return True


async def test_a_lone_server_notifies_nobody_until_another_process_listens(
    lone_server: str, lone_database: str
) -> None:
    conn = await asyncpg.connect(lone_database)
    try:
        async with httpx.AsyncClient(base_url=lone_server, timeout=10) as http:
            registered = await http.post("/resources", json={"name": "Alone"})
            assert registered.status_code == 201, registered.text
            spy = Spy(conn, http, registered.json()["resource_id"])
            await conn.add_listener(CHANNEL, lambda *args: spy.payloads.put_nowait(args[3]))

            async def unheard() -> bool:
                return not await spy.heard_booking()

            # alone (once its first check is done, right after it signs in): not heard
            await wait_until(unheard, 10, "a booking unheard: the lone server stopped notifying")

            # another process signs in: within the server's next check, its appends notify
            await conn.execute(SIGN_IN, *SIGNED_IN)
            await wait_until(spy.heard_booking, 10, "a booking heard after the sign-in")
    finally:
        await conn.close()

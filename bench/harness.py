"""What every scenario needs: databases on the embedded PostgreSQL, server processes on free
ports, and the load generator in a process of its own."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

from events.migrations import migrate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    url: str
    pid: int


def service_command(workers: int) -> list[str]:
    """`bookings serve` with `workers` processes, quiet."""
    args = ["--workers", str(workers), "--log-level", "warning"]
    return [sys.executable, "-m", "api.cli", "serve", *args]


def crud_command(workers: int) -> list[str]:
    """The CRUD baseline under uvicorn with `workers` processes, quiet."""
    args = ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    return [sys.executable, "-m", "uvicorn", "bench.baseline:create_app", "--factory", *args]


@contextmanager
def server(
    command: list[str], database_url: str, probe: str = "/health", **env: str
) -> Iterator[Server]:
    """A server process on a free port, up (its `probe` path answers below 500) until exit.
    The clock's background work (settling) is off: scenarios decide what happens."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environ = os.environ | {"DATABASE_URL": database_url, "BOOKINGS_SETTLE_SECONDS": "0"} | env
    process = subprocess.Popen([*command, "--port", str(port)], env=environ)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not start")
            try:
                if httpx.get(url + probe, timeout=1).status_code < 500:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield Server(url, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


async def new_database(server_url: str, name: str, *, migrated: bool = False) -> str:
    """A new database on the server; with `migrated`, with the service's schema already."""
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = urlsplit(server_url)._replace(path=f"/{name}").geturl()
    if migrated:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
    return url


def load(plan: dict[str, Any]) -> dict[str, Any]:
    """Run the load generator in a process of its own."""
    with tempfile.TemporaryDirectory(prefix="bookings-load-") as folder:
        out = Path(folder) / "result.json"
        subprocess.run(
            [sys.executable, "-m", "bench.load", str(out)],
            input=json.dumps(plan),
            check=True,
            text=True,
        )
        result: dict[str, Any] = json.loads(out.read_text())
    return result

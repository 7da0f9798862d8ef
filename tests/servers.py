"""Real servers for tests: a PostgreSQL of a test module's own, and `bookings serve` processes."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit
from uuid import uuid4

import asyncpg
import httpx

from api.database import embedded


@contextmanager
def private_postgres(prefix: str) -> Iterator[str]:
    """An embedded PostgreSQL in a folder of its own (the server changes the permissions of
    its parents, which would disturb other pytest sessions sharing pytest's temporary root)."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with embedded(data_dir) as url:
            yield url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


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


@contextmanager
def three_processes(database_url: str, **environ: str) -> Iterator[list[str]]:
    """Two `bookings serve` instances on one database, one with two workers: three server
    processes. `environ` adds settings (e.g. BOOKINGS_SETTLE_SECONDS="0")."""
    env = os.environ | {"DATABASE_URL": database_url} | environ
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


async def new_database(server_url: str, prefix: str) -> str:
    """A database of a name of its own on a server (for code that tells databases apart)."""
    name = f"{prefix}_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return urlsplit(server_url)._replace(path=f"/{name}").geturl()

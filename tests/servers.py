"""Real servers for tests: a PostgreSQL of a test module's own, and `bookings serve` processes."""

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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

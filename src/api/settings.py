"""Settings: one typed object, read from the environment in one place."""

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    """PostgreSQL to use; unset: an embedded server in `data_dir`."""
    data_dir: Path = Path(".bookings")
    pool_min_size: int = 2
    pool_max_size: int = 10
    snapshot_every: int = 100
    """Snapshot a resource stream every this many events."""
    settle_seconds: float = 10.0
    """How often each server process completes ended bookings and expires undecided ones
    (0: never; then only commands change bookings)."""
    project_seconds: float = 1.0
    """How often each server process advances the background projections (0: never)."""
    webhook_seconds: float = 1.0
    """How often each server process looks for webhook deliveries that are due (0: never)."""

    def __post_init__(self) -> None:
        positive = {
            "BOOKINGS_POOL_MIN_SIZE": self.pool_min_size,
            "BOOKINGS_POOL_MAX_SIZE": self.pool_max_size,
            "BOOKINGS_SNAPSHOT_EVERY": self.snapshot_every,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        intervals = {
            "BOOKINGS_SETTLE_SECONDS": self.settle_seconds,
            "BOOKINGS_PROJECT_SECONDS": self.project_seconds,
            "BOOKINGS_WEBHOOK_SECONDS": self.webhook_seconds,
        }
        for name, seconds in intervals.items():
            if not 0 <= seconds < math.inf:
                raise ValueError(f"{name} must be 0 or more (and finite), not {seconds}")
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("BOOKINGS_POOL_MIN_SIZE must not exceed BOOKINGS_POOL_MAX_SIZE")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        def number(name: str, default: int) -> int:
            try:
                return int(environ.get(name) or default)
            except ValueError:
                raise ValueError(f"{name} must be a whole number") from None

        def seconds(name: str, default: float) -> float:
            try:
                return float(environ.get(name) or default)
            except ValueError:
                raise ValueError(f"{name} must be a number of seconds") from None

        return cls(
            database_url=environ.get("DATABASE_URL") or None,
            data_dir=Path(environ.get("BOOKINGS_DATA_DIR") or ".bookings"),
            pool_min_size=number("BOOKINGS_POOL_MIN_SIZE", cls.pool_min_size),
            pool_max_size=number("BOOKINGS_POOL_MAX_SIZE", cls.pool_max_size),
            snapshot_every=number("BOOKINGS_SNAPSHOT_EVERY", cls.snapshot_every),
            settle_seconds=seconds("BOOKINGS_SETTLE_SECONDS", cls.settle_seconds),
            project_seconds=seconds("BOOKINGS_PROJECT_SECONDS", cls.project_seconds),
            webhook_seconds=seconds("BOOKINGS_WEBHOOK_SECONDS", cls.webhook_seconds),
        )

"""Settings: one typed object, read from the environment in one place."""

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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        return cls(
            database_url=environ.get("DATABASE_URL") or None,
            data_dir=Path(environ.get("BOOKINGS_DATA_DIR", ".bookings")),
            pool_min_size=int(environ.get("BOOKINGS_POOL_MIN_SIZE", cls.pool_min_size)),
            pool_max_size=int(environ.get("BOOKINGS_POOL_MAX_SIZE", cls.pool_max_size)),
            snapshot_every=int(environ.get("BOOKINGS_SNAPSHOT_EVERY", cls.snapshot_every)),
        )

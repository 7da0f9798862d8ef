"""Settings are read from the environment and checked once, at start-up."""

from pathlib import Path

import pytest

from api.settings import Settings


def test_defaults_and_environment() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql:///x", "BOOKINGS_DATA_DIR": "/d"})

    assert settings.database_url == "postgresql:///x"
    assert settings.data_dir == Path("/d")
    assert settings.snapshot_every == 100
    assert settings.settle_seconds == 10.0


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("0.25", 0.25), ("30", 30.0)])
def test_settle_interval_is_read_in_seconds(value: str, seconds: float) -> None:
    assert Settings.from_env({"BOOKINGS_SETTLE_SECONDS": value}).settle_seconds == seconds


def test_empty_values_count_as_unset() -> None:
    settings = Settings.from_env(
        {"DATABASE_URL": "", "BOOKINGS_DATA_DIR": "", "BOOKINGS_POOL_MAX_SIZE": ""}
    )

    assert settings == Settings()


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"BOOKINGS_SNAPSHOT_EVERY": "0"}, "BOOKINGS_SNAPSHOT_EVERY"),
        ({"BOOKINGS_POOL_MAX_SIZE": "0"}, "BOOKINGS_POOL_MAX_SIZE"),
        ({"BOOKINGS_POOL_MIN_SIZE": "5", "BOOKINGS_POOL_MAX_SIZE": "2"}, "must not exceed"),
        ({"BOOKINGS_POOL_MAX_SIZE": "many"}, "BOOKINGS_POOL_MAX_SIZE"),
        ({"BOOKINGS_SETTLE_SECONDS": "-1"}, "BOOKINGS_SETTLE_SECONDS must be 0 or more"),
        ({"BOOKINGS_SETTLE_SECONDS": "nan"}, "BOOKINGS_SETTLE_SECONDS must be 0 or more"),
        ({"BOOKINGS_SETTLE_SECONDS": "inf"}, "BOOKINGS_SETTLE_SECONDS must be 0 or more"),
        ({"BOOKINGS_SETTLE_SECONDS": "soon"}, "BOOKINGS_SETTLE_SECONDS must be a number"),
    ],
)
def test_bad_settings_are_refused_by_name(environ: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Settings.from_env(environ)

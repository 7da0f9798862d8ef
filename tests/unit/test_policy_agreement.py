"""The fast paths of the policy agree with the plain checks they stand in for, on random cases:
`bookable` with `check_slot` at every grid point, `is_open` with the merged open spans."""

import random
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from commands.errors import DomainError
from commands.policy import CONFIRMED, PENDING, Closure, Hold, Policy, Rules, _within

DAY = datetime(2030, 3, 28, tzinfo=UTC)  # Berlin changes to summer time on the 31st
NOW = DAY - timedelta(hours=3)
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu")


def random_hours(rng: random.Random) -> list[dict[str, str]]:
    clocks = sorted(rng.sample(range(0, 24 * 4 + 1), rng.choice((0, 2, 2, 4))))
    return [
        {"start": f"{a // 4:02}:{a % 4 * 15:02}", "end": f"{b // 4:02}:{b % 4 * 15:02}"}
        for a, b in zip(clocks[::2], clocks[1::2], strict=True)
        if a < b
    ]


def random_policy(rng: random.Random) -> Policy:
    weekdays = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    hours = None
    if rng.random() < 0.7:
        hours = {day: random_hours(rng) for day in weekdays if rng.random() < 0.8}
        if rng.random() < 0.3:
            hours = {day: [{"start": "00:00", "end": "24:00"}] for day in weekdays}
    exceptions = {
        (DAY.date() + timedelta(days=rng.randrange(-1, 6))).isoformat(): random_hours(rng)
        for _ in range(rng.randrange(3))
    }
    rules = Rules.of(
        {
            "pending_holds_slot": rng.random() < 0.5,
            "min_notice_minutes": rng.choice((0, 0, 60, 240)),
            "start_step_minutes": rng.choice((None, 15, 30, 45)),
            "buffer_before_minutes": rng.choice((0, 0, 10, 30)),
            "buffer_after_minutes": rng.choice((0, 0, 15, 60)),
            "max_duration_minutes": rng.choice((None, 180)),
            "opening_hours": hours,
            "date_exceptions": exceptions or None,
        }
    )
    return Policy(UUID(int=1), rng.choice(ZONES), rng.choice((1, 1, 2, 3)), rules)


def random_holds(rng: random.Random) -> list[Hold]:
    holds = []
    for i in range(rng.randrange(12)):
        start = DAY + timedelta(minutes=15 * rng.randrange(-20, 5 * 96))
        end = start + timedelta(minutes=15 * rng.randrange(1, 40))
        status = rng.choice((CONFIRMED, CONFIRMED, PENDING))
        deadline = NOW + timedelta(hours=rng.choice((-1, 5))) if status == PENDING else None
        holds.append(Hold(UUID(int=100 + i), start, end, status, deadline))
    return holds


@pytest.mark.parametrize("seed", range(60))
def test_bookable_is_every_grid_start_that_check_slot_accepts(seed: int) -> None:
    rng = random.Random(seed)
    policy, holds = random_policy(rng), random_holds(rng)
    closures = [Closure(UUID(int=9), DAY + timedelta(hours=30), DAY + timedelta(hours=33))]
    start, end = DAY, DAY + timedelta(days=4)
    duration = timedelta(minutes=rng.choice((15, 45, 90, 240)))

    def accepted(candidate: datetime) -> bool:
        try:
            policy.check_slot(candidate, candidate + duration, NOW, holds=holds, closures=closures)
        except DomainError:
            return False
        return True

    expected = [c for c in policy._grid(start, end) if accepted(c)]
    found = policy.bookable(start, end, duration, NOW, holds=holds, closures=closures)

    assert found == expected


@pytest.mark.parametrize("seed", range(60))
def test_is_open_agrees_with_the_merged_open_spans(seed: int) -> None:
    rng = random.Random(seed)
    policy = random_policy(rng)
    for _ in range(40):
        start = DAY + timedelta(minutes=15 * rng.randrange(-96, 5 * 96))
        end = start + timedelta(minutes=15 * rng.randrange(1, 3 * 96))
        spans = policy.open_spans(start, end)

        assert policy.is_open(start, end) == (spans is None or _within(spans, start, end))


def test_a_very_long_slot_is_decided_by_its_first_gap_or_by_the_exceptions() -> None:
    weekdays = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    all_day = {day: [{"start": "00:00", "end": "24:00"}] for day in weekdays}
    start, end = DAY, datetime(8999, 1, 1, tzinfo=UTC)

    def policy(hours: dict[str, list[dict[str, str]]], exceptions: dict[str, list]) -> Policy:
        rules = Rules.of({"opening_hours": hours, "date_exceptions": exceptions or None})
        return Policy(UUID(int=1), "Europe/Berlin", 1, rules)

    assert policy(all_day, {}).is_open(start, end)
    assert not policy(all_day, {"4000-01-01": []}).is_open(start, end)
    assert policy(all_day, {"9000-01-01": []}).is_open(start, end)
    assert not policy(all_day | {"sunday": []}, {}).is_open(start, end)


@pytest.mark.parametrize(
    "hours",
    [
        [{"start": "02:15", "end": "02:45"}, {"start": "03:00", "end": "03:30"}],
        [{"start": "02:30", "end": "04:00"}, {"start": "03:00", "end": "03:30"}],
    ],
    ids=["skipped-hour-first", "overlapping"],
)
def test_hours_starting_in_the_skipped_hour_are_judged_by_their_instants(
    hours: list[dict[str, str]],
) -> None:
    # 2027-03-28: Berlin skips 02:00-03:00; "02:15" is read with the winter offset (01:15Z).
    rules = Rules.of({"opening_hours": {"sunday": hours}})
    policy = Policy(UUID(int=1), "Europe/Berlin", 1, rules)
    day = datetime(2027, 3, 28, tzinfo=UTC)
    for minutes in range(0, 3 * 60, 15):
        start = day + timedelta(minutes=minutes)
        for length in (15, 30, 45, 60):
            end = start + timedelta(minutes=length)
            spans = policy.open_spans(start, end)
            assert policy.is_open(start, end) == _within(spans or [], start, end), (start, end)

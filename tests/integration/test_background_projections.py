"""Background projections: each follows the log from a stored position of its own, a batch per
transaction. A crash in the middle of a batch (`kill -9` or an exception) loses and repeats
nothing; two processes never project an event twice; a projection added later back-fills from
the first event; `keep_projecting` outlives failures and stops when cancelled; the CLI rebuilds
one or all projections with a summary, and draws a progress bar only on a terminal.

Everything here runs on a PostgreSQL server of its own: the session's shared app advances
`activity` on the shared database every second, and the feed holds back events newer than any
transaction still running on the same server; either would race the exact positions and counts
checked here.
"""

import asyncio
import itertools
import logging
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from api.database import open_pool
from api.settings import Settings
from commands.repository import ResourceRepository
from commands.resource import TRANSCODINGS, Resource
from events.resource import EVENT_TYPES
from events.store import EventStore, RecordedEvent, new_mapper
from processes import wait_until
from projections import activity, background
from projections.runner import REBUILD, project
from projections.runner import TABLES as CORE_TABLES
from servers import new_database, private_postgres

HOUR = timedelta(hours=1)
WRITTEN_FROM = datetime(2030, 5, 30, 21, 0, tzinfo=UTC)
"""When the history below happens: late in a day, so its events spread over several days."""
BOOKED_FROM = datetime(2031, 1, 1, tzinfo=UTC)

Activity = dict[tuple[UUID, date, str], int]


# --- a database of this module's own, with a few thousand events ------------------------------


@pytest.fixture(scope="module")
def own_server() -> Iterator[str]:
    """A PostgreSQL server of the module's own. The feed hands out only events older than every
    transaction still running anywhere on the server, so the session's shared app, writing and
    projecting next door, could hold back the exact counts checked here."""
    with private_postgres("bookings-background-") as url:
        yield url


@pytest.fixture(scope="module")
async def own_url(own_server: str) -> str:
    """A database of a name of its own there (projections under test tell it by that name)."""
    return await new_database(own_server, "background")


@pytest.fixture(scope="module")
async def own_pool(own_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(own_url, Settings(database_url=own_url))
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def own_store(own_pool: asyncpg.Pool) -> EventStore:
    return EventStore(own_pool, new_mapper(*TRANSCODINGS), projector=project)


async def write_history(store: EventStore, resources: int, bookings: int) -> None:
    """Resources with bookings made (every third one approved or cancelled), each resource's
    events seven minutes apart from late on one day to two days later, saved in one append."""
    repository = ResourceRepository(store)
    for n in range(resources):
        now = WRITTEN_FROM
        approval = n % 2 == 1
        resource = Resource.register(uuid4(), name=f"Busy {n}", requires_approval=approval, now=now)
        for i in range(bookings):
            now += timedelta(minutes=7)
            booking_id, start = uuid4(), BOOKED_FROM + i * HOUR
            resource.create_booking(
                booking_id,
                client_id=uuid4(),
                start=start,
                end=start + HOUR,
                details=None,
                actor=None,
                now=now,
            )
            if i % 3 == 0 and approval:
                resource.approve_booking(booking_id, actor="owner", now=now)
            elif i % 3 == 0:
                resource.cancel_booking(booking_id, reason=None, actor=None, now=now)
        await repository.save(resource)


@pytest.fixture(scope="module")
async def log(own_pool: asyncpg.Pool, own_store: EventStore) -> int:
    """The module's log: 6 resources x 535 events (3,210), over three days; its size."""
    await write_history(own_store, resources=6, bookings=400)
    size: int = await own_pool.fetchval("SELECT count(*) FROM events")
    assert size == 3210
    return size


# --- helpers -----------------------------------------------------------------------------------


async def whole_feed(store: EventStore) -> list[RecordedEvent]:
    """Every event in feed order: the order the background projections see them in."""
    events: list[RecordedEvent] = []
    while batch := await store.read_feed(events[-1].position if events else 0, 1000):
        events += batch
    return events


def counted(events: Sequence[RecordedEvent]) -> Activity:
    """What `resource_activity` must hold after projecting these events, worked out here."""
    return dict(
        Counter(
            (
                r.event.originator_id,
                r.event.timestamp.astimezone(UTC).date(),
                EVENT_TYPES[type(r.event)],
            )
            for r in events
        )
    )


async def dump(pool: asyncpg.Pool) -> Activity:
    rows = await pool.fetch("SELECT resource_id, day, type, count FROM resource_activity")
    return {(r["resource_id"], r["day"], r["type"]): r["count"] for r in rows}


async def log_size(pool: asyncpg.Pool) -> int:
    size: int = await pool.fetchval("SELECT count(*) FROM events")
    return size


async def stored_position(pool: asyncpg.Pool, name: str = activity.NAME) -> int | None:
    position: int | None = await pool.fetchval(
        "SELECT position FROM projector_positions WHERE name = $1", name
    )
    return position


async def drain(pool: asyncpg.Pool, store: EventStore, projection: Any, within: float = 30) -> int:
    """Catch up until nothing is left behind, the way the server loop would: a process killed
    a moment ago may still hold the projection until PostgreSQL notices it is gone."""
    done = 0
    async with asyncio.timeout(within):
        while (await background.lag(pool, projection)).behind:
            projected = await background.catch_up(pool, store, projection)
            done += projected
            if not projected:
                await asyncio.sleep(0.05)
    return done


async def assert_like_a_fresh_rebuild(pool: asyncpg.Pool, store: EventStore, size: int) -> None:
    """The rows the projection holds now are those of a rebuild from nothing, which are those
    the log itself implies: every event counted exactly once."""
    resumed = await dump(pool)
    assert sum(resumed.values()) == size
    feed = await whole_feed(store)
    assert await stored_position(pool) == feed[-1].position

    await background.reset(pool, activity)
    assert await dump(pool) == {}
    assert await background.catch_up(pool, store, activity) == size

    assert await dump(pool) == resumed
    assert resumed == counted(feed)


# --- a crash in the middle of a batch ---------------------------------------------------------

# A projector process: `activity` (stalling at its `hang_at`-th event, if given), one
# `catch_up` with the given batch size; prints each committed batch.
PROJECTOR = """
import asyncio, sys
from api.database import embedded, open_pool
from api.settings import Settings
from commands.resource import TRANSCODINGS
from events.store import EventStore, new_mapper
from projections import activity, background

url, batch_size, hang_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


class Stalling:
    NAME, TABLES = activity.NAME, activity.TABLES
    seen = 0

    async def project(self, conn, batch):
        for recorded in batch:
            await activity.project(conn, [recorded])
            self.seen += 1
            if self.seen == hang_at:
                print("stalled", self.seen, flush=True)
                await asyncio.sleep(3600)


async def main():
    pool = await open_pool(url, Settings(database_url=url))
    store = EventStore(pool, new_mapper(*TRANSCODINGS))
    committed = lambda done: print("committed", done, flush=True)
    await background.catch_up(pool, store, Stalling(), batch_size, committed)
    print("finished", flush=True)


asyncio.run(main())
"""


async def start_projector(
    url: str, batch_size: int, hang_at: int = 0
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PROJECTOR,
        url,
        str(batch_size),
        str(hang_at),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()  # SIGKILL: no clean-up of any kind in the projector
    assert await asyncio.wait_for(process.wait(), 30) == -signal.SIGKILL


async def test_a_projector_killed_in_the_middle_of_a_batch_loses_and_repeats_nothing(
    own_url: str, own_pool: asyncpg.Pool, own_store: EventStore, log: int
) -> None:
    feed = await whole_feed(own_store)
    await background.reset(own_pool, activity)
    # given: a projector process that committed three batches of 100 and projected 37 events
    # of the fourth when it stalls
    process = await start_projector(own_url, batch_size=100, hang_at=337)
    try:
        lines: list[str] = []
        async with asyncio.timeout(60):
            while not lines or not lines[-1].startswith("stalled"):
                assert process.stdout
                line = await process.stdout.readline()
                assert line, (lines, await process.communicate())
                lines.append(line.decode().strip())
        assert lines == ["committed 100", "committed 200", "committed 300", "stalled 337"]
        mid_batch = await own_pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
        )
        assert mid_batch >= 1, "the projector's batch transaction should be open"

        # when: it is killed there
        await kill(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    # then: what it committed stays, the open batch is gone without a trace
    assert await stored_position(own_pool) == feed[299].position
    assert await dump(own_pool) == counted(feed[:300])
    # ...and another run picks up right there, to the rows a rebuild from nothing gives
    assert await drain(own_pool, own_store, activity) == len(feed) - 300
    await assert_like_a_fresh_rebuild(own_pool, own_store, len(feed))


async def test_a_projector_killed_at_any_moment_resumes_where_it_committed(
    own_url: str, own_pool: asyncpg.Pool, own_store: EventStore, log: int
) -> None:
    feed = await whole_feed(own_store)
    await background.reset(own_pool, activity)
    # given: the real projection in batches of 5, killed as soon as it has moved at all
    process = await start_projector(own_url, batch_size=5)

    async def advanced() -> bool:
        assert process.returncode is None, await process.communicate()
        return bool(await stored_position(own_pool))

    try:
        await wait_until(advanced, 60, "the projector moved its position")
        await kill(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    reached = await stored_position(own_pool)
    assert reached in {r.position for r in feed}
    assert reached != feed[-1].position, "killed too late: it had finished"
    done = [r.position for r in feed].index(reached) + 1
    assert done % 5 == 0
    assert await dump(own_pool) == counted(feed[:done])

    assert await drain(own_pool, own_store, activity) == len(feed) - done
    await assert_like_a_fresh_rebuild(own_pool, own_store, len(feed))


class Breaking:
    """`activity` that raises at its `at`-th event (as a bug or a lost connection would)."""

    NAME, TABLES = activity.NAME, activity.TABLES

    def __init__(self, at: int) -> None:
        self.at, self.seen = at, 0

    async def project(self, conn: asyncpg.Connection, batch: Sequence[RecordedEvent]) -> None:
        for recorded in batch:  # one at a time, so some are written when it breaks
            self.seen += 1
            if self.seen == self.at:
                raise RuntimeError(f"projection broke at event {self.seen}")
            await activity.project(conn, [recorded])


async def test_an_exception_in_the_middle_of_a_batch_keeps_nothing_of_that_batch(
    own_pool: asyncpg.Pool, own_store: EventStore, log: int
) -> None:
    feed = await whole_feed(own_store)
    await background.reset(own_pool, activity)

    with pytest.raises(RuntimeError, match="at event 250"):
        await background.catch_up(own_pool, own_store, Breaking(at=250), batch_size=100)

    # Batches one and two stay; the 49 events of the third projected before it broke do not.
    assert await stored_position(own_pool) == feed[199].position
    assert await dump(own_pool) == counted(feed[:200])
    assert (await background.lag(own_pool, activity)).behind == len(feed) - 200

    assert (
        await background.catch_up(own_pool, own_store, activity, batch_size=100) == len(feed) - 200
    )
    await assert_like_a_fresh_rebuild(own_pool, own_store, len(feed))


# --- one process at a time ---------------------------------------------------------------------


async def test_two_processes_catching_up_at_once_never_project_an_event_twice(
    own_url: str, own_pool: asyncpg.Pool, own_store: EventStore, log: int
) -> None:
    feed = await whole_feed(own_store)
    await background.reset(own_pool, activity)
    mid_batch, go_on = asyncio.Event(), asyncio.Event()

    class Pausing:
        """`activity` pausing in the middle of its second batch until the test lets it go on;
        then yielding after every event, so the other process gets its chances."""

        NAME, TABLES = activity.NAME, activity.TABLES

        async def project(self, conn: asyncpg.Connection, batch: Sequence[RecordedEvent]) -> None:
            for recorded in batch:
                await activity.project(conn, [recorded])
                if recorded.position == feed[149].position:
                    mid_batch.set()
                    await go_on.wait()
                await asyncio.sleep(0.0005)

    other_pool = await open_pool(own_url, Settings(database_url=own_url))
    try:
        other_store = EventStore(other_pool, own_store.mapper)
        first = asyncio.create_task(
            background.catch_up(own_pool, own_store, Pausing(), batch_size=100)
        )
        await asyncio.wait_for(mid_batch.wait(), 30)

        # While the first holds the projection, the second projects nothing and moves nothing.
        other = background.catch_up(other_pool, other_store, activity, batch_size=100)
        assert await asyncio.wait_for(other, 10) == 0
        assert await stored_position(own_pool) == feed[99].position

        # Then both keep at it, the way two server loops would.
        go_on.set()
        second = await drain(other_pool, other_store, Pausing())
        first_done = await asyncio.wait_for(first, 60)
    finally:
        go_on.set()
        await other_pool.close()

    assert first_done >= 200
    assert first_done + second == len(feed)
    assert await dump(own_pool) == counted(feed)
    assert await stored_position(own_pool) == feed[-1].position


# --- a projection added later ------------------------------------------------------------------


async def test_a_new_projection_back_fills_from_the_first_event(
    own_pool: asyncpg.Pool, own_store: EventStore, log: int
) -> None:
    table = f"seen_{uuid4().hex[:12]}"
    await own_pool.execute(
        f"CREATE TABLE {table} (seq bigserial PRIMARY KEY, position bigint NOT NULL UNIQUE)"
    )

    async def note(conn: asyncpg.Connection, batch: Sequence[RecordedEvent]) -> None:
        insert = f"INSERT INTO {table} (position) VALUES ($1)"
        await conn.executemany(insert, [(recorded.position,) for recorded in batch])

    added = SimpleNamespace(NAME=f"added-{table}", TABLES=(table,), project=note)
    try:
        head, size = await background.head(own_pool), await log_size(own_pool)
        # given: a projection the log has never seen
        assert await stored_position(own_pool, added.NAME) is None
        assert await background.lag(own_pool, added) == background.Lag(added.NAME, 0, size)

        # when: it catches up the first time
        assert await background.catch_up(own_pool, own_store, added, batch_size=700) == size

        # then: it saw every event from the first, in feed order, once
        seen = [
            r["position"]
            for r in await own_pool.fetch(f"SELECT position FROM {table} ORDER BY seq")
        ]
        assert seen == [r.position for r in await whole_feed(own_store)]
        assert await background.lag(own_pool, added) == background.Lag(added.NAME, head, 0)

        # ...and from then on only what is new
        await write_history(own_store, resources=1, bookings=2)
        assert await background.catch_up(own_pool, own_store, added) == 4
        assert await own_pool.fetchval(f"SELECT count(*) FROM {table}") == size + 4
        assert await background.lag(own_pool, added) == background.Lag(
            added.NAME, await background.head(own_pool), 0
        )
    finally:
        await own_pool.execute(f"DROP TABLE {table}")
        await own_pool.execute("DELETE FROM projector_positions WHERE name = $1", added.NAME)
    await drain(own_pool, own_store, activity)


# --- supervision -------------------------------------------------------------------------------


class Failing:
    """A projection that fails on its first `times` events (always, when None).

    Should another app run `keep_projecting` with the same `BACKGROUND` meanwhile, on any
    database but this module's it always fails, so it neither counts nor writes there.
    """

    TABLES = ()

    def __init__(self, database: str, times: int | None = None) -> None:
        self.NAME = f"failing-{uuid4().hex[:8]}"
        self.database, self.times, self.failures = database, times, 0
        self.attempts: list[float] = []
        """When each attempt began (monotonic): the failed ones, then the first that worked."""

    async def project(self, conn: asyncpg.Connection, batch: Sequence[RecordedEvent]) -> None:
        here = await conn.fetchval("SELECT current_database()")
        if here != self.database:
            raise RuntimeError(f"{self.NAME} only runs in {self.database}")
        if self.times is None or self.failures < self.times:
            self.attempts.append(time.monotonic())
            self.failures += 1
            raise RuntimeError(f"{self.NAME} broke in {here}")
        if len(self.attempts) == self.failures:
            self.attempts.append(time.monotonic())


async def database_of(pool: asyncpg.Pool) -> str:
    name: str = await pool.fetchval("SELECT current_database()")
    return name


@pytest.mark.usefixtures("log")
@pytest.mark.parametrize("failing_first", [True, False], ids=["failing-first", "failing-last"])
async def test_keep_projecting_advances_the_others_past_a_failing_projection(
    own_pool: asyncpg.Pool,
    own_store: EventStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failing_first: bool,
) -> None:
    broken = Failing(await database_of(own_pool))
    order = (broken, activity) if failing_first else (activity, broken)
    monkeypatch.setattr(background, "BACKGROUND", order)
    await background.reset(own_pool, activity)
    caplog.set_level(logging.ERROR, logger=background.__name__)

    async def caught_up() -> bool:
        return (await background.lag(own_pool, activity)).behind == 0

    loop = asyncio.create_task(background.keep_projecting(own_pool, own_store, 0.05))
    try:
        await wait_until(caught_up, 10, "activity caught up next to a failing projection")
        # It goes on following the log.
        await write_history(own_store, resources=1, bookings=1)
        assert not await caught_up()
        await wait_until(caught_up, 10, "activity projected a new event")

        assert not loop.done()
        assert broken.failures >= 1
        assert (await background.lag(own_pool, broken)).position == 0
        logged = [
            r for r in caplog.records if r.exc_info and f"{broken.NAME} broke" in str(r.exc_info[1])
        ]
        assert logged, caplog.text
        assert logged[0].levelno == logging.ERROR
    finally:
        loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(loop, 5)
    assert loop.cancelled()
    assert await dump(own_pool) == counted(await whole_feed(own_store))


async def test_a_failing_projection_does_not_slow_the_others_down(
    own_pool: asyncpg.Pool,
    own_store: EventStore,
    log: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = Failing(await database_of(own_pool))
    monkeypatch.setattr(background, "BACKGROUND", (activity, broken))
    await drain(own_pool, own_store, activity)

    async def caught_up() -> bool:
        return (await background.lag(own_pool, activity)).behind == 0

    async def failed_for_a_while() -> bool:
        return broken.failures >= 6

    loop = asyncio.create_task(background.keep_projecting(own_pool, own_store, 0.05))
    try:
        # given: the broken projection failed six times in a row (a few seconds)
        await wait_until(failed_for_a_while, 15, "the broken projection failed six times")

        # when: new events come
        await write_history(own_store, resources=1, bookings=1)

        # then: the healthy projection follows them at its interval (0.05 s), not at the
        # broken one's growing pause
        await wait_until(caught_up, 1.0, "activity followed the log next to a broken projection")
    finally:
        loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(loop, 5)


@pytest.mark.usefixtures("log")
async def test_keep_projecting_retries_a_failed_projection_after_a_growing_pause(
    own_pool: asyncpg.Pool,
    own_store: EventStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    interval = 0.1
    flaky = Failing(await database_of(own_pool), times=3)
    monkeypatch.setattr(background, "BACKGROUND", (flaky,))
    caplog.set_level(logging.ERROR, logger=background.__name__)

    async def caught_up() -> bool:
        return (await background.lag(own_pool, flaky)).behind == 0

    loop = asyncio.create_task(background.keep_projecting(own_pool, own_store, interval))
    try:
        await wait_until(caught_up, 20, "the projection caught up after failing three times")
    finally:
        loop.cancel()
        await own_pool.execute("DELETE FROM projector_positions WHERE name = $1", flaky.NAME)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(loop, 5)

    # Three failures, each logged, then one attempt that worked.
    assert flaky.failures == 3
    assert len(flaky.attempts) == 4
    logged = [
        r for r in caplog.records if r.exc_info and f"{flaky.NAME} broke" in str(r.exc_info[1])
    ]
    assert len(logged) == 3, caplog.text
    # Each retry waited longer than the one before, and never less than the log announced.
    gaps = [later - earlier for earlier, later in itertools.pairwise(flaky.attempts)]
    assert gaps[0] >= interval
    assert gaps[2] > gaps[0]
    for record, gap in zip(logged, gaps, strict=True):
        if announced := re.search(r"in (\d+(?:\.\d+)?) s", record.getMessage()):
            assert float(announced.group(1)) - 0.05 <= gap <= float(announced.group(1)) + 2, (
                record.getMessage(),
                gaps,
            )


async def test_keep_projecting_stops_when_cancelled_in_the_middle_of_a_batch(
    own_pool: asyncpg.Pool,
    own_store: EventStore,
    log: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed = await whole_feed(own_store)
    inside = asyncio.Event()
    database = await database_of(own_pool)

    class Stalling:
        NAME, TABLES = activity.NAME, activity.TABLES

        async def project(self, conn: asyncpg.Connection, batch: Sequence[RecordedEvent]) -> None:
            if await conn.fetchval("SELECT current_database()") != database:
                raise RuntimeError(f"only stalls in {database}")  # not the session's app
            await activity.project(conn, batch)
            inside.set()
            await asyncio.sleep(3600)

    monkeypatch.setattr(background, "BACKGROUND", (Stalling(),))
    await background.reset(own_pool, activity)
    loop = asyncio.create_task(background.keep_projecting(own_pool, own_store, 0.05))
    await asyncio.wait_for(inside.wait(), 10)

    loop.cancel()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(loop, 5)
    assert await stored_position(own_pool) == 0
    assert await dump(own_pool) == {}
    # The projection is free again at once: the cancelled batch released it.
    monkeypatch.undo()
    assert await background.catch_up(own_pool, own_store, activity) == len(feed)


# --- the CLI -----------------------------------------------------------------------------------

SUMMARY = re.compile(r"rebuilt (\S+) from ([\d,]+) events in (\d+\.\d\d) s \(([\d,]+) events/s\)")
STATUS = re.compile(r"(\S+)\s+at\s+([\d,]+)\s+behind\s+([\d,]+)")


def number(text: str) -> int:
    return int(text.replace(",", ""))


def summaries(stdout: str) -> list[tuple[str, int]]:
    """The summary lines, each (name, events), checking every line is one."""
    found = []
    for line in stdout.splitlines():
        match = SUMMARY.fullmatch(line)
        assert match, f"not a summary line: {line!r}"
        name, events, seconds, rate = match.groups()
        assert float(seconds) >= 0
        if events != "0" and float(seconds) > 0:
            assert number(rate) > 0, line
        found.append((name, number(events)))
    return found


async def bookings_cli(url: str, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api.cli",
        *args,
        env=os.environ | {"DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def dump_core(pool: asyncpg.Pool) -> dict[str, list[Any]]:
    return {
        table: sorted(
            tuple(map(str, r.values())) for r in await pool.fetch(f"SELECT * FROM {table}")
        )
        for table in CORE_TABLES
    }


async def test_cli_rebuilds_one_projection_with_a_summary(
    own_url: str, own_pool: asyncpg.Pool, own_store: EventStore, log: int
) -> None:
    await drain(own_pool, own_store, activity)
    expected = counted(await whole_feed(own_store))
    size = await own_pool.fetchval("SELECT count(*) FROM events")
    core = await dump_core(own_pool)
    # The rows drifted (say, by hand): the rebuild must start from nothing.
    await own_pool.execute("UPDATE resource_activity SET count = count + 5")
    await own_pool.execute(
        "INSERT INTO resource_activity VALUES ($1, '2001-01-01', 'x', 1)", uuid4()
    )

    code, stdout, stderr = await bookings_cli(own_url, "projections", "rebuild", "activity")

    assert code == 0, stderr
    assert summaries(stdout) == [("activity", size)]
    assert await dump(own_pool) == expected
    assert await dump_core(own_pool) == core
    assert "\r" not in stderr, "a progress bar, though stderr is no terminal"
    assert "[" not in stderr, stderr


async def test_cli_rebuilds_every_projection_with_a_summary_each(
    own_url: str, own_pool: asyncpg.Pool, own_store: EventStore, log: int
) -> None:
    await drain(own_pool, own_store, activity)
    expected = counted(await whole_feed(own_store))
    size = await own_pool.fetchval("SELECT count(*) FROM events")
    core = await dump_core(own_pool)
    await own_pool.execute("DELETE FROM resource_activity")
    await own_pool.execute("DELETE FROM bookings")

    code, stdout, stderr = await bookings_cli(own_url, "projections", "rebuild")

    assert code == 0, stderr
    assert summaries(stdout) == [("core", size), ("activity", size)]
    assert await dump(own_pool) == expected
    assert await dump_core(own_pool) == core
    assert stderr == ""


async def test_cli_refuses_an_unknown_projection_and_rebuilds_nothing(
    own_url: str, own_pool: asyncpg.Pool, own_store: EventStore, log: int
) -> None:
    await drain(own_pool, own_store, activity)
    position = await stored_position(own_pool)
    await own_pool.execute("UPDATE resource_activity SET count = count + 1")
    drifted = await dump(own_pool)

    code, stdout, stderr = await bookings_cli(
        own_url, "projections", "rebuild", "activity", "nonesuch"
    )

    assert code != 0
    assert "no projection named nonesuch" in stderr, stderr
    assert "rebuilt" not in stdout
    assert await dump(own_pool) == drifted
    assert await stored_position(own_pool) == position
    await background.reset(own_pool, activity)
    await drain(own_pool, own_store, activity)


async def test_cli_status_shows_how_far_behind_each_projection_is(
    own_url: str, own_pool: asyncpg.Pool, own_store: EventStore, log: int
) -> None:
    await drain(own_pool, own_store, activity)
    caught_up_at = await background.head(own_pool)
    await write_history(own_store, resources=2, bookings=3)  # 2 x 5 events, not yet projected
    head = await background.head(own_pool)

    code, stdout, stderr = await bookings_cli(own_url, "projections", "status")

    assert code == 0, stderr
    rows = [STATUS.match(line) for line in stdout.splitlines()]
    assert all(rows), stdout
    status = {m.group(1): (number(m.group(2)), number(m.group(3))) for m in rows if m}
    assert status == {"core": (head, 0), "activity": (caught_up_at, 10)}
    assert list(status) == ["core", "activity"]
    await drain(own_pool, own_store, activity)


def run_on_terminal(url: str, *args: str) -> tuple[int, str, str]:
    """Run `bookings` with stderr on a pseudo-terminal; (exit code, stdout, what the terminal
    showed)."""
    terminal, attached = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", *args],
        env=os.environ | {"DATABASE_URL": url},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=attached,
    )
    os.close(attached)
    shown = b""
    try:
        while True:
            ready, _, _ = select.select([terminal], [], [], 120)
            assert ready, "the command hangs"
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # EIO: every end of the terminal the command held is closed
                break
            if not chunk:
                break
            shown += chunk
        stdout, _ = process.communicate(timeout=60)
    finally:
        os.close(terminal)
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stdout.decode(), shown.decode()


async def test_cli_draws_a_progress_bar_on_a_terminal(
    own_url: str, own_pool: asyncpg.Pool, own_store: EventStore, log: int
) -> None:
    size = await own_pool.fetchval("SELECT count(*) FROM events")

    code, stdout, shown = await asyncio.to_thread(
        run_on_terminal, own_url, "projections", "rebuild"
    )

    assert code == 0, shown
    assert summaries(stdout) == [("core", size), ("activity", size)]
    for name, total, unit in (("core", len(REBUILD), "tables"), ("activity", size, "events")):
        bars = re.findall(rf"\r{name}\s+\[[# ]{{30}}\]\s+\d+% +[\d,]+ {unit}", shown)
        assert bars, shown
        assert bars[-1].endswith(f"[{'#' * 30}] 100% {total:>12,} {unit}"), bars
    assert (await background.lag(own_pool, activity)).behind == 0


# --- a rebuild next to running servers ---------------------------------------------------------


async def test_cli_rebuild_waits_for_a_process_that_holds_the_projection(
    own_url: str, own_pool: asyncpg.Pool, own_store: EventStore, log: int
) -> None:
    """A server's loop holds a projection while it projects a batch. A rebuild that finds it
    held right after its reset must wait for it, not report "rebuilt from 0 events" and leave
    the projection empty."""
    await drain(own_pool, own_store, activity)
    expected = await dump(own_pool)
    size = await own_pool.fetchval("SELECT count(*) FROM events")
    key = background._lock_key(activity.NAME)
    waiting = (
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
        " WHERE d.datname = current_database() AND l.locktype = $1 AND NOT l.granted"
    )
    blocker = await asyncpg.connect(own_url)
    server = await asyncpg.connect(own_url)
    try:
        # Hold the rebuild inside its reset (its DELETE waits for this table lock)...
        blocking = blocker.transaction()
        await blocking.start()
        await blocker.execute("LOCK TABLE resource_activity IN SHARE MODE")
        rebuilding = asyncio.create_task(
            bookings_cli(own_url, "projections", "rebuild", "activity")
        )

        async def reset_waits() -> bool:
            return bool(await own_pool.fetchval(waiting, "relation"))

        await wait_until(reset_waits, 60, "the rebuild's reset waits")
        # ...while a "server" asks for the projection: it gets it the moment the reset is done.
        taking = asyncio.create_task(server.fetchval("SELECT pg_advisory_lock($1)", key))

        async def server_waits() -> bool:
            return bool(await own_pool.fetchval(waiting, "advisory"))

        await wait_until(server_waits, 10, "the server waits for the projection")
        await blocking.commit()
        await asyncio.wait_for(taking, 10)
        # The server projects its batch for a moment, then lets go.
        await asyncio.sleep(0.5)
        await server.execute("SELECT pg_advisory_unlock($1)", key)

        code, stdout, stderr = await rebuilding
    finally:
        await blocker.close()
        await server.close()

    assert code == 0, stderr
    assert summaries(stdout) == [("activity", size)]
    assert await dump(own_pool) == expected

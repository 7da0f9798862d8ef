"""The PostgreSQL event store, on asyncpg.

Semantics follow the eventsourcing library's recorders: a stream is the events of one aggregate,
`(stream_id, version)` is unique, and appending at a version that is already taken raises
`ConcurrencyError`, the library's `IntegrityError`. Appends to different streams take no shared
lock. The global feed is read in commit-safe order: only events of transactions older than every
transaction still running are returned, ordered by (transaction id, position), so a reader that
follows it never misses an event that commits later below its cursor.
"""

import asyncio
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, cast
from uuid import UUID

import asyncpg
import msgspec
from eventsourcing.domain import CanMutateAggregate, Snapshot
from eventsourcing.persistence import (
    DatetimeAsISO,
    IntegrityError,
    Mapper,
    StoredEvent,
    Transcoding,
    UUIDAsHex,
)

from events.transcoding import MsgspecTranscoder

log = logging.getLogger(__name__)

DomainEvent = CanMutateAggregate[UUID]
_NIL = UUID(int=0)
_JSON = msgspec.json.Encoder()


class ConcurrencyError(IntegrityError):
    """Raised when an append finds one of its versions already taken by another writer;
    `stream_id` is that version's stream, where the database named it."""

    def __init__(self, message: str, stream_id: UUID | None = None) -> None:
        super().__init__(message)
        self.stream_id = stream_id


# How PostgreSQL names the key a unique violation found taken.
_TAKEN = re.compile(r"\(stream_id, version\)=\(([0-9a-f-]{36}), \d+\)")

CHANNEL = "bookings_appended"
"""Where appends are told, once they have committed (ADR 0010): `notices`."""
NOTICE_BYTES = 8000
"""PostgreSQL's limit: a notification's payload is shorter."""


class RecordedEvent:
    """A domain event as stored: with its global position. One read from the store is decoded
    when first used, so a reader that needs only positions (a projection that counts in SQL)
    decodes nothing."""

    __slots__ = ("_decode", "_event", "position")

    def __init__(self, position: int, event: DomainEvent) -> None:
        self.position = position
        self._event: DomainEvent | None = event
        self._decode: Callable[[], DomainEvent] | None = None

    @classmethod
    def undecoded(cls, position: int, decode: Callable[[], DomainEvent]) -> "RecordedEvent":
        recorded = cls.__new__(cls)
        recorded.position, recorded._event, recorded._decode = position, None, decode
        return recorded

    @property
    def event(self) -> DomainEvent:
        if self._event is None:
            assert self._decode is not None
            self._event, self._decode = self._decode(), None
        return self._event

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecordedEvent):
            return NotImplemented
        return (self.position, self.event) == (other.position, other.event)

    def __hash__(self) -> int:
        return hash(self.position)

    def __repr__(self) -> str:
        return f"RecordedEvent({self.position}, {self.event!r})"


@dataclass(frozen=True, slots=True)
class Write:
    """A data-modifying statement that projects events into a read model. It runs as a part of
    the statement that appends them and may read `ev (stream_id, version, position)`, the
    events being projected; its parameters are `$1` ... `$n`."""

    sql: str
    args: tuple[Any, ...] = ()

    @classmethod
    def of_rows(cls, sql: str, rows: Iterable[dict[str, Any]]) -> "Write":
        """A write whose one parameter is the rows as a JSON array of objects, for
        `json_to_recordset($1::json) AS r(column type, ...)` (a missing key is NULL). One text
        costs the driver far less than an array per column, whose every element it checks and
        encodes in turn."""
        return cls(sql, (_JSON.encode(list(rows)).decode(),))


Projector = Callable[[Sequence[DomainEvent]], list[Write]]
"""The read-model writes for events (of one or more streams, in log order)."""


@dataclass(frozen=True, slots=True)
class _Append:
    """An append waiting for its statement, and the future that hears how it went."""

    events: Sequence[DomainEvent]
    done: "asyncio.Future[list[RecordedEvent]]"


# The events, and the projection's writes after it, in one statement: one round trip, atomic
# without a transaction block.
INSERT_EVENTS = """
INSERT INTO events (stream_id, version, topic, state)
SELECT * FROM json_to_recordset($1::json) AS e(stream_id uuid, version integer, topic text,
                                              state jsonb)
RETURNING stream_id, version, position
"""
UPSERT_SNAPSHOTS = """
INSERT INTO snapshots (stream_id, version, topic, state)
SELECT * FROM json_to_recordset($1::json) AS s(stream_id uuid, version integer, topic text,
                                              state jsonb)
ON CONFLICT (stream_id) DO UPDATE
SET version = excluded.version, topic = excluded.topic, state = excluded.state
WHERE snapshots.version < excluded.version
"""
# The snapshot (kind 0), if any, then the events after it (kind 1), in one round trip.
LOAD_STREAM = """
WITH snapshot AS (SELECT version, topic, state FROM snapshots WHERE stream_id = $1)
SELECT 0 AS kind, 0::bigint AS position, version, topic, state::text FROM snapshot
UNION ALL
SELECT 1, position, version, topic, state::text FROM events
WHERE stream_id = $1 AND version > COALESCE((SELECT version FROM snapshot), 0)
ORDER BY kind, version
"""
READ_STREAM = """
SELECT position, stream_id, version, topic, state::text FROM events
WHERE stream_id = $1 AND version > $2 ORDER BY version LIMIT $3
"""
READ_POSITIONS = """
SELECT position, stream_id, version, topic, state::text FROM events
WHERE position = ANY($1::bigint[]) ORDER BY position
"""
# Sent after the appends it tells of have committed, in a transaction of its own: PostgreSQL
# serializes the commits of notifying transactions (ADR 0010), and appends must not wait for one
# another's. One that only notifies writes no WAL but its commit record, and waits for no flush.
NOTIFY = f"SELECT count(pg_notify('{CHANNEL}', n)) FROM unnest($1::text[]) AS n"
HAS_POSITION = "SELECT EXISTS (SELECT 1 FROM events WHERE position = $1)"
READ_FEED = """
SELECT e.position, e.stream_id, e.version, e.topic, e.state::text
FROM events e
WHERE e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
  AND (e.transaction_id, e.position) > (
      COALESCE((SELECT c.transaction_id FROM events c WHERE c.position = $1), '0'::xid8), $1)
ORDER BY e.transaction_id, e.position
LIMIT $2
"""


_PARAMETER = re.compile(r"\$(\d+)")


def chain(events: Write, writes: Iterable[Write]) -> tuple[str, list[Any]]:
    """One statement of `events` (as `ev`) and the writes, returning `ev`'s rows.

    Each part sees the tables as they were before the statement: a part must not touch a row
    that another part writes.
    """
    parts = (events, *writes)
    sql = _statement(tuple((part.sql, len(part.args)) for part in parts))
    return sql, [arg for part in parts for arg in part.args]


@cache
def _statement(parts: tuple[tuple[str, int], ...]) -> str:
    """The text of `chain`'s statement for parts of these texts and numbers of parameters
    (a handful of kinds, so composed once each)."""
    texts, shift = [], 0
    for sql, count in parts:
        texts.append(_PARAMETER.sub(partial(_shifted, by=shift), sql))
        shift += count
    ctes = "".join(f", w{n} AS ({sql})" for n, sql in enumerate(texts[1:]))
    return f"WITH ev AS ({texts[0]}){ctes} SELECT * FROM ev"


def _shifted(parameter: re.Match[str], by: int) -> str:
    return f"${int(parameter[1]) + by}"


def new_mapper(*transcodings: Transcoding) -> Mapper[UUID]:
    """A JSON mapper that knows UUIDs, datetimes and the given extra value types."""
    transcoder = MsgspecTranscoder()
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), *transcodings):
        transcoder.register(transcoding)
    return Mapper(transcoder=transcoder)


class EventStore:
    """Appends events to streams and reads them back, by stream or as one global feed.

    Appends go out as statements, at most `statements` at once. Appends made while they are all
    under way wait, and the next statement carries every one of them (up to `batch`) together:
    a group commit, one round trip and one commit for many appends, which is most of what an
    append costs the database. Appends to different streams still never wait for each other's
    locks: a statement that waits on a lock holds up only the appends it carries.

    Snapshots go out apart from the appends, one statement at a time, and nothing waits for
    them (`save_snapshots`). A snapshot holds every open booking of its resource (3,000: about
    570 kB): riding with appends, it held up every append of its statement while PostgreSQL
    parsed and stored it (statements of several snapshots took it up to 0.3 s).

    Notifications of appends (`notices`) go out after the appends have committed, one
    statement at a time, and nothing waits for them either (`_tell`). At most `notices_waiting`
    wait to be sent; past that, the oldest are dropped.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        mapper: Mapper[UUID],
        projector: Projector | None = None,
        *,
        statements: int = 2,
        batch: int = 100,
        notices_waiting: int = 1000,
    ) -> None:
        self.pool = pool
        self.mapper = mapper
        self.projector = projector
        self.statements = statements
        self.batch = batch
        self._waiting: deque[_Append] = deque()
        self._sending: set[asyncio.Task[None]] = set()
        self._snapshots: dict[UUID, dict[str, Any]] = {}  # the latest of each stream, as a row
        self._snapshotting: asyncio.Task[None] | None = None
        self.notices_waiting = notices_waiting
        self._notices: list[str] = []
        self._dropped = 0  # notifications dropped since the last that went out
        self._telling: asyncio.Task[None] | None = None
        self.writers: deque[int] = deque(maxlen=32)
        """The server process ids of the connections it notified through lately: what they
        notify (`events.appended`) this process appended itself."""
        self.notify = True
        """Whether appends tell the listeners (`notices`). Off only while this process knows
        that no other process listens (`events.appended.keep_listening`)."""

    async def append(self, events: Sequence[DomainEvent]) -> list[RecordedEvent]:
        """Record events (of one or more streams), project them, return them: all of it or
        nothing.

        Each event's version must be free in its stream: the first event of an aggregate
        loaded at version N carries N + 1, so the unique key enforces the expected version.
        When a statement of several appends fails, only the appends that would fail alone
        fail: those to a stream whose version another writer took, or, when the database does
        not say which, each one tried again alone.
        """
        done: asyncio.Future[list[RecordedEvent]] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Append(events, done))
        if len(self._sending) < self.statements:
            self._sending.add(asyncio.create_task(self._send_waiting()))
        return await done

    async def _send_waiting(self) -> None:
        """Send what waits, group after group, on a connection held until nothing does (a
        pool's acquire and release cost about as much CPU as a small statement).

        The task leaves `_sending` in the same step in which it finds nothing waiting. (A done
        callback runs a turn of the loop later: an append made in between counted on a task
        that had ended, and waited until a later append started another, if one ever came.)"""
        try:
            while self._waiting:
                try:
                    async with self.pool.acquire() as conn:
                        while self._waiting and not conn.is_closed():
                            count = min(self.batch, len(self._waiting))
                            await self._send(conn, [self._waiting.popleft() for _ in range(count)])
                except Exception as error:  # no connection to be had: what waits fails
                    _fail([self._waiting.popleft() for _ in range(len(self._waiting))], error)
        finally:
            self._sending.discard(cast(asyncio.Task[None], asyncio.current_task()))

    async def _send(self, conn: asyncpg.Connection, appends: list[_Append]) -> None:
        """One statement for the appends. When it fails on a stream's version that another
        writer took, the append to that stream fails and the others go out again together;
        when it fails otherwise, each goes out again alone."""
        # By stream: statements that share streams take their locks in one order, no deadlock.
        appends.sort(key=lambda a: min((e.originator_id for e in a.events), default=_NIL))
        events = [e for a in appends for e in a.events]
        try:
            positions = await self._insert(conn, events)
        except Exception as error:
            if len(appends) == 1:
                _fail(appends, error)
                return
            stale = getattr(error, "stream_id", None)
            contested = [a for a in appends if any(e.originator_id == stale for e in a.events)]
            if len(contested) == 1:
                # Its version is another writer's: it fails, as it would alone. The others go
                # out again together.
                _fail(contested, error)
                await self._send(conn, [a for a in appends if a is not contested[0]])
            else:
                # The database did not say which, or the appends may have taken the version
                # from each other: each goes out again alone.
                for a in appends:
                    await self._send(conn, [a])
            return
        except BaseException as error:  # cancelled (the loop is closing): tell them all
            _fail(appends, error)
            raise
        for a in appends:
            if not a.done.done():
                a.done.set_result(
                    [
                        RecordedEvent(positions[e.originator_id, e.originator_version], e)
                        for e in a.events
                    ]
                )

    async def _insert(
        self, conn: asyncpg.Connection, events: Sequence[DomainEvent]
    ) -> dict[tuple[UUID, int], int]:
        """Record and project the events in one statement, atomic without a transaction block;
        the position of each (stream, version)."""
        writes = self.projector(events) if self.projector else []
        stored = list(map(self.mapper.to_stored_event, events))
        sql, args = chain(Write.of_rows(INSERT_EVENTS, _rows(stored)), writes)
        try:
            rows = await conn.fetch(sql, *args)
        except asyncpg.UniqueViolationError as error:
            if error.table_name != "events":
                raise
            taken = _TAKEN.search(error.detail or "")  # a version another writer took
            raise ConcurrencyError(str(error), UUID(taken[1]) if taken else None) from error
        except asyncpg.DeadlockDetectedError as error:
            # Two appends to the same streams crossing (a move from A to B and one from B to A).
            raise ConcurrencyError(str(error)) from error
        if self.notify:
            self._tell(notices(stored))
        return {(row["stream_id"], row["version"]): row["position"] for row in rows}

    def _tell(self, told: list[str]) -> None:
        """Notify the listeners of appends that have committed, in the background: in the
        order told, by one task, in statements of whatever has gathered meanwhile. A
        notification that is not sent (the process stops first, the statement fails, or it is
        dropped because too many wait: PostgreSQL does not take them) costs a listener a lost
        append or a read (`events.appended`)."""
        self._notices += told
        if (over := len(self._notices) - self.notices_waiting) > 0:
            del self._notices[:over]
            self._dropped += over
        if self._telling is None:
            self._telling = asyncio.create_task(self._send_notices())

    async def drained(self) -> None:
        """Wait until what was handed to the background (snapshots, notifications) is written
        or has failed: before the pool closes."""
        await self.snapshots_written()
        await self.notices_sent()

    async def notices_sent(self) -> None:
        """Wait until the notifications of the appends made so far are sent (or have failed)."""
        while (telling := self._telling) is not None:
            await telling

    async def _send_notices(self) -> None:
        """Send what waits, on a connection held until nothing does. (The task is forgotten in
        the same step in which it finds nothing waiting.)"""
        try:
            while self._notices:
                try:
                    async with self.pool.acquire() as conn:
                        if (pid := conn.get_server_pid()) not in self.writers:
                            self.writers.append(pid)
                        while self._notices:
                            told, self._notices = self._notices, []
                            await conn.execute(NOTIFY, told)
                            if self._dropped:
                                log.warning("%d notifications of appends dropped", self._dropped)
                                self._dropped = 0
                except Exception as error:  # what waits is not sent either
                    log.warning("notifications of appends not sent: %s", error)
                    self._notices = []
        finally:
            self._telling = None

    def save_snapshots(self, snapshots: Iterable[Snapshot]) -> None:
        """Write snapshots in the background. Each is encoded now (the aggregate goes on
        changing) and written by one task, in statements apart from the appends, after the ones
        handed over before it; of several of one stream, only the latest. A snapshot not written
        (the process stops first, or the statement fails) costs only a longer load."""
        for row in _rows(map(self.mapper.to_stored_event, snapshots)):
            held = self._snapshots.get(row["stream_id"])
            if held is None or held["version"] < row["version"]:
                self._snapshots[row["stream_id"]] = row
        if self._snapshots and self._snapshotting is None:
            self._snapshotting = asyncio.create_task(self._write_snapshots())

    async def snapshots_written(self) -> None:
        """Wait until the snapshots handed over so far are written (or have failed)."""
        while (writing := self._snapshotting) is not None:
            await writing

    async def _write_snapshots(self) -> None:
        """Write what waits, in statements of up to `batch` snapshots, until nothing does. (The
        task is forgotten in the same step in which it finds nothing waiting.)

        A statement's rows go by stream: two processes that snapshot the same streams take
        their row locks in one order (in any other, their statements could deadlock)."""
        try:
            while self._snapshots:
                streams = sorted(self._snapshots)[: self.batch]
                write = Write.of_rows(UPSERT_SNAPSHOTS, [self._snapshots.pop(s) for s in streams])
                try:
                    await self.pool.execute(write.sql, *write.args)
                except Exception:  # the load replays more events until the next one
                    log.exception("snapshots of %d streams not written", len(streams))
        finally:
            self._snapshotting = None

    async def load(self, stream_id: UUID) -> tuple[Snapshot | None, list[DomainEvent]]:
        """The stream's latest snapshot (or None) and the events recorded after it."""
        snapshot = None
        events: list[DomainEvent] = []
        for row in await self.pool.fetch(LOAD_STREAM, stream_id):
            event = self._decode(stream_id, row)
            if row["kind"] == 0:
                snapshot = event
            else:
                events.append(event)
        return snapshot, events

    async def read_stream(
        self, stream_id: UUID, after_version: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        """The events of one stream after the given version (all, or `limit`), oldest first."""
        rows = await self.pool.fetch(READ_STREAM, stream_id, after_version, limit)
        return self._recorded(rows)

    async def read_feed(
        self, after: int = 0, limit: int = 1000, conn: asyncpg.Connection | None = None
    ) -> list[RecordedEvent]:
        """The next events of the global feed after the event at position `after` (0: start).

        Stops before any event whose transaction could still be followed by an earlier commit,
        so repeated reads that follow the last returned position never skip or repeat events.
        """
        rows = await (conn or self.pool).fetch(READ_FEED, after, limit)
        return self._recorded(rows)

    async def has_position(self, position: int) -> bool:
        """Whether an event stands at this position of the log."""
        found: bool = await self.pool.fetchval(HAS_POSITION, position)
        return found

    async def read_positions(self, positions: Sequence[int]) -> list[RecordedEvent]:
        """The events at the given positions, by position."""
        return self._recorded(await self.pool.fetch(READ_POSITIONS, list(positions)))

    def _recorded(self, rows: Iterable[Any]) -> list[RecordedEvent]:
        decode = self._decode
        return [
            RecordedEvent.undecoded(row["position"], partial(decode, row["stream_id"], row))
            for row in rows
        ]

    def _decode(self, stream_id: UUID, row: Any) -> Any:
        stored = StoredEvent(stream_id, row["version"], row["topic"], row["state"].encode())
        return self.mapper.to_domain_event(stored)


def _fail(appends: Iterable[_Append], error: BaseException) -> None:
    for a in appends:
        if not a.done.done():  # its caller may have been cancelled
            a.done.set_exception(error)


def notices(stored: Iterable[StoredEvent]) -> list[str]:
    """What listeners are told of these events (ADR 0010): a line per event, `stream_id version
    topic state`, in notifications below `NOTICE_BYTES`. An event too large for one goes as
    `stream_id version` only: a listener that holds the stream reads it from the table."""
    told: list[str] = []
    lines: list[bytes] = []
    size = -1  # of the lines and the newlines between them
    for s in stored:
        line = f"{s.originator_id} {s.originator_version} {s.topic} ".encode() + s.state
        if len(line) >= NOTICE_BYTES:
            line = f"{s.originator_id} {s.originator_version}".encode()
        if size + 1 + len(line) >= NOTICE_BYTES:
            told.append(b"\n".join(lines).decode())
            lines, size = [], -1
        lines.append(line)
        size += 1 + len(line)
    if lines:
        told.append(b"\n".join(lines).decode())
    return told


def _rows(stored: Iterable[StoredEvent]) -> list[dict[str, Any]]:
    """Stored events as the rows of the events (or snapshots) table; the state is JSON already."""
    return [
        {
            "stream_id": s.originator_id,
            "version": s.originator_version,
            "topic": s.topic,
            "state": msgspec.Raw(s.state),
        }
        for s in stored
    ]

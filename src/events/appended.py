"""Hearing what every process appends, once it has committed: the `bookings_appended` notifications
(`events.store.notices`, ADR 0010). A process that caches aggregates applies what others wrote,
instead of finding out on its next decision on them (an append that fails, then a read).

A process that listens signs in, and tells its store whether any other process has: appends
notify only while one has, because nobody else would hear them.

Notifications only save work: one that is late, lost or never sent costs a failed append or a
read, never a wrong decision, because every append still checks the stream's version.
"""

import asyncio
import logging
from collections.abc import Callable, Container
from typing import Protocol, cast
from uuid import UUID

import asyncpg
from eventsourcing.persistence import Mapper, StoredEvent

from events.store import CHANNEL, DomainEvent

log = logging.getLogger(__name__)

SIGNED_IN = (0x626F6F6B, 1)
"""The advisory lock (taken shared, held while connected) by which a listening connection signs
in. Any constant works; it must differ from the other advisory locks of the database."""
SIGN_IN = "SELECT pg_advisory_lock_shared($1, $2)"
OTHERS = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2 AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND pid <> pg_backend_pid()
"""


class Follower(Protocol):
    def wants(self, stream_id: UUID, version: int) -> bool:
        """Whether this event of this stream could matter here (the others are not decoded)."""

    def heard(self, event: DomainEvent) -> None:
        """An event another process (or this one) recorded, in its stream's order."""

    def missed(self, stream_id: UUID | None) -> None:
        """An event of this stream went unheard (None: of any stream, after a reconnect)."""


def decode(payload: str, mapper: Mapper[UUID], follower: Follower) -> None:
    """Hand a notification's events (a line each) to the follower, in order."""
    for line in payload.split("\n"):
        stream, number, *rest = line.split(" ", 3)
        stream_id, version = UUID(stream), int(number)
        if not follower.wants(stream_id, version):
            continue
        if not rest:  # too large to send: only its stream and version came
            follower.missed(stream_id)
            continue
        topic, state = rest
        stored = StoredEvent(stream_id, version, topic, state.encode())
        follower.heard(cast(DomainEvent, mapper.to_domain_event(stored)))


async def keep_listening(
    url: str,
    mapper: Mapper[UUID],
    follower: Follower,
    *,
    retry_seconds: float = 1.0,
    ours: Container[int] = (),
    others: Callable[[bool], None] | None = None,
    check_seconds: float = 1.0,
) -> None:
    """Listen on a connection of its own until cancelled, again (after a pause) when the
    connection is lost. Each time it starts to listen, it tells the follower that anything may
    have been missed: what it cached before may be behind by whatever was appended meanwhile.

    Notifications sent by the server processes in `ours` (the connections this process appends
    through) are of its own appends, which the follower knows already: they are not decoded.

    With `others`, it signs in once it listens, and tells `others` every `check_seconds`
    whether another process has signed in too (and True while it cannot tell). A process that
    starts to listen is told of appends by the others from their next check on: until then,
    what it caches may fall behind, as without notifications."""
    while True:
        try:
            await _listen(
                url, mapper, follower, ours=ours, others=others, check_seconds=check_seconds
            )
            log.warning("lost the connection that listens for appends")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("cannot listen for appends: %s", error)
        except Exception:
            log.exception("listening for appends failed")
        await asyncio.sleep(retry_seconds)


async def _listen(
    url: str,
    mapper: Mapper[UUID],
    follower: Follower,
    *,
    ours: Container[int],
    others: Callable[[bool], None] | None,
    check_seconds: float,
) -> None:
    """Listen (and sign in, and check for others) until the connection is lost."""
    conn = await asyncpg.connect(url)
    lost = asyncio.get_running_loop().create_future()

    def heard(_conn: object, pid: int, _channel: str, payload: str) -> None:
        if pid in ours:
            return
        try:
            decode(payload, mapper, follower)
        except Exception:
            log.exception("a notification of appends could not be applied")
            follower.missed(None)

    def closed(_conn: object) -> None:
        if not lost.done():
            lost.set_result(None)

    conn.add_termination_listener(closed)
    try:
        await conn.add_listener(CHANNEL, heard)
        follower.missed(None)
        if others is None:
            await lost
            return
        await conn.execute(SIGN_IN, *SIGNED_IN)
        while not lost.done():
            others(await conn.fetchval(OTHERS, *SIGNED_IN) > 0)
            await asyncio.wait([lost], timeout=check_seconds)
    finally:
        if others is not None:
            others(True)
        await conn.close()

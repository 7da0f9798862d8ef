"""`/events`: the global, ordered feed of every event, by page, by long poll, or as a stream."""

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from api.dependencies import Store
from api.errors import InvalidInputError
from events.feed import FeedEvent, to_feed
from events.store import EventStore

POLL_SECONDS = 0.1
"""How often a waiting reader looks for news."""
HEARTBEAT_SECONDS = 15.0
"""How often an idle stream sends a comment, so proxies keep the connection open."""
After = Annotated[
    str,
    QueryParameter(
        max_length=18,
        description="The position of the last event you have seen; 0: from the start.",
    ),
]


class EventPage(msgspec.Struct, kw_only=True):
    items: list[FeedEvent]
    next_after: int
    """Pass as `after` to read on (the last item's position, or `after` when there is none)."""


async def checked(store: EventStore, value: str, field: str) -> int:
    """The position a cursor names: 0, or where an event stands."""
    if not re.fullmatch(r"[0-9]{1,18}", value):
        raise InvalidInputError(field, "not a position this feed sent")
    after = int(value)
    if after and not await store.has_position(after):
        raise InvalidInputError(field, f"no event stands at position {after}")
    return after


class EventController(Controller):
    path = "/events"
    tags = ("events",)

    @get("/")
    async def feed(
        self,
        store: Store,
        after: After = "0",
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        wait: Annotated[
            float, QueryParameter(ge=0, le=60, description="Seconds to wait for news.")
        ] = 0,
    ) -> EventPage:
        """Events in commit order after the event at position `after`; with `wait`, an empty
        answer waits up to that many seconds for the next events (long poll)."""
        position = await checked(store, after, "after")
        give_up = time.monotonic() + wait
        while True:  # the news is in the database, so look again until the wait is over
            batch = await store.read_feed(position, limit)
            left = give_up - time.monotonic()
            if batch or left <= 0:
                break
            await asyncio.sleep(min(POLL_SECONDS, left))
        items = [to_feed(r) for r in batch]
        return EventPage(items=items, next_after=items[-1].position if items else position)

    @get("/stream")
    async def stream(
        self,
        store: Store,
        after: After = "0",
        last_event_id: Annotated[
            str | None,
            HeaderParameter(
                name="Last-Event-ID", description="Resume after this event (sent on reconnect)."
            ),
        ] = None,
    ) -> ServerSentEvent:
        """Server-Sent Events: each event as `id: <position>`, `event: <type>`, `data: <JSON>`;
        a client that reconnects with `Last-Event-ID` resumes right after it."""
        if last_event_id is None:
            position = await checked(store, after, "after")
        else:
            position = await checked(store, last_event_id, "Last-Event-ID")
        return ServerSentEvent(follow(store, position))


async def follow(store: EventStore, after: int) -> AsyncIterator[ServerSentEventMessage]:
    quiet_since = time.monotonic()
    while True:
        batch = await store.read_feed(after, 500)
        for recorded in batch:
            event = to_feed(recorded)
            data = msgspec.json.encode(event).decode()
            yield ServerSentEventMessage(id=event.position, event=event.type, data=data)
            after = recorded.position
        if batch:
            quiet_since = time.monotonic()
            continue
        if time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
            yield ServerSentEventMessage(comment="still here", data=None)
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)

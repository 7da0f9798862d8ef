"""`/subscriptions`: webhooks. Subscribe a URL to the feed, inspect, unsubscribe, redrive a dead
letter, replay from any position. Delivery itself runs in the background (`webhooks.delivery`)."""

import secrets
from typing import Annotated
from urllib.parse import urlsplit
from uuid import UUID, uuid4

from litestar import Controller, Response, delete, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter, SkipValidation
from msgspec import Meta, Struct

from api.dependencies import Commands, Db, Store
from api.errors import InvalidInputError
from api.params import next_page, page_after, parse_uuid, strict_body
from events.resource import EVENT_TYPES
from events.store import EventStore
from webhooks import subscriptions
from webhooks.subscriptions import Subscription, SubscriptionView

KNOWN_TYPES = sorted(EVENT_TYPES.values())
MAX_POSITION = 2**63 - 1
Position = Annotated[int, Meta(ge=0, le=MAX_POSITION)]
Url = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=2_000,
        pattern=r"^[\x21-\x7e]+$",
        description="Where to POST events: an http or https URL (ASCII, percent-encoded).",
    ),
]
Secret = Annotated[
    str,
    Meta(
        min_length=16,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Signs deliveries (HMAC-SHA256); generated when left out.",
    ),
]
EventTypes = Annotated[
    list[Annotated[str, Meta(max_length=100)]],
    Meta(min_length=1, max_length=100, description=f"Any of {', '.join(KNOWN_TYPES)}."),
]


class SubscriptionCreate(Struct, forbid_unknown_fields=True, kw_only=True):
    url: Url
    event_types: EventTypes | None = None
    """Deliver only these types; null or left out: every type."""
    secret: Secret | None = None
    after: Position | None = None
    """Deliver the events after this feed position (0: the whole log); default: from now on."""


class SubscriptionPage(Struct, kw_only=True):
    items: list[SubscriptionView]
    next_cursor: str | None


def check_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError as error:
        raise InvalidInputError("url", f"not a URL: {error}") from None
    if parts.scheme not in {"http", "https"}:
        raise InvalidInputError("url", "must be an http or https URL")
    if not parts.hostname or not port_ok:
        raise InvalidInputError("url", "must name a host (and a port from 1 to 65535)")
    return url


def check_event_types(event_types: list[str] | None) -> list[str] | None:
    if event_types is None:
        return None
    if unknown := sorted(set(event_types) - set(KNOWN_TYPES)):
        known = ", ".join(KNOWN_TYPES)
        raise InvalidInputError("event_types", f"unknown {', '.join(unknown)}; known: {known}")
    return sorted(set(event_types))


async def check_position(store: EventStore, position: int, field: str) -> int:
    """A valid cursor: 0 (the start), or where an event stands."""
    if position and not await store.has_position(position):
        raise InvalidInputError(field, f"no event has position {position} (0: the start)")
    return position


def not_found(subscription_id: UUID) -> NotFoundException:
    return NotFoundException(detail=f"Subscription {subscription_id} does not exist.")


class SubscriptionController(Controller):
    path = "/subscriptions"
    tags = ("webhooks",)

    @post("/", status_code=201)
    async def subscribe(
        self,
        data: SkipValidation[JSONBody[SubscriptionCreate]],
        db: Db,
        store: Store,
        commands: Commands,
    ) -> Response[Subscription]:
        """Subscribe a URL to the events of the feed; the answer holds the signing secret, which
        is never shown again."""
        body = strict_body(data, SubscriptionCreate)
        url, event_types = check_url(body.url), check_event_types(body.event_types)
        if body.after is None:
            position = await subscriptions.feed_end(db)
        else:
            position = await check_position(store, body.after, "after")
        created = await subscriptions.create(
            db,
            subscription_id=uuid4(),
            url=url,
            event_types=event_types,
            secret=body.secret or secrets.token_urlsafe(32),
            position=position,
            now=commands.clock(),
        )
        location = f"/subscriptions/{created.subscription_id}"
        return Response(created, status_code=201, headers={"Location": location})

    @get("/")
    async def list_subscriptions(
        self,
        db: Db,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> SubscriptionPage:
        """Subscriptions in creation order, a page at a time."""
        rows = await subscriptions.page(db, page_after(cursor), limit + 1)
        items, next_cursor = next_page(rows, limit, lambda s: (s.created_at, s.subscription_id))
        return SubscriptionPage(items=items, next_cursor=next_cursor)

    @get("/{subscription_id:str}")
    async def fetch(self, subscription_id: FromPath[str], db: Db) -> SubscriptionView:
        """One subscription: its cursor, status and last failure (a dead letter's cause)."""
        key = parse_uuid(subscription_id, "subscription_id")
        view = await subscriptions.get(db, key)
        if view is None:
            raise not_found(key)
        return view

    @delete("/{subscription_id:str}", status_code=204)
    async def unsubscribe(self, subscription_id: FromPath[str], db: Db) -> None:
        """Stop delivering to the subscription and forget it."""
        key = parse_uuid(subscription_id, "subscription_id")
        if not await subscriptions.delete(db, key):
            raise not_found(key)

    @post("/{subscription_id:str}/redrive", status_code=200)
    async def redrive(
        self, subscription_id: FromPath[str], db: Db, commands: Commands
    ) -> SubscriptionView:
        """Make a dead (or backing-off) subscription active and retry now, from its cursor:
        the event that failed is delivered first."""
        key = parse_uuid(subscription_id, "subscription_id")
        view = await subscriptions.redrive(db, key, commands.clock())
        if view is None:
            raise not_found(key)
        return view

    @post("/{subscription_id:str}/replay", status_code=200)
    async def replay(
        self,
        subscription_id: FromPath[str],
        db: Db,
        store: Store,
        commands: Commands,
        after: Annotated[
            int,
            QueryParameter(ge=0, le=MAX_POSITION, description="A feed position; 0: the start."),
        ],
    ) -> SubscriptionView:
        """Deliver again (or skip ahead) from the event after position `after`; active and due
        now."""
        key = parse_uuid(subscription_id, "subscription_id")
        if await subscriptions.get(db, key) is None:
            raise not_found(key)
        position = await check_position(store, after, "after")
        view = await subscriptions.replay(db, key, position, commands.clock())
        if view is None:
            raise not_found(key)
        return view

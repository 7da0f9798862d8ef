"""`/bookings`: create, fetch, modify or move, cancel, the owner's decisions, list, history."""

from typing import Annotated

import asyncpg
import msgspec
from litestar import Controller, delete, get, post, put
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter, SkipValidation
from litestar.response.base import ASGIResponse
from msgspec.structs import asdict

from api.dependencies import Actor, AsOf, Commands, Db, Reason, Role, Store
from api.errors import InvalidInputError
from api.params import TIME, next_page, page_after, parse_time, parse_uuid, strict_body
from api.schemas import (
    BookingCreate,
    BookingPage,
    BookingUpdate,
    History,
)
from commands.errors import BookingNotFoundError
from commands.handlers import (
    Action,
    CancelBooking,
    CommandHandlers,
    CreateBooking,
    DecideBooking,
    ModifyBooking,
)
from commands.resource import Status
from projections import bookings, history
from projections.bookings import BookingFilter, BookingView

_JSON = msgspec.json.Encoder()
CREATED = "Document created, URL follows"  # what litestar says of the other 201s


async def fetch_booking(db: asyncpg.Pool, booking_id: str) -> BookingView:
    key = parse_uuid(booking_id, "booking_id")
    view = await bookings.get(db, key)
    if view is None:
        raise BookingNotFoundError(key)
    return view


class BookingController(Controller):
    path = "/bookings"
    tags = ("bookings",)

    @post("/", status_code=201, responses={201: ResponseSpec(BookingView, description=CREATED)})
    async def create(
        self,
        data: SkipValidation[JSONBody[BookingCreate]],
        state: State,
        actor: Actor,
    ) -> ASGIResponse:
        """Book a resource for `[start_time, end_time)`; 409 if the slot is taken."""
        # The busiest route, kept lean: the app's state instead of a dependency, and the answer
        # already encoded. Resolving the dependency and turning a `Response` into ASGI cost
        # litestar 13-22 us of each create (of 140 us in the process), about what the decision
        # does. `responses` documents the answer as a `Response[BookingView]` would.
        body = strict_body(data, BookingCreate)
        commands: CommandHandlers = state.commands
        event = await commands.create_booking(CreateBooking(**asdict(body), actor=actor))
        view = _JSON.encode(bookings.created(event))
        location = f"/bookings/{event.booking_id}"
        return ASGIResponse(body=view, status_code=201, headers={"Location": location})

    @get("/{booking_id:str}")
    async def fetch(
        self, booking_id: FromPath[str], db: Db, store: Store, as_of: AsOf = None
    ) -> BookingView:
        """One booking, whatever its status; with `as_of`, as the service knew it then."""
        view = await fetch_booking(db, booking_id)
        if as_of is None:
            return view
        at = parse_time(as_of, "as_of")
        positions = await history.positions(db, view.booking_id, until=at)
        then = bookings.fold(r.event for r in await store.read_positions(positions))
        if then is None:
            raise InvalidInputError("as_of", f"booking {view.booking_id} did not exist yet then")
        return then

    @put("/{booking_id:str}")
    async def modify(
        self,
        *,
        booking_id: FromPath[str],
        data: SkipValidation[JSONBody[BookingUpdate]],
        commands: Commands,
        db: Db,
        actor: Actor,
        role: Role = "client",
    ) -> BookingView:
        """Change a booking's time and/or details, or move it to another resource (atomically);
        the new slot is checked like a new booking."""
        body = strict_body(data, BookingUpdate)
        key = parse_uuid(booking_id, "booking_id")
        command = ModifyBooking(booking_id=key, **asdict(body), actor=actor, by=role)
        await commands.modify_booking(command)
        return await fetch_booking(db, booking_id)

    @delete("/{booking_id:str}", status_code=200)
    async def cancel(
        self,
        *,
        booking_id: FromPath[str],
        commands: Commands,
        db: Db,
        actor: Actor,
        role: Role = "client",
        reason: Reason = None,
    ) -> BookingView:
        """Cancel a booking (by its client or the owner); it stays retrievable as `cancelled`."""
        key = parse_uuid(booking_id, "booking_id")
        command = CancelBooking(booking_id=key, reason=reason, actor=actor, by=role)
        await commands.cancel_booking(command)
        return await fetch_booking(db, booking_id)

    async def _decide(
        self,
        commands: Commands,
        db: Db,
        booking_id: str,
        action: Action,
        *,
        reason: str | None,
        actor: str | None,
    ) -> BookingView:
        key = parse_uuid(booking_id, "booking_id")
        await commands.decide_booking(DecideBooking(key, action, reason, actor))
        return await fetch_booking(db, booking_id)

    @post("/{booking_id:str}/approve", status_code=200)
    async def approve(
        self,
        booking_id: FromPath[str],
        commands: Commands,
        db: Db,
        actor: Actor,
        reason: Reason = None,
    ) -> BookingView:
        """The owner confirms a pending booking; its slot is checked again now."""
        return await self._decide(commands, db, booking_id, "approve", reason=reason, actor=actor)

    @post("/{booking_id:str}/reject", status_code=200)
    async def reject(
        self,
        booking_id: FromPath[str],
        commands: Commands,
        db: Db,
        actor: Actor,
        reason: Reason = None,
    ) -> BookingView:
        """The owner turns a pending booking down."""
        return await self._decide(commands, db, booking_id, "reject", reason=reason, actor=actor)

    @post("/{booking_id:str}/complete", status_code=200)
    async def complete(
        self,
        booking_id: FromPath[str],
        commands: Commands,
        db: Db,
        actor: Actor,
        reason: Reason = None,
    ) -> BookingView:
        """The owner records that a confirmed booking took place (once it has started)."""
        return await self._decide(commands, db, booking_id, "complete", reason=reason, actor=actor)

    @post("/{booking_id:str}/no-show", status_code=200)
    async def no_show(
        self,
        booking_id: FromPath[str],
        commands: Commands,
        db: Db,
        actor: Actor,
        reason: Reason = None,
    ) -> BookingView:
        """The owner records that the client did not come (once the booking has started)."""
        return await self._decide(commands, db, booking_id, "no_show", reason=reason, actor=actor)

    @get("/")
    async def list_bookings(
        self,
        *,
        db: Db,
        resource_id: FromQuery[str | None] = None,
        client_id: FromQuery[str | None] = None,
        status: FromQuery[Status | None] = None,
        window_start: Annotated[str | None, QueryParameter(name="from", description=TIME)] = None,
        window_end: Annotated[str | None, QueryParameter(name="to", description=TIME)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> BookingPage:
        """Bookings by start time, filtered; `from`/`to` keep those overlapping the window."""
        where = BookingFilter(
            resource_id=parse_uuid(resource_id, "resource_id") if resource_id else None,
            client_id=parse_uuid(client_id, "client_id") if client_id else None,
            status=status,
            window_start=parse_time(window_start, "from"),
            window_end=parse_time(window_end, "to"),
        )
        rows = await bookings.page(db, where, page_after(cursor), limit + 1)
        items, next_cursor = next_page(rows, limit, lambda b: (b.start_time, b.booking_id))
        return BookingPage(items=items, next_cursor=next_cursor)

    @get("/{booking_id:str}/history")
    async def booking_history(self, booking_id: FromPath[str], db: Db, store: Store) -> History:
        """Every event of the booking, oldest first: what changed, when, and by whom."""
        booking = await fetch_booking(db, booking_id)
        items = await history.of_booking(db, store, booking.booking_id)
        return History(booking_id=booking.booking_id, items=items)

"""`/resources`: register, change, retire, close, list; availability of one resource or many."""

from datetime import date, datetime, timedelta
from typing import Annotated

import asyncpg
from litestar import Controller, Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter, SkipValidation

from api.dependencies import Actor, AsOf, Commands, Db, Reason, Store
from api.errors import InvalidInputError
from api.params import TIME, next_page, page_after, parse_time, parse_uuid, strict_body
from api.schemas import (
    LATEST,
    ActivityPage,
    Availability,
    ClosureCreate,
    ClosurePage,
    Match,
    ResourceCreate,
    ResourceHistory,
    ResourcePage,
    ResourceUpdate,
    Search,
)
from commands.errors import ClosureNotFoundError, ResourceNotFoundError
from commands.handlers import (
    AddClosure,
    RegisterResource,
    RemoveClosure,
    RetireResource,
    UpdateResource,
)
from commands.policy import DEFAULT_STEP_MINUTES
from projections import activity, availability, resources
from projections.availability import ClosureView
from projections.history import entry
from projections.resources import ResourceView

MAX_WINDOW = timedelta(days=366)
MAX_BOOKABLE_WINDOW = timedelta(days=31)
MAX_CANDIDATES = 20_000
"""How many candidate start times one request may weigh (all its resources together)."""
Duration = Annotated[
    int | None,
    QueryParameter(ge=1, le=60 * 24 * 31, description="Minutes: list the bookable start times."),
]
From = Annotated[str, QueryParameter(name="from", description=TIME)]
To = Annotated[str, QueryParameter(name="to", description=TIME)]


async def fetch_resource(db: asyncpg.Pool, resource_id: str) -> ResourceView:
    key = parse_uuid(resource_id, "resource_id")
    view = await resources.get(db, key)
    if view is None:
        raise ResourceNotFoundError(key)
    return view


def window(start: str, end: str, duration: int | None) -> tuple[datetime, datetime]:
    """The `[from, to)` of an availability query, checked."""
    low, high = parse_time(start, "from"), parse_time(end, "to")
    if high <= low:
        raise InvalidInputError("to", "'to' must be after 'from'")
    if high - low > MAX_WINDOW:
        raise InvalidInputError("to", "the window may span at most 366 days")
    if duration is not None and high - low > MAX_BOOKABLE_WINDOW:
        raise InvalidInputError("to", "with a duration, the window may span at most 31 days")
    return low, high


def weigh(considered: list[ResourceView], start: datetime, end: datetime) -> None:
    """Refuse a request for bookable times that would weigh too many candidate starts."""
    count = sum(
        (end - start) // timedelta(minutes=r.start_step_minutes or DEFAULT_STEP_MINUTES)
        for r in considered
    )
    if count > MAX_CANDIDATES:
        msg = (
            f"the window holds {count} candidate start times at the resources' steps; "
            f"at most {MAX_CANDIDATES} per request: narrow it"
        )
        raise InvalidInputError("to", msg)


async def fetch_closure(db: asyncpg.Pool, resource_id: str, closure_id: str) -> ClosureView:
    resource, key = parse_uuid(resource_id, "resource_id"), parse_uuid(closure_id, "closure_id")
    view = await availability.closure(db, resource, key)
    if view is None:
        if await resources.get(db, resource) is None:
            raise ResourceNotFoundError(resource)
        raise ClosureNotFoundError(resource, key)
    return view


class ResourceController(Controller):
    path = "/resources"
    tags = ("resources",)

    @post("/", status_code=201)
    async def register(
        self,
        data: SkipValidation[JSONBody[ResourceCreate]],
        commands: Commands,
        db: Db,
        actor: Actor,
    ) -> Response[ResourceView]:
        """Register a bookable resource with its rules (all optional)."""
        body = strict_body(data, ResourceCreate)
        command = RegisterResource(**body.settings(), rules=body.rules(), actor=actor)
        resource_id = await commands.register_resource(command)
        view = await fetch_resource(db, str(resource_id))
        return Response(view, status_code=201, headers={"Location": f"/resources/{resource_id}"})

    @get("/{resource_id:str}")
    async def fetch(self, resource_id: FromPath[str], db: Db) -> ResourceView:
        """One resource."""
        return await fetch_resource(db, resource_id)

    @get("/{resource_id:str}/history")
    async def history(
        self,
        resource_id: FromPath[str],
        db: Db,
        store: Store,
        after: Annotated[
            int, QueryParameter(ge=0, le=2**31 - 1, description="The last version seen.")
        ] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> ResourceHistory:
        """Every event of the resource's stream, oldest first, a page at a time: its settings,
        closures and bookings, each with actor, time and the reason given."""
        resource = await fetch_resource(db, resource_id)
        page = await store.read_stream(resource.resource_id, after, limit + 1)
        items = [entry(r) for r in page[:limit]]
        next_after = items[-1].version if len(page) > limit else None
        return ResourceHistory(resource_id=resource.resource_id, items=items, next_after=next_after)

    @get("/{resource_id:str}/activity")
    async def activity(
        self,
        resource_id: FromPath[str],
        db: Db,
        first: Annotated[date, QueryParameter(name="from", description="First day (UTC).")],
        last: Annotated[date, QueryParameter(name="to", description="Day after the last.")],
    ) -> ActivityPage:
        """How many events of each type the resource saw on each UTC day in `[from, to)` (at
        most 366 days); follows the log a moment behind (see `GET /projections`)."""
        if not first < last <= first + MAX_WINDOW:
            raise InvalidInputError("to", "'to' must be after 'from', at most 366 days on")
        resource = await fetch_resource(db, resource_id)
        items = await activity.of_resource(db, resource.resource_id, first, last)
        return ActivityPage(resource_id=resource.resource_id, items=items)

    @patch("/{resource_id:str}")
    async def update(
        self,
        resource_id: FromPath[str],
        data: SkipValidation[JSONBody[ResourceUpdate]],
        commands: Commands,
        db: Db,
        actor: Actor,
    ) -> ResourceView:
        """Change settings and rules; they apply to what is decided from now on."""
        body = strict_body(data, ResourceUpdate)
        key = parse_uuid(resource_id, "resource_id")
        await commands.update_resource(UpdateResource(key, body.changes(), actor))
        return await fetch_resource(db, resource_id)

    @delete("/{resource_id:str}", status_code=200)
    async def retire(
        self, resource_id: FromPath[str], commands: Commands, db: Db, actor: Actor, reason: Reason
    ) -> ResourceView:
        """Retire a resource: no new bookings; the ones it has keep their state."""
        key = parse_uuid(resource_id, "resource_id")
        await commands.retire_resource(RetireResource(key, reason, actor))
        return await fetch_resource(db, resource_id)

    @get("/")
    async def list_resources(
        self,
        db: Db,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        cursor: FromQuery[str | None] = None,
        include_retired: FromQuery[bool] = True,
    ) -> ResourcePage:
        """Resources in registration order, a page at a time."""
        rows = await resources.page(db, page_after(cursor), limit + 1, retired=include_retired)
        items, next_cursor = next_page(rows, limit, lambda r: (r.created_at, r.resource_id))
        return ResourcePage(items=items, next_cursor=next_cursor)

    @post("/{resource_id:str}/closures", status_code=201)
    async def close(
        self,
        resource_id: FromPath[str],
        data: SkipValidation[JSONBody[ClosureCreate]],
        commands: Commands,
        db: Db,
        actor: Actor,
    ) -> Response[ClosureView]:
        """Close the resource over `[start_time, end_time)`: no booking may overlap it."""
        body = strict_body(data, ClosureCreate)
        key = parse_uuid(resource_id, "resource_id")
        command = AddClosure(key, body.start_time, body.end_time, body.reason, actor)
        closure_id = await commands.add_closure(command)
        view = await fetch_closure(db, resource_id, str(closure_id))
        location = f"/resources/{resource_id}/closures/{closure_id}"
        return Response(view, status_code=201, headers={"Location": location})

    @get("/{resource_id:str}/closures/{closure_id:str}")
    async def closure(
        self, resource_id: FromPath[str], closure_id: FromPath[str], db: Db
    ) -> ClosureView:
        """One closure."""
        return await fetch_closure(db, resource_id, closure_id)

    @get("/{resource_id:str}/closures")
    async def closures(
        self,
        resource_id: FromPath[str],
        db: Db,
        commands: Commands,
        window_start: Annotated[str | None, QueryParameter(name="from", description=TIME)] = None,
        window_end: Annotated[str | None, QueryParameter(name="to", description=TIME)] = None,
    ) -> ClosurePage:
        """Closures overlapping `[from, to)` (default: from now on)."""
        resource = await fetch_resource(db, resource_id)
        start = parse_time(window_start, "from") or commands.clock()
        end = parse_time(window_end, "to") or LATEST
        if end <= start:
            raise InvalidInputError("to", "'to' must be after 'from'")
        items = await availability.closures(db, resource.resource_id, start, end)
        return ClosurePage(items=items)

    @delete("/{resource_id:str}/closures/{closure_id:str}", status_code=204)
    async def reopen(
        self,
        resource_id: FromPath[str],
        closure_id: FromPath[str],
        commands: Commands,
        actor: Actor,
    ) -> None:
        """Lift a closure."""
        key = parse_uuid(resource_id, "resource_id")
        command = RemoveClosure(key, parse_uuid(closure_id, "closure_id"), actor)
        await commands.remove_closure(command)

    @get("/{resource_id:str}/availability")
    async def availability(
        self,
        *,
        resource_id: FromPath[str],
        db: Db,
        commands: Commands,
        window_start: From,
        window_end: To,
        store: Store,
        duration: Duration = None,
        as_of: AsOf = None,
    ) -> Availability:
        """Busy, closed and free time of a resource within `[from, to)` (at most 366 days);
        with `duration` (minutes), also each start time a booking would be accepted at
        (window at most 31 days); with `as_of`, all of it as the service knew it then."""
        start, end = window(window_start, window_end, duration)
        resource = await fetch_resource(db, resource_id)
        if duration is not None:
            weigh([resource], start, end)
        length = timedelta(minutes=duration or 0)
        if as_of is None:
            now = commands.clock()
            found = await availability.situation(db, resource, start, end + length, now)
        else:
            now = parse_time(as_of, "as_of")
            key = resource.resource_id
            known = await availability.situation_as_of(store, key, start, end + length, now)
            if known is None:
                raise InvalidInputError("as_of", f"resource {key} did not exist yet then")
            found = known
        return Availability(
            resource_id=resource.resource_id,
            window_start=start,
            window_end=end,
            capacity=found.policy.capacity,
            busy=found.busy(start, end),
            closures=found.closed(start, end),
            free=found.free(start, end),
            bookable=None if duration is None else found.bookable(start, end, length, now),
        )


@get("/availability", tags=["resources"])
async def search(
    *,
    db: Db,
    commands: Commands,
    window_start: From,
    window_end: To,
    duration: Annotated[int, QueryParameter(ge=1, le=60 * 24 * 31, description="Minutes.")],
    resource_id: Annotated[
        list[str] | None,
        QueryParameter(max_items=100, description="Resources to consider (repeat); none: all."),
    ] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
    cursor: FromQuery[str | None] = None,
) -> Search:
    """Which resources can take a booking of `duration` minutes starting in `[from, to)`, with
    the start times each would accept. Without `resource_id`, every active resource is
    considered, `limit` at a time (a page may hold fewer matches than it considered)."""
    start, end = window(window_start, window_end, duration)
    next_cursor = None
    if resource_id:
        keys = list(dict.fromkeys(parse_uuid(r, "resource_id") for r in resource_id))
        found = {r.resource_id: r for r in await resources.get_many(db, keys)}
        missing = [k for k in keys if k not in found]
        if missing:
            raise ResourceNotFoundError(missing[0])
        considered = [found[k] for k in keys if found[k].retired_at is None]
    else:
        rows = await resources.page(db, page_after(cursor), limit + 1, retired=False)
        considered, next_cursor = next_page(rows, limit, lambda r: (r.created_at, r.resource_id))
    weigh(considered, start, end)
    now, length = commands.clock(), timedelta(minutes=duration)
    items = []
    for resource in considered:
        there = await availability.situation(db, resource, start, end + length, now)
        slots = there.bookable(start, end, length, now)
        if slots:
            items.append(
                Match(resource_id=resource.resource_id, name=resource.name, bookable=slots)
            )
    return Search(
        window_start=start,
        window_end=end,
        duration_minutes=duration,
        items=items,
        next_cursor=next_cursor,
    )

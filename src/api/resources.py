"""`/resources`: register, fetch, list, and a resource's availability."""

from datetime import timedelta
from typing import Annotated

import asyncpg
from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter, SkipValidation
from msgspec.structs import asdict

from api.dependencies import Actor, Commands, Db
from api.errors import InvalidInputError
from api.params import TIME, next_page, page_after, parse_time, parse_uuid, strict_body
from api.schemas import Availability, ResourceCreate, ResourcePage
from commands.errors import ResourceNotFoundError
from commands.handlers import RegisterResource
from projections import availability, resources
from projections.resources import ResourceView

MAX_WINDOW = timedelta(days=366)


async def fetch_resource(db: asyncpg.Pool, resource_id: str) -> ResourceView:
    key = parse_uuid(resource_id, "resource_id")
    view = await resources.get(db, key)
    if view is None:
        raise ResourceNotFoundError(key)
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
        """Register a bookable resource."""
        body = strict_body(data, ResourceCreate)
        resource_id = await commands.register_resource(
            RegisterResource(**asdict(body), actor=actor)
        )
        view = await fetch_resource(db, str(resource_id))
        return Response(view, status_code=201, headers={"Location": f"/resources/{resource_id}"})

    @get("/{resource_id:str}")
    async def fetch(self, resource_id: FromPath[str], db: Db) -> ResourceView:
        """One resource."""
        return await fetch_resource(db, resource_id)

    @get("/")
    async def list_resources(
        self,
        db: Db,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> ResourcePage:
        """Resources in registration order, a page at a time."""
        rows = await resources.page(db, page_after(cursor), limit + 1)
        items, next_cursor = next_page(rows, limit, lambda r: (r.created_at, r.resource_id))
        return ResourcePage(items=items, next_cursor=next_cursor)

    @get("/{resource_id:str}/availability")
    async def availability(
        self,
        resource_id: FromPath[str],
        db: Db,
        window_start: Annotated[str, QueryParameter(name="from", description=TIME)],
        window_end: Annotated[str, QueryParameter(name="to", description=TIME)],
    ) -> Availability:
        """Busy and free time of a resource within `[from, to)` (at most 366 days)."""
        start, end = parse_time(window_start, "from"), parse_time(window_end, "to")
        if end <= start:
            raise InvalidInputError("to", "'to' must be after 'from'")
        if end - start > MAX_WINDOW:
            raise InvalidInputError("to", "the window may span at most 366 days")
        resource = await fetch_resource(db, resource_id)
        busy = await availability.busy(db, resource.resource_id, start, end)
        return Availability(
            resource_id=resource.resource_id,
            window_start=start,
            window_end=end,
            capacity=resource.capacity,
            busy=busy,
            free=availability.free(busy, resource.capacity, start, end),
        )

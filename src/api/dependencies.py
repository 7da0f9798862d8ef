"""What handlers get injected: the database pool and the command handlers."""

from typing import Annotated, Any, Literal

import asyncpg
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import HeaderParameter, QueryParameter

from api.schemas import NO_NUL
from commands.handlers import CommandHandlers
from events.store import EventStore

Actor = Annotated[
    str | None,
    HeaderParameter(
        name="X-Actor",
        max_length=200,
        pattern=r"^[\x20-\x7e]*$",
        description="Who acts (a user or system id, printable ASCII); kept in the history.",
    ),
]

Role = Annotated[
    Literal["client", "owner"],
    HeaderParameter(
        name="X-Actor-Role",
        description=(
            "Whether the actor is the booking's client (default) or the resource's owner; "
            "notice rules on changes and cancellations bind only clients."
        ),
    ),
]

AsOf = Annotated[
    str | None,
    QueryParameter(description="An RFC 3339 time: answer as the service knew it at that moment."),
]
Reason = Annotated[
    str | None,
    QueryParameter(max_length=1_000, pattern=NO_NUL, description="Why; kept in the history."),
]


Db = NamedDependency[asyncpg.Pool]
Commands = NamedDependency[CommandHandlers]
Store = NamedDependency[EventStore]


# Each provider takes the next one, though it does not use it: litestar resolves dependencies of
# the same level together in an anyio task group, a task each, which cost about a quarter of the
# CPU of a `GET /bookings/{id}` (its handler takes `db` and `store`). In a chain, every level has
# one dependency, which litestar awaits directly. The chain starts at `commands`, all that the
# busiest handler, `POST /bookings`, takes, so that it resolves one.


def provide_commands(state: State) -> CommandHandlers:
    commands: CommandHandlers = state.commands
    return commands


def provide_store(state: State, commands: Commands) -> EventStore:
    store: EventStore = state.store
    return store


def provide_pool(state: State, store: Store) -> asyncpg.Pool:
    pool: asyncpg.Pool = state.pool
    return pool


DEPENDENCIES: dict[str, Any] = {
    "db": Provide(provide_pool, sync_to_thread=False),
    "commands": Provide(provide_commands, sync_to_thread=False),
    "store": Provide(provide_store, sync_to_thread=False),
}

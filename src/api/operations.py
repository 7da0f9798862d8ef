"""Operations: how far each projection has followed the log."""

import msgspec
from litestar import get

from api.dependencies import Db
from projections import background

CORE = "core"


class ProjectionLag(msgspec.Struct, kw_only=True):
    name: str
    kind: str
    """`inline`: projected in the transaction of every append, never behind; `background`:
    follows the log on its own."""
    position: int
    """The feed position it has reached."""
    behind: int
    """Events in the log it has not projected yet."""


class Projections(msgspec.Struct, kw_only=True):
    head: int
    """The position of the newest event in feed order."""
    items: list[ProjectionLag]


@get("/projections", tags=["operations"])
async def projections(db: Db) -> Projections:
    """Projection lag: the last position written against the last position each projection
    has projected."""
    head = await background.head(db)
    items = [ProjectionLag(name=CORE, kind="inline", position=head, behind=0)]
    for projection in background.BACKGROUND:
        lag = await background.lag(db, projection)
        items.append(
            ProjectionLag(
                name=lag.name, kind="background", position=lag.position, behind=lag.behind
            )
        )
    return Projections(head=head, items=items)

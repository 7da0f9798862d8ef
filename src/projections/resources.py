"""The resources read model."""

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from events.resource import ResourceRegistered
from events.store import RecordedEvent


class ResourceView(msgspec.Struct, kw_only=True):
    resource_id: UUID
    name: str
    timezone: str
    capacity: int
    requires_approval: bool
    details: str | None
    created_at: datetime
    updated_at: datetime


INSERT = """
INSERT INTO resources
    (resource_id, name, timezone, capacity, requires_approval, details, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
"""
SELECT = "SELECT * FROM resources WHERE resource_id = $1"
PAGE = """
SELECT * FROM resources
WHERE ($1::timestamptz IS NULL OR (created_at, resource_id) > ($1, $2))
ORDER BY created_at, resource_id
LIMIT $3
"""
TABLES = ("resources",)


async def project(conn: asyncpg.Connection, recorded: RecordedEvent) -> None:
    event = recorded.event
    if isinstance(event, ResourceRegistered):
        await conn.execute(
            INSERT,
            event.originator_id,
            event.name,
            event.timezone,
            event.capacity,
            event.requires_approval,
            event.details,
            event.timestamp,
        )


async def get(conn: Any, resource_id: UUID) -> ResourceView | None:
    row = await conn.fetchrow(SELECT, resource_id)
    return None if row is None else msgspec.convert(dict(row), ResourceView)


async def page(conn: Any, after: tuple[datetime, UUID] | None, limit: int) -> list[ResourceView]:
    """Resources in registration order, after the given (created_at, resource_id)."""
    created_at, resource_id = after or (None, None)
    rows = await conn.fetch(PAGE, created_at, resource_id, limit)
    return [msgspec.convert(dict(row), ResourceView) for row in rows]

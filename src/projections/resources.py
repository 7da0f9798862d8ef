"""The resources read model: settings, rules, retirement."""

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from commands.policy import RULE_NAMES, Policy, Rules
from commands.resource import SETTINGS
from events.resource import ResourceRegistered, ResourceRetired, ResourceUpdated
from events.store import RecordedEvent


class OpenInterval(msgspec.Struct):
    start: str
    end: str


OpenHours = dict[str, list[OpenInterval]]


class ResourceView(msgspec.Struct, kw_only=True):
    resource_id: UUID
    name: str
    timezone: str
    capacity: int
    requires_approval: bool
    pending_holds_slot: bool
    approval_window_minutes: int | None
    min_notice_minutes: int
    max_advance_days: int | None
    min_duration_minutes: int | None
    max_duration_minutes: int | None
    start_step_minutes: int | None
    buffer_before_minutes: int
    buffer_after_minutes: int
    change_notice_minutes: int
    cancel_notice_minutes: int
    opening_hours: OpenHours | None
    date_exceptions: OpenHours | None
    details: str | None
    retired_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def policy(self) -> Policy:
        values = msgspec.to_builtins({name: getattr(self, name) for name in RULE_NAMES})
        rules = Rules(**values)
        return Policy(self.resource_id, self.timezone, self.capacity, rules)


INSERT = """
INSERT INTO resources (resource_id, name, timezone, capacity, requires_approval, details, rules,
                       created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $8)
"""
UPDATE = """
UPDATE resources SET name = COALESCE($2, name), timezone = COALESCE($3, timezone),
                     capacity = COALESCE($4, capacity),
                     requires_approval = COALESCE($5, requires_approval),
                     details = CASE WHEN $6 THEN $7 ELSE details END,
                     rules = rules || $8::jsonb, updated_at = $9
WHERE resource_id = $1
"""
RETIRE = "UPDATE resources SET retired_at = $2, updated_at = $2 WHERE resource_id = $1"
COLUMNS = """resource_id, name, timezone, capacity, requires_approval, details, rules::text,
             retired_at, created_at, updated_at"""
SELECT = f"SELECT {COLUMNS} FROM resources WHERE resource_id = $1"
SELECT_MANY = f"SELECT {COLUMNS} FROM resources WHERE resource_id = ANY($1::uuid[])"
PAGE = f"""
SELECT {COLUMNS} FROM resources
WHERE ($1::timestamptz IS NULL OR (created_at, resource_id) > ($1, $2))
  AND ($3 OR retired_at IS NULL)
ORDER BY created_at, resource_id
LIMIT $4
"""
TABLES = ("resources",)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


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
            _json(event.rules or {}),
            event.timestamp,
        )
    elif isinstance(event, ResourceUpdated):
        changes = event.changes
        await conn.execute(
            UPDATE,
            event.originator_id,
            changes.get("name"),
            changes.get("timezone"),
            changes.get("capacity"),
            changes.get("requires_approval"),
            "details" in changes,
            changes.get("details"),
            _json({k: v for k, v in changes.items() if k not in SETTINGS}),
            event.timestamp,
        )
    elif isinstance(event, ResourceRetired):
        await conn.execute(RETIRE, event.originator_id, event.timestamp)


def _view(row: Any) -> ResourceView:
    values = dict(row)
    rules = Rules(**msgspec.json.decode(values.pop("rules"))).to_dict()
    return msgspec.convert(values | rules, ResourceView)


async def get(conn: Any, resource_id: UUID) -> ResourceView | None:
    row = await conn.fetchrow(SELECT, resource_id)
    return None if row is None else _view(row)


async def get_many(conn: Any, resource_ids: list[UUID]) -> list[ResourceView]:
    return [_view(row) for row in await conn.fetch(SELECT_MANY, resource_ids)]


async def page(
    conn: Any, after: tuple[datetime, UUID] | None, limit: int, *, retired: bool = True
) -> list[ResourceView]:
    """Resources in registration order, after the given (created_at, resource_id)."""
    created_at, resource_id = after or (None, None)
    rows = await conn.fetch(PAGE, created_at, resource_id, retired, limit)
    return [_view(row) for row in rows]

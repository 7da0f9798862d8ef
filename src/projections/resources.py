"""The resources read model: settings, rules, retirement."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from commands.policy import RULE_NAMES, Policy, Rules
from commands.resource import SETTINGS
from events.resource import ResourceRegistered, ResourceRetired, ResourceUpdated
from events.store import Write
from projections.rows import Rows, Table, topic


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


PUT = """
INSERT INTO resources (resource_id, name, timezone, capacity, requires_approval, details, rules,
                       retired_at, created_at, updated_at)
SELECT * FROM json_to_recordset($1::json)
    AS p(resource_id uuid, name text, timezone text, capacity integer, requires_approval boolean,
         details text, rules jsonb, retired_at timestamptz, created_at timestamptz,
         updated_at timestamptz)
"""
# Changes to resources projected before: NULL keeps a column; `rules` holds the changed rules.
CHANGE = """
UPDATE resources r
SET name = COALESCE(c.name, r.name), timezone = COALESCE(c.timezone, r.timezone),
    capacity = COALESCE(c.capacity, r.capacity),
    requires_approval = COALESCE(c.requires_approval, r.requires_approval),
    details = CASE WHEN c.sets_details THEN c.details ELSE r.details END,
    rules = r.rules || COALESCE(c.rules, '{}'), retired_at = COALESCE(c.retired_at, r.retired_at),
    updated_at = c.updated_at
FROM json_to_recordset($1::json)
     AS c(resource_id uuid, name text, timezone text, capacity integer, requires_approval boolean,
          sets_details boolean, details text, rules jsonb, retired_at timestamptz,
          updated_at timestamptz)
WHERE r.resource_id = c.resource_id
"""
TABLE = Table(
    key="resource_id",
    put=PUT,
    change=CHANGE,
)
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
_SETTINGS = ", ".join(f"'{name}'" for name in SETTINGS)
# What `writes` leaves, from the whole log at once: the registration with every update merged
# in log order (`jsonb_object_agg` keeps the last value of a key), and the retirement.
REBUILD = (
    f"""
    WITH e AS (  -- read once (by the index of the resources' own events) for the parts below
        SELECT position, stream_id, topic, state FROM events
        WHERE topic IN ({topic(ResourceRegistered)}, {topic(ResourceUpdated)},
                        {topic(ResourceRetired)})
    ), updated AS (
        SELECT e.stream_id, jsonb_object_agg(c.key, c.value ORDER BY e.position) AS changes
        FROM e CROSS JOIN LATERAL jsonb_each(e.state->'changes') AS c
        WHERE e.topic = {topic(ResourceUpdated)}
        GROUP BY e.stream_id
    ), touched AS (
        SELECT stream_id,
               (array_agg(event_time(state->'timestamp') ORDER BY position DESC))[1] AS last,
               (array_agg(event_time(state->'timestamp'))
                    FILTER (WHERE topic = {topic(ResourceRetired)}))[1] AS retired_at
        FROM e
        GROUP BY stream_id
    )
    INSERT INTO resources (resource_id, name, timezone, capacity, requires_approval, details,
                           rules, retired_at, created_at, updated_at)
    SELECT r.stream_id,
           COALESCE(u.changes->>'name', r.state->>'name'),
           COALESCE(u.changes->>'timezone', r.state->>'timezone'),
           COALESCE((u.changes->>'capacity')::integer, (r.state->>'capacity')::integer),
           COALESCE((u.changes->>'requires_approval')::boolean,
                    (r.state->>'requires_approval')::boolean),
           CASE WHEN u.changes ? 'details' THEN u.changes->>'details' ELSE r.state->>'details' END,
           CASE WHEN jsonb_typeof(r.state->'rules') = 'object' THEN r.state->'rules' ELSE '{{}}' END
               || COALESCE(u.changes - ARRAY[{_SETTINGS}], '{{}}'),
           t.retired_at, event_time(r.state->'timestamp'), t.last
    FROM e r JOIN touched t USING (stream_id) LEFT JOIN updated u USING (stream_id)
    WHERE r.topic = {topic(ResourceRegistered)}
    """,
)


def writes(events: Sequence[Any]) -> list[Write]:
    rows = Rows(TABLE)
    rules: dict[UUID, dict[str, Any]] = {}  # by resource: what the events set, merged
    for event in events:
        resource_id = event.originator_id
        if isinstance(event, ResourceRegistered):
            rules[resource_id] = dict(event.rules or {})
            row = {
                "resource_id": resource_id,
                "name": event.name,
                "timezone": event.timezone,
                "capacity": event.capacity,
                "requires_approval": event.requires_approval,
                "details": event.details,
                "created_at": event.timestamp,
                "updated_at": event.timestamp,
            }
            rows.put_row(resource_id, row)
        elif isinstance(event, ResourceUpdated):
            changes = event.changes
            rules.setdefault(resource_id, {}).update(
                {k: v for k, v in changes.items() if k not in SETTINGS}
            )
            columns = {k: v for k, v in changes.items() if k in SETTINGS and k != "details"}
            if "details" in changes:
                columns |= {"details": changes["details"], "sets_details": True}
            rows.change(resource_id, columns | {"updated_at": event.timestamp})
        elif isinstance(event, ResourceRetired):
            rows.change(resource_id, {"retired_at": event.timestamp, "updated_at": event.timestamp})
    for resource_id, merged in rules.items():
        if merged or resource_id in rows.put:
            rows.change(resource_id, {"rules": merged})
    return rows.writes()


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

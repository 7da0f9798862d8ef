"""What a batch of events leaves of a read model's rows, written with one statement per kind of
change: the events' effects on a row are merged first, so no statement touches a row twice."""

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.utils import get_topic

from events.store import Write


@dataclass(frozen=True)
class Table:
    """The statements that write a table's rows: puts and changes over the rows as JSON
    (`json_to_recordset($1::json)`, `Write.of_rows`), deletes over an array of keys."""

    key: str
    put: str
    """Inserts (or replaces) whole rows."""
    change: str | None = None
    """Updates rows written before: a column missing (NULL) keeps its value."""
    delete: str | None = None
    """Deletes rows by key, from an array of keys."""


@dataclass
class Rows:
    """Each row the events touch, by key: put whole, changed in some columns, or deleted."""

    table: Table
    put: dict[Hashable, dict[str, Any]] = field(default_factory=dict)
    changed: dict[Hashable, dict[str, Any]] = field(default_factory=dict)
    deleted: set[Hashable] = field(default_factory=set)

    def put_row(self, key: Hashable, row: dict[str, Any]) -> None:
        self.changed.pop(key, None)
        self.deleted.discard(key)
        self.put[key] = row

    def change(self, key: Hashable, columns: dict[str, Any]) -> None:
        if not columns:
            return
        if key in self.put:
            self.put[key].update(columns)
        elif key not in self.deleted:  # a deleted row stays deleted
            self.changed.setdefault(key, {}).update(columns)

    def delete(self, key: Hashable) -> None:
        self.put.pop(key, None)
        self.changed.pop(key, None)
        self.deleted.add(key)

    def writes(self) -> list[Write]:
        table, found = self.table, []
        if self.put:
            found.append(Write.of_rows(table.put, self.put.values()))
        if self.changed:
            assert table.change, f"{table.key}: no statement for changes"
            rows = [columns | {table.key: key} for key, columns in self.changed.items()]
            found.append(Write.of_rows(table.change, rows))
        if self.deleted:
            assert table.delete, f"{table.key}: no statement for deletes"
            found.append(Write(table.delete, (list(self.deleted),)))
        return found


def topic(event_type: type) -> str:
    """The SQL literal of an event type's topic, as the events table stores it."""
    return f"'{get_topic(event_type)}'"

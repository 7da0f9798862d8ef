"""What a batch leaves of each row: the merge that lets one statement per kind of change write
a whole batch."""

import json
from typing import Any

from events.store import Write
from projections.rows import Rows, Table

TABLE = Table(key="id", put="PUT", change="CHANGE", delete="DELETE")


def rows_of(write: Write) -> tuple[str, list[dict[str, Any]]]:
    """A put's or a change's statement and the rows its JSON parameter carries."""
    [rows] = write.args
    return write.sql, json.loads(rows)


def test_changes_to_a_row_put_in_the_batch_go_into_the_row() -> None:
    rows = Rows(TABLE)
    rows.put_row(1, {"id": 1, "a": "x", "b": "y"})
    rows.change(1, {"b": "z"})
    [put] = rows.writes()
    assert rows_of(put) == ("PUT", [{"id": 1, "a": "x", "b": "z"}])


def test_changes_to_a_row_from_before_merge_into_one_change() -> None:
    rows = Rows(TABLE)
    rows.change(1, {"a": "x"})
    rows.change(2, {"b": "q"})
    rows.change(1, {"b": "y"})
    rows.change(1, {"a": "w"})
    [change] = rows.writes()
    assert rows_of(change) == ("CHANGE", [{"a": "w", "b": "y", "id": 1}, {"b": "q", "id": 2}])


def test_a_deleted_row_is_only_deleted_and_stays_so() -> None:
    rows = Rows(TABLE)
    rows.put_row(1, {"id": 1, "a": "x", "b": "y"})
    rows.change(2, {"a": "x"})
    rows.delete(1)
    rows.delete(2)
    rows.change(2, {"b": "late"})
    [delete] = rows.writes()
    assert delete.sql == "DELETE"
    assert sorted(delete.args[0]) == [1, 2]


def test_a_row_put_after_its_delete_is_put() -> None:
    rows = Rows(TABLE)
    rows.change(1, {"a": "x"})
    rows.delete(1)
    rows.put_row(1, {"id": 1, "a": "new", "b": "row"})
    [put] = rows.writes()
    assert rows_of(put) == ("PUT", [{"id": 1, "a": "new", "b": "row"}])


def test_one_statement_per_kind_and_none_for_nothing() -> None:
    assert Rows(TABLE).writes() == []
    rows = Rows(TABLE)
    rows.put_row(1, {"id": 1, "a": "x", "b": "y"})
    rows.change(2, {"a": "x"})
    rows.change(3, {})
    rows.delete(4)
    assert [w.sql for w in rows.writes()] == ["PUT", "CHANGE", "DELETE"]

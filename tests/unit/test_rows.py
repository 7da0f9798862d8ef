"""What a batch leaves of each row: the merge that lets one statement per kind of change write
a whole batch."""

from projections.rows import Rows, Table

TABLE = Table(
    key="id",
    put="PUT",
    put_columns=("id", "a", "b"),
    change="CHANGE",
    change_columns=("id", "a", "b"),
    delete="DELETE",
)


def test_changes_to_a_row_put_in_the_batch_go_into_the_row() -> None:
    rows = Rows(TABLE)
    rows.put_row(1, {"id": 1, "a": "x", "b": "y"})
    rows.change(1, {"b": "z"})
    [put] = rows.writes()
    assert (put.sql, put.args) == ("PUT", ([1], ["x"], ["z"]))


def test_changes_to_a_row_from_before_merge_into_one_change() -> None:
    rows = Rows(TABLE)
    rows.change(1, {"a": "x"})
    rows.change(2, {"b": "q"})
    rows.change(1, {"b": "y"})
    rows.change(1, {"a": "w"})
    [change] = rows.writes()
    assert (change.sql, change.args) == ("CHANGE", ([1, 2], ["w", None], ["y", "q"]))


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
    assert (put.sql, put.args) == ("PUT", ([1], ["new"], ["row"]))


def test_one_statement_per_kind_and_none_for_nothing() -> None:
    assert Rows(TABLE).writes() == []
    rows = Rows(TABLE)
    rows.put_row(1, {"id": 1, "a": "x", "b": "y"})
    rows.change(2, {"a": "x"})
    rows.change(3, {})
    rows.delete(4)
    assert [w.sql for w in rows.writes()] == ["PUT", "CHANGE", "DELETE"]

"""The hot path's Core statements (store/statements.py) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from athkit.store.db import Database
from athkit.store.models import SessionRow, UpstreamTokenRow
from athkit.store.repositories import Store
from athkit.store.statements import insert_rows, select_one, update_where
from tests.store.test_store import T0, agent_row, session_row


def test_select_one_reads_a_detached_row_with_every_column(db: Database) -> None:
    store = Store(db)
    row = agent_row()
    with db.begin() as conn:
        insert_rows(conn, row)
    got = select_one(db.engine, type(row), client_id=row.client_id)
    assert got is not None and got is not row
    assert got.agent_id == row.agent_id
    assert got.requested_providers == row.requested_providers  # JSON read back
    assert got.created_at == row.created_at and got.created_at.tzinfo is not None  # UTC
    assert got.client_kind == "ath"  # the column default, applied by the INSERT
    assert select_one(db.engine, type(row), client_id="nope") is None
    assert store.get_agent_by_agent_id(row.agent_id) is not None


def test_a_read_row_can_be_changed_and_merged_back(db: Database) -> None:
    """Rows from select_one behave like ORM-loaded ones once detached (gateway refresh path)."""
    store = Store(db)
    up = UpstreamTokenRow(
        client_id="c", user_id="u", provider_id="p", access_token="a1", updated_at=T0
    )
    store.save_upstream_token(up)
    read = store.get_upstream_token("c", "u", "p")
    assert read is not None and read.access_token == "a1"
    read.access_token = "a2"
    read.updated_at = T0 + timedelta(minutes=1)
    store.save_upstream_token(read)
    again = store.get_upstream_token("c", "u", "p")
    assert again is not None and again.access_token == "a2"
    assert again.updated_at == T0 + timedelta(minutes=1)


def test_update_where_shapes_equal_in_and_null(db: Database) -> None:
    sid = session_row()
    with db.begin() as conn:
        insert_rows(conn, sid)
    key = {"session_id": sid.session_id}
    with db.begin() as conn:
        # binding_hash IS NULL matches; the same shape with a value no longer does
        assert update_where(conn, SessionRow, {**key, "binding_hash": None}, {"binding_hash": "b"})
        assert not update_where(conn, SessionRow, {**key, "binding_hash": None}, {"csrf_hash": "x"})
        assert update_where(conn, SessionRow, {**key, "binding_hash": "b"}, {"csrf_hash": "x"})
        # IN (...) with a list or a tuple
        assert not update_where(conn, SessionRow, {**key, "status": ["denied"]}, {"user_id": "u"})
        changes = {"status": "code_issued", "consented_scopes": ["a"]}
        assert update_where(conn, SessionRow, {**key, "status": ("denied", "pending")}, changes)
    got = select_one(db.engine, SessionRow, session_id=sid.session_id)
    assert got is not None
    assert (got.binding_hash, got.csrf_hash, got.status) == ("b", "x", "code_issued")
    assert got.consented_scopes == ["a"]

"""Core statements for the protocol steps' hot path: no unit of work, no identity map.

Rows stay the classes of :mod:`athkit.store.models`, detached as every read returns them, but
the steps' reads, inserts and compare-and-set updates go through SQLAlchemy Core: a read needs
no ORM session, an INSERT of a new row skips the session's flush bookkeeping and an UPDATE
skips the ORM's in-session synchronisation (there is nothing in the session to synchronise).
Statements are built once per shape and reused, so a call only binds its values.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, and_, bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, configure_mappers
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select

from athkit.store import on_loop
from athkit.store.db import outages_as_unavailable
from athkit.store.models import Base, ReplayRow

R = TypeVar("R", bound=Base)

_lock = threading.Lock()
_columns: dict[type[Base], tuple[str, ...]] = {}
_selects: dict[tuple[type[Base], tuple[str, ...]], Select[Any]] = {}
_inserts: dict[Table, Insert] = {}
_updates: dict[tuple[Table, tuple[tuple[str, str], ...], tuple[str, ...]], Update] = {}

#: Prefixes of bound parameter names: a column may appear in the WHERE and the SET alike.
_WHERE, _SET = "w_", "v_"


def table_of(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _column_keys(model: type[Base]) -> tuple[str, ...]:
    keys = _columns.get(model)
    if keys is None:
        keys = _columns[model] = tuple(c.key for c in table_of(model).c)
    return keys


def row_values(row: Base) -> dict[str, Any]:
    """The column values set on a new row object (unset ones get their column defaults)."""
    state = vars(row)
    return {k: state[k] for k in _column_keys(type(row)) if k in state}


#: Where statements run: a Core connection in a transaction, or an ORM session's.
Target = Connection | Session


def _conn(target: Target) -> Connection:
    return target.connection() if isinstance(target, Session) else target


def insert_rows(target: Target, *rows: Base) -> None:
    """INSERT ``rows`` in the transaction, in order, at once (an IntegrityError is raised
    here, not at commit)."""
    conn = _conn(target)
    for row in rows:
        table = table_of(type(row))
        stmt = _inserts.get(table)
        if stmt is None:
            with _lock:
                stmt = _inserts.setdefault(table, insert(table))
        conn.execute(stmt, row_values(row))


def select_one(engine: Engine, model: type[R], **equals: Any) -> R | None:
    """The row whose columns equal ``equals`` (a unique key), detached; None when absent.
    One Core SELECT on a pooled connection: no ORM session, no commit."""
    keys = tuple(sorted(equals))
    stmt = _selects.get((model, keys))
    if stmt is None:
        configure_mappers()  # detached() needs the mapped attributes in place
        table = table_of(model)
        built = select(table).where(and_(*(table.c[k] == bindparam(_WHERE + k) for k in keys)))
        with _lock:
            stmt = _selects.setdefault((model, keys), built)
    params = {_WHERE + k: v for k, v in equals.items()}
    if on_loop.never_wait():  # an inline step: its thread's own reader, no pool round
        with outages_as_unavailable():
            found = on_loop.reader(engine).execute(stmt, params).first()
    else:
        with outages_as_unavailable(), engine.connect() as conn:
            found = conn.execute(stmt, params).first()
    return detached(model, zip(_column_keys(model), found, strict=True)) if found else None


def detached(model: type[R], values: Iterable[tuple[str, Any]]) -> R:
    """A row object holding ``values`` (every column, as read), outside any session: filled
    the way the ORM's own loader fills one, without an attribute event per column."""
    obj: R = model.__mapper__.class_manager.new_instance()
    obj.__dict__.update(values)
    return obj


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return "in" if isinstance(value, list | tuple) else "eq"


def _condition(table: Table, key: str, kind: str) -> ColumnElement[bool]:
    column = table.c[key]
    if kind == "null":
        return column.is_(None)
    if kind == "in":
        return column.in_(bindparam(_WHERE + key, expanding=True))
    return column == bindparam(_WHERE + key)


def update_where(
    target: Target, model: type[Base], where: dict[str, Any], values: dict[str, Any]
) -> int:
    """``UPDATE model SET values WHERE ...`` in the transaction: the number of rows changed.
    In ``where``, a value means ``column = value``, a list or tuple ``column IN (...)`` and
    None ``column IS NULL``."""
    table = table_of(model)
    # One expected value is ``=``: an IN list is re-rendered on every execution.
    where = {
        k: v[0] if isinstance(v, list | tuple) and len(v) == 1 else v for k, v in where.items()
    }
    shape = tuple(sorted((k, _kind(v)) for k, v in where.items()))
    vkeys = tuple(sorted(values))
    key = (table, shape, vkeys)
    stmt = _updates.get(key)
    if stmt is None:
        built = (
            update(table)
            .where(and_(*(_condition(table, k, kind) for k, kind in shape)))
            .values({k: bindparam(_SET + k) for k in vkeys})
        )
        with _lock:
            stmt = _updates.setdefault(key, built)
    params = {
        _WHERE + k: list(v) if isinstance(v, tuple) else v
        for k, v in where.items()
        if v is not None
    }
    params.update({_SET + k: v for k, v in values.items()})
    result = _conn(target).execute(stmt, params)
    return int(result.rowcount)


_replay = table_of(ReplayRow)
_DROP_EXPIRED_REPLAY = delete(_replay).where(
    _replay.c.key == bindparam("key"), _replay.c.expires_at < bindparam("now")
)
_upserts: dict[str, Any] = {}


def _replay_upsert(dialect: str) -> Any:
    """``INSERT … ON CONFLICT (key) DO UPDATE … WHERE expires_at < :now``: a new key or an
    expired one is (re)written, a live one is left alone (no row changed)."""
    stmt = _upserts.get(dialect)
    if stmt is None:
        module = sqlite if dialect == "sqlite" else postgresql
        ins = module.insert(_replay).values(
            key=bindparam("key"), expires_at=bindparam("expires_at")
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[_replay.c.key],
            set_={"expires_at": ins.excluded.expires_at},
            where=_replay.c.expires_at < bindparam("now"),
        ).execution_options(preserve_rowcount=True)  # an INSERT's rowcount is dropped otherwise
        with _lock:
            stmt = _upserts.setdefault(dialect, stmt)
    return stmt


def record_replay(target: Target, row: ReplayRow, now: datetime) -> bool:
    """Record an attestation's jti; False when a live entry of the key exists (a replay).

    SQLite and PostgreSQL: one upsert (racing writers of one key: exactly one wins). Other
    databases: the expired entry is deleted first and a live one makes the INSERT fail with
    an IntegrityError."""
    conn = _conn(target)
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        params = {"key": row.key, "expires_at": row.expires_at, "now": now}
        return int(conn.execute(_replay_upsert(name), params).rowcount) == 1
    conn.execute(_DROP_EXPIRED_REPLAY, {"key": row.key, "now": now})
    insert_rows(conn, row)
    return True

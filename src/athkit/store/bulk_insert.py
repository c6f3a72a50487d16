"""Many rows of one table in one ``executemany``, with the column types' bind processing done
by hand: the per-call audit rows (``core/audit_writer.py``), written by the thousand.

SQLAlchemy's own executemany runs its parameter machinery per row (every column through its
type's processor, a dict of bound values per row); for the audit table that cost 2.5× the
database's own insert. Here the statement is compiled once per dialect, each column keeps the
processor its type gives that dialect (so a value is stored exactly as SQLAlchemy would store
it, and reads back through the ORM unchanged), and the values that recur on nearly every row
(an empty list or mapping in a JSON column, NULL) are processed once and reused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.engine import Dialect

_Processor = Callable[[Any], Any] | None
#: The values processed once per column and reused: NULL, an empty list, an empty mapping.
_EMPTY_KINDS: dict[type, str] = {type(None): "none", list: "list", dict: "dict"}


class _Plan:
    """The compiled INSERT for one dialect and how to turn a row into its parameters."""

    def __init__(self, table: Table, columns: Sequence[str], dialect: Dialect) -> None:
        compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
        self.sql = str(compiled)
        order = compiled.positiontup if compiled.positional else None
        self.order: tuple[str, ...] = tuple(order) if order is not None else tuple(columns)
        self.positional = order is not None
        self.processors: tuple[_Processor, ...] = tuple(
            table.c[k].type.dialect_impl(dialect).bind_processor(dialect) for k in self.order
        )
        # (column index, empty value kind) -> that value as processed
        self._common: dict[tuple[int, str], Any] = {}

    def _process(self, i: int, proc: _Processor, value: Any) -> Any:
        if proc is None:
            return value
        kind = _EMPTY_KINDS.get(type(value))
        if kind is None or value:  # not NULL, [] or {}: processed as it is
            return proc(value)
        key = (i, kind)
        if key not in self._common:
            self._common[key] = proc(value)
        return self._common[key]

    def parameters(self, row: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = tuple(
            self._process(i, proc, row[k])
            for i, (k, proc) in enumerate(zip(self.order, self.processors, strict=True))
        )
        return values if self.positional else dict(zip(self.order, values, strict=True))


class BulkInsert:
    """``BulkInsert(table, columns)(conn, rows)``: INSERT ``rows`` (mappings holding every
    column in ``columns``) in the connection's transaction, as one executemany."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self.table = table
        self.columns = tuple(columns)
        self._plans: dict[str, _Plan] = {}
        self._lock = threading.Lock()

    def _plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            with self._lock:
                plan = self._plans.get(dialect.name)
                if plan is None:
                    plan = self._plans[dialect.name] = _Plan(self.table, self.columns, dialect)
        return plan

    def __call__(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        plan = self._plan(conn.dialect)
        params = [plan.parameters(r) for r in rows]
        conn.exec_driver_sql(plan.sql, params)

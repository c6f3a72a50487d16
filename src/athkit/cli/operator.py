"""Operator commands on a service's store: list agents, decide on them, read the audit log.

Decisions go through :meth:`athkit.core.service.ATHService.decide_agent`, the same code path as
the service's own operator API, so each one writes its audit row (and suspending or denying an
agent revokes its live tokens). This module imports the server packages at import time:
:mod:`athkit.cli.main` loads it lazily.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from athkit.core.audit_export import iter_csv, iter_json
from athkit.core.service import ATHService
from athkit.core.settings import ATHSettings
from athkit.protocol.errors import ATHError
from athkit.store import Database, Store
from athkit.store.audit_query import AuditFilter, audit_all, audit_page
from athkit.store.models import AgentRow, AuditRow

DB_FILE = "athkit.db"


class StoreNotFound(Exception):
    """No database where the operator pointed."""


def resolve_url(database_url: str | None, data_dir: Path) -> str:
    """The explicit URL, else the service's SQLite file under ``data_dir`` (which must exist)."""
    if database_url:
        return database_url
    path = data_dir.expanduser().resolve() / DB_FILE
    if not path.is_file():
        raise StoreNotFound(
            f"no athkit database at {path} (pass --data-dir of the service or --database-url)"
        )
    return f"sqlite:///{path}"


@contextmanager
def open_store(database_url: str | None, data_dir: Path) -> Iterator[Store]:
    db = Database(resolve_url(database_url, data_dir))
    try:
        yield Store(db)
    finally:
        db.dispose()


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _scopes(granted: Sequence[Any], refused: Sequence[Any] = ()) -> str:
    """One scope a line: granted ones plain, refused ones marked."""
    lines = [escape(str(s)) for s in granted]
    lines += [f"[red]✗ {escape(str(s))}[/]" for s in refused]
    return "\n".join(lines) or "—"


def _approvals(providers: Sequence[Any]) -> str:
    blocks = []
    for p in providers:
        if isinstance(p, dict):
            head = f"[dim]{escape(str(p.get('provider_id')))}:[/]"
            scopes = _scopes(p.get("approved_scopes") or [], p.get("denied_scopes") or [])
            blocks.append(f"{head}\n{scopes}")
    return "\n".join(blocks) or "—"


STATUS_STYLE = {"approved": "green", "pending": "yellow", "denied": "red", "suspended": "red"}


def agents_table(rows: Sequence[AgentRow]) -> Table:
    table = Table(title=f"Registered agents ({len(rows)})", title_justify="left")
    table.add_column("client_id", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("agent", overflow="fold", ratio=3)
    table.add_column("scopes (✗ denied)", no_wrap=True)
    table.add_column("registered", no_wrap=True)
    for row in rows:
        style = STATUS_STYLE.get(row.status, "white")
        table.add_row(
            escape(row.client_id),
            f"[{style}]{escape(row.status)}[/]",
            f"{escape(row.name)}\n[dim]{escape(row.agent_id)}[/]\n"
            f"[dim]by {escape(row.developer_name)} ({escape(row.developer_id)})[/]",
            _approvals(row.approved_providers),
            row.created_at.strftime("%Y-%m-%d") if row.created_at else "",
        )
    return table


def audit_table(rows: Sequence[AuditRow]) -> Table:
    table = Table(title=f"Audit log (newest first, {len(rows)} rows)", title_justify="left")
    table.add_column("time", overflow="fold", ratio=1)
    table.add_column("event", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("agent / user", overflow="fold", ratio=3)
    table.add_column("scopes (✗ denied)", no_wrap=True)
    table.add_column("reason", overflow="fold", ratio=2)
    for row in rows:
        who = escape(row.agent_id or "")
        if row.user_id:
            who += f"\n[dim]user[/] {escape(row.user_id)}"
        table.add_row(
            _when(row.timestamp),
            escape(row.event),
            escape(row.outcome),
            who,
            _scopes(row.effective_scopes, row.denied_scopes),
            escape(row.denial_reason or ""),
        )
    return table


def list_agents(
    console: Console, database_url: str | None, data_dir: Path, status: str | None
) -> None:
    with open_store(database_url, data_dir) as store:
        console.print(agents_table(store.list_agents(status)))


def decide(
    console: Console,
    database_url: str | None,
    data_dir: Path,
    client_id: str,
    status: str,
    reason: str | None,
) -> bool:
    """Apply an operator decision; False (with a message) when it could not be applied."""
    url = resolve_url(database_url, data_dir)
    db = Database(url)
    # The settings only matter for the parts of the service this path does not touch.
    service = ATHService(ATHSettings(public_url="http://localhost"), store=Store(db))
    try:
        try:
            changed = service.decide_agent(client_id, status, actor="cli", reason=reason)
        except ATHError as exc:
            console.print(f"[red]{escape(exc.code_str)}: {escape(exc.message)}[/]")
            return False
        if not changed:
            console.print(f"[red]agent {escape(client_id)} was not updated[/]")
            return False
        row = service.store.get_agent(client_id)
        agent = row.agent_id if row else client_id
        extra = "" if status == "approved" else " (its live tokens are revoked)"
        console.print(
            f"agent {escape(client_id)} ({escape(agent)}) is now [bold]{status}[/]{extra}"
        )
        return True
    finally:
        service.close()


def show_audit(
    console: Console,
    database_url: str | None,
    data_dir: Path,
    limit: int,
    flt: AuditFilter,
    fmt: str = "table",
) -> None:
    """The newest ``limit`` matching rows as a table, or every matching row (up to ``limit``)
    as CSV or JSON on standard output."""
    with open_store(database_url, data_dir) as store:
        if fmt == "table":
            console.print(audit_table(audit_page(store.db, flt, limit=limit)))
            return
        rows = audit_all(store.db, flt, max_rows=limit)
        for chunk in iter_csv(rows) if fmt == "csv" else iter_json(rows):
            sys.stdout.write(chunk)
        sys.stdout.flush()

"""Operator commands on a service's store: list agents, decide on them, read the audit log.

Decisions go through :meth:`athkit.core.service.ATHService.decide_agent`, the same code path as
the service's own operator API, so each one writes its audit row (and suspending or denying an
agent revokes its live tokens). This module imports the server packages at import time:
:mod:`athkit.cli.main` loads it lazily.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from athkit.core.service import ATHService
from athkit.core.settings import ATHSettings
from athkit.protocol.errors import ATHError
from athkit.store import Database, Store
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


def _scopes(values: Sequence[Any]) -> str:
    return " ".join(str(v) for v in values) or "—"


def _provider_scopes(providers: Sequence[Any], key: str) -> str:
    parts = []
    for p in providers:
        if isinstance(p, dict) and p.get(key):
            parts.append(f"{p.get('provider_id')}: {_scopes(p[key])}")
    return "\n".join(parts) or "—"


STATUS_STYLE = {"approved": "green", "pending": "yellow", "denied": "red", "suspended": "red"}


def agents_table(rows: Sequence[AgentRow]) -> Table:
    table = Table(title=f"Registered agents ({len(rows)})", title_justify="left")
    table.add_column("client_id", no_wrap=True)
    for name in ("agent", "status", "approved scopes", "denied scopes", "registered"):
        table.add_column(name, overflow="fold")
    for row in rows:
        style = STATUS_STYLE.get(row.status, "")
        table.add_row(
            row.client_id,
            f"{escape(row.name)}\n[dim]{escape(row.agent_id)}[/]\n"
            f"[dim]by {escape(row.developer_name)} ({escape(row.developer_id)})[/]",
            f"[{style}]{row.status}[/]" if style else row.status,
            _provider_scopes(row.approved_providers, "approved_scopes"),
            _provider_scopes(row.approved_providers, "denied_scopes"),
            _when(row.created_at),
        )
    return table


def audit_table(rows: Sequence[AuditRow]) -> Table:
    table = Table(title=f"Audit log (newest first, {len(rows)} rows)", title_justify="left")
    for name in ("time", "event", "outcome", "agent", "user", "effective", "denied", "reason"):
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(
            _when(row.timestamp),
            row.event,
            row.outcome,
            escape(row.agent_id or ""),
            escape(row.user_id or ""),
            _scopes(row.effective_scopes),
            _scopes(row.denied_scopes),
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
    console: Console, database_url: str | None, data_dir: Path, limit: int, agent_id: str | None
) -> None:
    with open_store(database_url, data_dir) as store:
        console.print(audit_table(store.list_audit(agent_id=agent_id, limit=limit)))

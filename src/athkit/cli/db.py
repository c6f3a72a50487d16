"""``athkit db purge``: delete expired sessions, tokens, replay entries and handshakes now.

A running service does the same every ``purge_interval`` seconds (``ATHKIT_PURGE_INTERVAL``);
this command is for cron, or for a service run with the periodic purge off.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

db_app = typer.Typer(help="Maintenance of a service's database.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


@db_app.command("purge")
def purge(
    database_url: Annotated[
        Optional[str],  # noqa: UP045 - Typer reads this annotation at runtime
        typer.Option(
            "--database-url",
            envvar="ATHKIT_DATABASE_URL",
            help="SQLAlchemy URL of the service's database (overrides --data-dir).",
        ),
    ] = None,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="The service's data directory (SQLite).")
    ] = Path(".athkit/shop"),
    grace: Annotated[
        int, typer.Option(help="Keep rows this many seconds past their expiry.", min=0)
    ] = 3600,
) -> None:
    """Delete every expired row (sessions, tokens, replay entries, handshakes)."""
    from athkit.cli.extras import server_extras

    with server_extras("db purge"):
        from athkit.cli.operator import StoreNotFound, resolve_url
        from athkit.store.db import Database
        from athkit.store.errors import DatabaseUnreachableError
        from athkit.store.purge import purge_expired

    try:
        db = Database(resolve_url(database_url, data_dir))
    except (StoreNotFound, DatabaseUnreachableError) as exc:
        err.print(str(exc), style="red", markup=False, soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    try:
        counts = purge_expired(db, datetime.now(UTC), timedelta(seconds=grace))
    finally:
        db.dispose()
    total = sum(counts.values())
    for table, n in counts.items():
        out.print(f"{table}: {n}")
    out.print(f"purged {total} expired row(s)")

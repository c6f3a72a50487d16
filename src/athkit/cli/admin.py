"""``athkit admin create-operator``: operator accounts for a gateway, a registry or a service.

The account lands in the database the server uses: ``--gateway-config`` (its
``database_url`` or data dir), ``--registry`` with the registry's ``--data-dir`` /
``--database-url``, or a native service's ``--data-dir`` / ``--database-url``. The password is
read from a prompt (or, for scripts, one line on standard input with ``--password-stdin``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

admin_app = typer.Typer(help="Operator accounts.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _database(  # type: ignore[no-untyped-def]
    gateway_config: Path | None, registry: bool, database_url: str | None, data_dir: Path
):
    from athkit.store.db import Database, default_sqlite_url

    if gateway_config is not None:
        from athkit.gateway.config import ConfigError, load_config

        try:
            cfg = load_config(gateway_config, check_env=False)
        except ConfigError as exc:
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
        return Database(cfg.gateway.database_url or default_sqlite_url(cfg.gateway.data_dir))
    if registry:
        from athkit.registry.db import RegistryDatabase, default_registry_url

        return RegistryDatabase(database_url or default_registry_url(data_dir))
    return Database(database_url or default_sqlite_url(data_dir))


@admin_app.command("create-operator")
def create_operator(
    name: Annotated[str, typer.Argument(help="The operator's sign-in name.")],
    gateway_config: Annotated[
        Optional[Path],  # noqa: UP045 - Typer reads this annotation at runtime
        typer.Option("--gateway-config", help="The gateway's TOML file (its database)."),
    ] = None,
    registry: Annotated[
        bool, typer.Option("--registry", help="An operator of the discovery registry.")
    ] = False,
    database_url: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--database-url", envvar="ATHKIT_DATABASE_URL", help="SQLAlchemy URL."),
    ] = None,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Data directory holding the SQLite file.")
    ] = Path(".athkit/gateway"),
    totp: Annotated[
        bool, typer.Option("--totp", help="Also require a TOTP code (RFC 6238) at sign-in.")
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create an operator account (argon2id password, optional TOTP)."""
    from athkit.core.operators import OperatorAccounts
    from athkit.store import Store
    from athkit.store.operators import OperatorExistsError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    db = _database(gateway_config, registry, database_url, data_dir)
    try:
        audit = None if registry else Store(db).add_audit
        accounts = OperatorAccounts(db, audit=audit)
        try:
            made = accounts.create(name, password, totp=totp)
        except (ValueError, OperatorExistsError) as exc:
            msg = f"operator {name} already exists" if isinstance(exc, OperatorExistsError) else exc
            err.print(f"[red]{msg}[/]")
            raise typer.Exit(1) from None
    finally:
        db.dispose()
    out.print(f"operator [bold]{made.name}[/] created")
    if made.totp_uri:
        out.print("add this to an authenticator app (shown once):")
        out.print(made.totp_uri, soft_wrap=True, markup=False)

"""What the ``athkit agent`` commands share: the vault and user options, error printing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from athkit.client.agent import ATHAgent
from athkit.client.errors import ClientStateError
from athkit.client.vault import (
    DEFAULT_USER,
    ReauthorizationNeeded,
    RefreshFailed,
    Vault,
    VaultError,
    default_vault,
)
from athkit.protocol.errors import ATHError, error_hint

out = Console()
err = Console(stderr=True)

VaultOpt = Annotated[
    Path | None,
    typer.Option(
        "--vault",
        envvar="ATHKIT_VAULT",
        help="Vault file (default: the user's config dir, athkit/vault.json).",
        dir_okay=False,
    ),
]
UserOpt = Annotated[
    str, typer.Option("--user", "-u", help="The end user the grant belongs to.")
]
DevOpt = Annotated[
    bool, typer.Option("--dev", help="Allow http and loopback services (local work).")
]


def _prompt(creating: bool) -> str:
    if not sys.stdin.isatty():
        raise VaultError(
            "the vault needs a passphrase and there is no terminal to ask: set "
            "ATHKIT_VAULT_PASSPHRASE or ATHKIT_VAULT_KEY"
        )
    return str(
        typer.prompt(
            "Passphrase for the athkit credential vault",
            hide_input=True,
            confirmation_prompt=creating,
        )
    )


def open_vault(path: Path | None) -> Vault:
    try:
        return default_vault(path, prompt=_prompt)
    except (VaultError, ValueError) as exc:
        fail(exc)


def open_agent(path: Path | None, *, dev: bool = False) -> ATHAgent:
    try:
        return ATHAgent.load(open_vault(path), dev_mode=dev)
    except (ClientStateError, VaultError) as exc:
        fail(exc)


_PLAIN: tuple[type[BaseException], ...] = (ReauthorizationNeeded, VaultError, ClientStateError)
_PLAIN += (RefreshFailed, LookupError, ValueError)


def fail(exc: BaseException, code: int = 1) -> NoReturn:
    """Print ``exc`` in one or two lines (an ATH error with its what-to-do hint) and exit."""
    if isinstance(exc, ATHError):
        err.print(f"[red]{exc.code_str}[/]: {exc.message}")
        err.print(f"[yellow]what to do:[/] {error_hint(exc.code)}")
    elif isinstance(exc, _PLAIN):
        err.print(f"[red]{exc}[/]")
    else:
        raise exc
    raise typer.Exit(code)


__all__ = [
    "DEFAULT_USER",
    "DevOpt",
    "UserOpt",
    "VaultOpt",
    "err",
    "fail",
    "open_agent",
    "open_vault",
    "out",
]

"""``athkit agent discover``: find ATH providers in any §2 mode and print them (agent side).

Needs only the agent-side install. A direct ``--url`` is fetched only if its origin matches an
``--allow`` pattern or the user answers y to the prompt (prompt-injection defence, seed 004).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from athkit.client.discovery import (
    Discovery,
    DiscoveryMode,
    FetchLimits,
    discover,
    origin_of,
)
from athkit.client.errors import DraftVersionWarning
from athkit.protocol.errors import ATHError

agent_app = typer.Typer(
    help="Agent-side tools: identity, discovery, connect, call, grants, revoke.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)

REGISTRY_ENV = "ATHKIT_REGISTRY_URL"


def _confirm(url: str) -> bool:
    return typer.confirm(
        f"Fetch the ATH discovery document of {origin_of(url)} ({url})? "
        "Only say yes if you trust where this URL came from",
        default=False,
    )


def _table(found: Discovery) -> Table:
    title = f"{found.mode.value} discovery"
    if found.source_url:
        title += f" from {found.source_url}"
    table = Table(title=title)
    registry = found.mode is DiscoveryMode.REGISTRY
    columns = ["provider", "name", "base URL", "API base", "scopes", "categories"]
    if registry:
        columns += ["verified", "score"]
    for column in columns:
        table.add_column(column, overflow="fold")
    for p in found.providers:
        row = [
            p.provider_id,
            p.name if not p.error else f"{p.name} [red]({p.error})[/]",
            p.base_url,
            p.api_base or "-",
            " ".join(p.scopes) or "-",
            ", ".join(p.categories) or "-",
        ]
        if registry:
            row += ["yes" if p.verified else "no", f"{p.score:.3f}" if p.score is not None else "-"]
        table.add_row(*row)
    return table


@agent_app.command("discover")
def discover_cmd(
    service: Annotated[
        str | None, typer.Option("--service", help="Service base URL (ath-app.json).")
    ] = None,
    gateway: Annotated[
        str | None, typer.Option("--gateway", help="Gateway base URL (ath.json).")
    ] = None,
    intent: Annotated[
        str | None, typer.Option("--intent", help="What you need, searched at a registry.")
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option("--registry", envvar=REGISTRY_ENV, help="Registry base URL (for --intent)."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="A URL you were handed (direct discovery; asks first)."),
    ] = None,
    manual: Annotated[
        Path | None,
        typer.Option("--manual", help="A §2 manual config JSON file.", dir_okay=False),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="Origin or *.domain allowed for --url without asking."),
    ] = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="Allow http and loopback (local work).")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Registry results to show.")] = 10,
    resolve: Annotated[
        bool, typer.Option("--resolve", help="Also fetch each registry result's document.")
    ] = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per fetch.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Discover ATH providers: --service, --gateway, --intent, --url or --manual (one of them)."""
    chosen = [x for x in (service, gateway, intent, url, manual) if x is not None]
    if len(chosen) != 1:
        err.print("[red]give exactly one of --service, --gateway, --intent, --url, --manual[/]")
        raise typer.Exit(2)
    if intent is not None and not registry:
        err.print(f"[red]--intent needs --registry URL (or {REGISTRY_ENV})[/]")
        raise typer.Exit(2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DraftVersionWarning)  # listed in found.warnings
            found = discover(
                manual=manual,
                service=service,
                gateway=gateway,
                intent=intent,
                registry=registry if intent is not None else None,
                url=url,
                allow=allow or (),
                confirm=_confirm if url is not None or resolve else None,
                dev_mode=dev,
                limits=FetchLimits(timeout=timeout),
                limit=limit,
                resolve=resolve,
            )
    except ValueError as exc:  # a malformed --allow pattern
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    except ATHError as exc:
        err.print(f"[red]{exc.code_str}: {exc.message}[/]")
        if not dev and "https" in exc.message:
            err.print("for a local http:// service (development only), add --dev")
        raise typer.Exit(1) from None
    for warning in found.warnings:
        err.print(f"[yellow]warning: {warning}[/]")
    if as_json:
        typer.echo(json.dumps(found.to_dict(), indent=2))
        return
    if not found.providers:
        out.print("no providers found")
        return
    out.print(_table(found))


# The identity and grant commands register themselves on agent_app.
from athkit.cli import agent_grants, agent_identity  # noqa: E402,F401

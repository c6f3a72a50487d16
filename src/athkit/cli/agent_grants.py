"""``athkit agent connect | call | grants | revoke``: from nothing to an authorized API call.

``connect`` discovers the service, registers the agent if the vault has no registration there,
starts a user authorization, prints (and with ``--open`` opens) the consent URL, waits with a
spinner until the user decided, and keeps the grant in the vault. ``call`` uses it.
"""

from __future__ import annotations

import json
import time
import webbrowser
from typing import Annotated, Any

import typer
from rich.table import Table

from athkit.cli.agent import agent_app
from athkit.cli.agent_common import (
    DEFAULT_USER,
    DevOpt,
    UserOpt,
    VaultOpt,
    err,
    fail,
    open_agent,
    out,
)
from athkit.client.errors import ClientStateError
from athkit.client.vault import ReauthorizationNeeded, RefreshFailed, VaultError
from athkit.protocol.errors import ATHError

_HANDLED = (ATHError, ClientStateError, VaultError, ReauthorizationNeeded, RefreshFailed,
            LookupError, ValueError)


def _scopes(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [s for v in values for s in v.replace(",", " ").split() if s]


@agent_app.command("connect")
def connect_cmd(
    service: Annotated[str, typer.Argument(help="The service's (or gateway's) base URL.")],
    provider: Annotated[
        str | None, typer.Option(help="Provider id (needed when the service offers several).")
    ] = None,
    scopes: Annotated[
        list[str] | None, typer.Option("--scopes", "-s", help="Scopes (space/comma separated).")
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the consent URL in a browser.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the user.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the user.", min=1)] = 300,
    user: UserOpt = DEFAULT_USER,
    dev: DevOpt = False,
    vault: VaultOpt = None,
) -> None:
    """Discover, register if needed, authorize: the user consents, the grant is kept."""
    agent = open_agent(vault, dev=dev)
    try:
        pending = agent.connect(service, provider=provider, scopes=_scopes(scopes), user=user)
    except _HANDLED as exc:
        fail(exc)
    out.print(f"[bold]{pending.provider_id}[/] at {pending.service}: asking for "
              f"{' '.join(pending.scopes)}")
    out.print("Open this URL to let the agent act for you:")
    out.print(pending.authorization_url, soft_wrap=True, highlight=False)
    if open_browser:
        webbrowser.open(pending.authorization_url)
    if not wait:
        out.print(f"(session {pending.ath_session_id}; run connect again to start over)")
        return
    try:
        with out.status("waiting for you to decide in the browser...", spinner="dots") as status:

            def tick(left: float) -> None:
                status.update(f"waiting for you to decide in the browser... ({int(left)} s left)")

            grant = agent.wait_for_authorization(
                pending, user=user, timeout=timeout, on_wait=tick
            )
    except _HANDLED as exc:
        fail(exc)
    out.print(f"[green]connected[/]: {grant.provider_id} with {' '.join(grant.scopes)} "
              f"(expires in {int(grant.expires_at - time.time())} s)")


@agent_app.command("call")
def call_cmd(
    provider: Annotated[str, typer.Argument(help="Provider id of a grant (athkit agent grants).")],
    method: Annotated[str, typer.Argument(help="HTTP method.")],
    path: Annotated[str, typer.Argument(help="Path under the provider's API base.")],
    body: Annotated[str | None, typer.Option("--json", help="JSON request body.")] = None,
    service: Annotated[
        str | None, typer.Option(help="Service URL, when several hold this provider.")
    ] = None,
    user: UserOpt = DEFAULT_USER,
    dev: DevOpt = False,
    vault: VaultOpt = None,
) -> None:
    """Call the provider's API with the user's grant; prints the response."""
    payload: Any = None
    if body is not None:
        try:
            payload = json.loads(body)
        except ValueError as exc:
            fail(ValueError(f"--json is not valid JSON: {exc}"), 2)
    agent = open_agent(vault, dev=dev)
    try:
        resp = agent.call(provider, method, path, json=payload, service=service, user=user)
    except _HANDLED as exc:
        fail(exc)
    err.print(f"HTTP {resp.status_code}")
    try:
        typer.echo(json.dumps(resp.json(), indent=2))
    except ValueError:
        typer.echo(resp.text)
    if resp.status_code >= 400:
        raise typer.Exit(1)


@agent_app.command("grants")
def grants_cmd(
    user: UserOpt = DEFAULT_USER,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    vault: VaultOpt = None,
) -> None:
    """The grants this agent holds for the user (no token values are shown)."""
    agent = open_agent(vault)
    grants = agent.grants(user)
    if as_json:
        typer.echo(json.dumps([g.public_dict() for g in grants], indent=2))
        return
    if not grants:
        out.print(f"no grants for user {user!r} (athkit agent connect SERVICE)")
        return
    table = Table(title=f"grants of user {user}")
    for column in ("service", "provider", "scopes", "expires", "refreshable"):
        table.add_column(column, overflow="fold")
    now = time.time()
    for g in grants:
        left = int(g.expires_at - now)
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(g.expires_at))
        expiry = f"{when} ({left // 60} min)" if left > 0 else f"[red]expired {when}[/]"
        table.add_row(
            g.service, g.provider_id, " ".join(g.scopes), expiry, "yes" if g.refreshable else "no"
        )
    out.print(table)


@agent_app.command("revoke")
def revoke_cmd(
    provider: Annotated[str, typer.Argument(help="Provider id of the grant to revoke.")],
    service: Annotated[
        str | None, typer.Option(help="Service URL, when several hold this provider.")
    ] = None,
    user: UserOpt = DEFAULT_USER,
    dev: DevOpt = False,
    vault: VaultOpt = None,
) -> None:
    """Revoke the grant at the service (§8) and remove it from the vault."""
    agent = open_agent(vault, dev=dev)
    try:
        grant = agent.revoke(provider, service=service, user=user)
    except _HANDLED as exc:
        fail(exc)
    out.print(f"revoked {grant.provider_id} at {grant.service}")

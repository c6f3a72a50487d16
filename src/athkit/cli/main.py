"""``athkit``: the command line (Typer).

Commands: ``demo`` (the ATH Shop walkthrough, run for real), ``serve-shop`` (the demo shop in the
foreground), ``agents list|approve|deny|suspend`` and ``audit`` (operator tools on a service's
store), ``keygen`` (an agent key pair) and ``version``.

Start-up imports only the agent-side install. The commands that run or inspect a service import
their modules inside the command and explain how to install the server extras when missing.
"""

from __future__ import annotations

import json
import os
import signal
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from athkit import ATH_VERSION, __version__
from athkit.cli.admin import admin_app
from athkit.cli.agent import agent_app
from athkit.cli.db import db_app
from athkit.cli.extras import server_extras
from athkit.cli.gateway import gateway_app
from athkit.cli.mcp import mcp_app
from athkit.cli.registry import registry_app
from athkit.cli.user import user_app

app = typer.Typer(
    name="athkit",
    help="ATH (Agent Trust Handshake) toolkit: demo, demo shop, operator and key tools.",
    no_args_is_help=True,
    add_completion=False,
)
agents_app = typer.Typer(help="Operator decisions on registered agents.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
app.add_typer(gateway_app, name="gateway")
app.add_typer(agent_app, name="agent")
app.add_typer(user_app, name="user")
app.add_typer(registry_app, name="registry")
app.add_typer(admin_app, name="admin")
app.add_typer(db_app, name="db")
app.add_typer(mcp_app, name="mcp")

out = Console()
err = Console(stderr=True)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_DATA_DIR = Path(".athkit/shop")


# -- shared options -------------------------------------------------------------------------

DatabaseUrlOpt = Annotated[
    Optional[str],  # noqa: UP045 - Typer reads this annotation at runtime (Python 3.10)
    typer.Option(
        "--database-url",
        envvar="ATHKIT_DATABASE_URL",
        help="SQLAlchemy URL of the service's database (overrides --data-dir).",
    ),
]
DataDirOpt = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="The service's data directory (its SQLite file is athkit.db in there).",
    ),
]


# -- demo -----------------------------------------------------------------------------------


@app.command()
def demo(
    browser: Annotated[
        bool,
        typer.Option(
            "--browser",
            help="Let a person sign in and consent in a real browser (waits up to 5 minutes).",
        ),
    ] = False,
    gateway: Annotated[
        bool,
        typer.Option(
            "--gateway",
            help="Gateway mode: an ATH gateway in front of an OAuth API, with a local OpenID "
            "provider upstream (needs Node.js >= 20 and npm; installs it on first use).",
        ),
    ] = False,
    handshake: Annotated[
        bool,
        typer.Option(
            "--handshake",
            help="The 9-step trusted handshake (seed 003): DIDs, a user-signed credential, "
            "out-of-band approval, an encrypted session.",
        ),
    ] = False,
    data_dir: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--data-dir",
            help="Keep the shop's (or gateway's) data here (default: a temporary dir, removed).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the verdict.")] = False,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="With --gateway: keep the gateway, provider and Example Mail running for your "
            "own agent (Ctrl-C stops them) instead of walking the steps.",
        ),
    ] = False,
    port: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--port", min=1, max=65535, help="With --serve: the gateway's port."),
    ] = None,
    wait: Annotated[
        float,
        typer.Option("--wait", min=1, hidden=True, help="Seconds to wait for the person."),
    ] = 300.0,
) -> None:
    """Run the ATH Shop walkthrough against real local servers, every HTTP call shown.

    With --gateway the same steps run through an ATH gateway in front of an OAuth API.
    Exits 0 only if every step (discovery, registration, authorization, consent, token,
    API calls, revocation) behaved as expected.
    """
    if gateway and browser:
        err.print("[red]--browser is not available with --gateway yet[/]")
        raise typer.Exit(2)
    if (serve or port) and not gateway:
        err.print(
            "[red]--serve/--port keep the gateway stack running (add --gateway); "
            "for the native shop run `athkit serve-shop`[/]"
        )
        raise typer.Exit(2)
    if handshake and (gateway or browser):
        err.print("[red]--handshake runs on its own (the approval is done by the user's CLI)[/]")
        raise typer.Exit(2)
    if handshake:
        with server_extras("demo"):
            from athkit.cli.demo.handshake import run_handshake_demo

            raise typer.Exit(run_handshake_demo(out, data_dir=data_dir, quiet=quiet))
    with server_extras("demo"):
        from athkit.cli.demo import DemoOptions, run_demo

    options = DemoOptions(
        browser=browser,
        gateway=gateway,
        data_dir=data_dir,
        quiet=quiet,
        wait_seconds=wait,
        serve=serve,
        port=port,
    )
    code = run_demo(options, out)
    raise typer.Exit(code)


# -- serve-shop -----------------------------------------------------------------------------


@app.command("serve-shop")
def serve_shop(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    public_url: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="The shop's public base URL (default: http://HOST:PORT)."),
    ] = None,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the shop keeps its SQLite database.")
    ] = DEFAULT_DATA_DIR,
    database_url: DatabaseUrlOpt = None,
    dev: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--dev/--no-dev",
            help="Accept http:// and loopback agent identity URLs (local use only). "
            "Default: on when listening on a loopback address.",
        ),
    ] = None,
) -> None:
    """Run ATH Shop (the seed demo service) with uvicorn in the foreground."""
    with server_extras("serve-shop"):
        import uvicorn

        from athkit.demo.shop import DEMO_PASSWORD_ENV, DEMO_USER, create_shop_app
        from athkit.store.errors import DatabaseUnreachableError
        from athkit.web.accesslog import uvicorn_log_config

    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - comparison only
    if ":" in url_host:
        url_host = f"[{url_host}]"
    url = (public_url or f"http://{url_host}:{port}").rstrip("/")
    dev_mode = dev if dev is not None else host in LOOPBACK_HOSTS
    try:
        app_ = create_shop_app(
            public_url=url, data_dir=data_dir, database_url=database_url, dev_mode=dev_mode
        )
    except DatabaseUnreachableError as exc:
        err.print(str(exc), style="red", markup=False, soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    password = f"(from ${DEMO_PASSWORD_ENV})" if os.environ.get(DEMO_PASSWORD_ENV) else "wonderland"
    out.print(f"ATH Shop at [bold]{url}[/]  (discovery: {url}/.well-known/ath-app.json)")
    out.print(f"demo login: [bold]{DEMO_USER}[/] / [bold]{password}[/]")
    out.print(f"data: {database_url or data_dir}   dev mode: {'on' if dev_mode else 'off'}")
    if not url.startswith("https://") and host not in LOOPBACK_HOSTS:
        err.print("[yellow]warning: plain http on a non-loopback interface; use TLS in front.[/]")
    uvicorn.run(app_, host=host, port=port, log_level="info", log_config=uvicorn_log_config())


# -- agents / audit -------------------------------------------------------------------------


class AgentStatusFilter(str, Enum):  # noqa: UP042 - StrEnum needs Python 3.11
    approved = "approved"
    pending = "pending"
    denied = "denied"
    suspended = "suspended"


@agents_app.command("list")
def agents_list(
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    status: Annotated[
        Optional[AgentStatusFilter],  # noqa: UP045
        typer.Option(help="Only agents with this status."),
    ] = None,
) -> None:
    """List the agents registered with the service."""
    with server_extras("agents list"):
        from athkit.cli.operator import StoreNotFound, list_agents

    try:
        list_agents(out, database_url, data_dir, status.value if status else None)
    except StoreNotFound as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


def _decide(
    status: str, client_id: str, database_url: str | None, data_dir: Path, reason: str | None
) -> None:
    with server_extras(f"agents {status}"):
        from athkit.cli.operator import StoreNotFound, decide

    try:
        ok = decide(out, database_url, data_dir, client_id, status, reason)
    except StoreNotFound as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    if not ok:
        raise typer.Exit(1)


ClientIdArg = Annotated[str, typer.Argument(help="The agent's client_id (see `agents list`).")]
ReasonOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(help="Why (kept in the audit log)."),
]


@agents_app.command("approve")
def agents_approve(
    client_id: ClientIdArg,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    reason: ReasonOpt = None,
) -> None:
    """Approve an agent (e.g. one the policy left pending)."""
    _decide("approved", client_id, database_url, data_dir, reason)


@agents_app.command("deny")
def agents_deny(
    client_id: ClientIdArg,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    reason: ReasonOpt = None,
) -> None:
    """Deny an agent; its live tokens are revoked."""
    _decide("denied", client_id, database_url, data_dir, reason)


@agents_app.command("suspend")
def agents_suspend(
    client_id: ClientIdArg,
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    reason: ReasonOpt = None,
) -> None:
    """Suspend an agent; its live tokens are revoked."""
    _decide("suspended", client_id, database_url, data_dir, reason)


class AuditFormat(str, Enum):  # noqa: UP042 - StrEnum needs Python 3.11
    table = "table"
    csv = "csv"
    json = "json"


_Opt = Optional[str]  # noqa: UP045 - Typer reads these annotations at runtime


@app.command()
def audit(
    database_url: DatabaseUrlOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    limit: Annotated[int, typer.Option(help="How many rows, newest first.", min=1)] = 50,
    agent_id: Annotated[_Opt, typer.Option(help="Only rows about this agent_id.")] = None,
    user_id: Annotated[_Opt, typer.Option(help="Only rows about this user.")] = None,
    provider_id: Annotated[_Opt, typer.Option(help="Only rows about this provider.")] = None,
    event: Annotated[_Opt, typer.Option(help="Only this event (e.g. token_revoked).")] = None,
    since: Annotated[_Opt, typer.Option(help="From this ISO date or date-time (UTC).")] = None,
    until: Annotated[_Opt, typer.Option(help="Before this ISO date or date-time (UTC).")] = None,
    fmt: Annotated[
        AuditFormat, typer.Option("--format", help="table, or csv / json for export.")
    ] = AuditFormat.table,
) -> None:
    """Print or export the audit log of authorization decisions."""
    with server_extras("audit"):
        from athkit.cli.operator import StoreNotFound, show_audit
        from athkit.protocol.errors import ATHError
        from athkit.web.console import audit_filter

    params = {
        "agent_id": agent_id,
        "user_id": user_id,
        "provider_id": provider_id,
        "event": event,
        "since": since,
        "until": until,
    }
    try:
        flt = audit_filter({k: v for k, v in params.items() if v})
        show_audit(out, database_url, data_dir, limit, flt, fmt.value)
    except ATHError as exc:
        err.print(f"[red]{exc.message}[/]")
        raise typer.Exit(2) from None
    except StoreNotFound as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


# -- keygen / version -----------------------------------------------------------------------


class KeyType(str, Enum):  # noqa: UP042 - StrEnum needs Python 3.11
    p256 = "P-256"
    ed25519 = "Ed25519"


@app.command()
def keygen(
    out_path: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the private JWK (mode 0600).")
    ],
    key_type: Annotated[
        KeyType, typer.Option("--type", "-t", help="Key type (P-256 signs ES256).")
    ] = KeyType.p256,
    kid: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Key id (default: the RFC 7638 thumbprint)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Generate an agent signing key: private JWK to --out, public JWK to stdout."""
    from athkit.crypto.keys import AgentKey

    if out_path.exists() and not force:
        err.print(f"[red]{out_path} exists; pass --force to overwrite it[/]")
        raise typer.Exit(1)
    key = AgentKey.generate(key_type.value, kid=kid)
    key.save(out_path)
    out_path.chmod(0o600)  # also when an existing file was overwritten
    err.print(f"private key written to {out_path} (mode 0600); public JWK:")
    typer.echo(json.dumps(key.public_jwk(), indent=2))


@app.command()
def version() -> None:
    """Print the athkit version and the ATH protocol version it speaks."""
    typer.echo(f"athkit {__version__} (ATH {ATH_VERSION})")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C would: context managers stop servers and remove temp dirs."""
    raise SystemExit(128 + signum)


def main() -> None:
    """The ``athkit`` command."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    app()


if __name__ == "__main__":
    main()

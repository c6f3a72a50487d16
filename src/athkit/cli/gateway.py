"""``athkit gateway serve|check|keygen``: run and validate an ATH gateway (gateway mode)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from athkit.cli.extras import server_extras

gateway_app = typer.Typer(help="Run an ATH gateway in front of OAuth APIs.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Gateway TOML file.", exists=False, dir_okay=False)
]


def _load(config: Path, *, check_env: bool = True):  # type: ignore[no-untyped-def]
    from athkit.gateway.config import ConfigError, load_config

    try:
        return load_config(config, check_env=check_env)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


@gateway_app.command("check")
def check(
    config: ConfigOpt = Path("gateway.toml"),
    discover: Annotated[
        bool, typer.Option(help="Also fetch each issuer's OIDC discovery document.")
    ] = True,
) -> None:
    """Validate a gateway config (keys, routes, env secrets, and upstream discovery)."""
    with server_extras("gateway check"):
        from athkit.gateway.config import ConfigError
        from athkit.gateway.upstream import UpstreamProvider

    cfg = _load(config)
    table = Table(title=f"{cfg.gateway.gateway_id} at {cfg.gateway.public_url}")
    for col in ("provider", "scopes", "routes", "authorization endpoint"):
        table.add_column(col)
    for p in cfg.providers:
        up = UpstreamProvider(p, timeout=cfg.gateway.upstream_timeout)
        if discover:
            try:
                up.discover()
            except ConfigError as exc:
                err.print(f"[red]{exc}[/]")
                raise typer.Exit(2) from None
        table.add_row(
            p.provider_id,
            ", ".join(p.scopes),
            str(len(p.routes)),
            up.endpoints.authorization or "(from issuer)",
        )
    out.print(table)
    out.print("[green]configuration is valid[/]")


@gateway_app.command("serve")
def serve(
    config: ConfigOpt = Path("gateway.toml"),
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    log_level: Annotated[
        str,
        typer.Option(help="uvicorn log level; 'warning' and above drop the access log."),
    ] = "info",
) -> None:
    """Run the gateway with uvicorn in the foreground."""
    with server_extras("gateway serve"):
        import uvicorn

        from athkit.gateway.app import create_gateway_app
        from athkit.gateway.config import ConfigError

    cfg = _load(config)
    try:
        app = create_gateway_app(cfg)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    out.print(f"ATH gateway [bold]{cfg.gateway.gateway_id}[/] on http://{host}:{port}")
    uvicorn.run(app, host=host, port=port, log_level=log_level)


@gateway_app.command("keygen")
def keygen(kid: Annotated[str, typer.Option(help="Key id.")] = "k1") -> None:
    """Print a new AES-256-GCM key for the upstream-token keyring (``kid:base64``)."""
    from athkit.crypto.sealing import new_key_spec

    out.print(new_key_spec(kid), soft_wrap=True)

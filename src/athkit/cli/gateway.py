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
    json_logs: Annotated[
        bool,
        typer.Option(envvar="ATHKIT_JSON_LOGS", help="One JSON object a log line."),
    ] = False,
) -> None:
    """Run the gateway with uvicorn in the foreground (traces: set OTEL_EXPORTER_OTLP_ENDPOINT
    with the otlp extra, or ATHKIT_TRACING=console)."""
    with server_extras("gateway serve"):
        import uvicorn

        from athkit.gateway.app import create_gateway_app
        from athkit.gateway.config import ConfigError
        from athkit.store.errors import DatabaseUnreachableError
        from athkit.web.accesslog import uvicorn_log_config

    from athkit.core.tracing import configure_logging, configure_tracing
    from athkit.gateway.allocator import tune_collector, tune_for_streaming

    tune_for_streaming()  # large bodies without a page fault per piece (gateway/allocator.py)
    configure_logging(json_logs=json_logs)
    if configure_tracing(cfg_name := "athkit-gateway"):
        out.print(f"tracing on ({cfg_name})")
    cfg = _load(config)
    try:
        app = create_gateway_app(cfg)
    except (ConfigError, DatabaseUnreachableError) as exc:
        err.print(str(exc), style="red", markup=False, soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    tune_collector()  # start-up's objects frozen, fewer young collections (gateway/allocator.py)
    out.print(f"ATH gateway [bold]{cfg.gateway.gateway_id}[/] on http://{host}:{port}")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=uvicorn_log_config(),
        # uvicorn builds each access line's arguments (client address, quoted path) before the
        # logger's level is asked, so a level that drops the line turns the log off instead.
        access_log=log_level.lower() in ("info", "debug", "trace"),
    )


@gateway_app.command("keygen")
def keygen(kid: Annotated[str, typer.Option(help="Key id.")] = "k1") -> None:
    """Print a new AES-256-GCM key for the upstream-token keyring (``kid:base64``)."""
    from athkit.crypto.sealing import new_key_spec

    out.print(new_key_spec(kid), soft_wrap=True)


@gateway_app.command("add-provider")
def add_provider(
    template: Annotated[str, typer.Argument(help="github, google, slack or microsoft.")],
    config: Annotated[
        Path, typer.Option("--config", "-c", help="Append to this gateway TOML file.")
    ] = Path("gateway.toml"),
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the table instead of appending it.")
    ] = False,
) -> None:
    """Write a built-in provider template (endpoints, scopes, routes) for you to review."""
    from athkit.gateway.templates import TEMPLATES, template_toml

    if template not in TEMPLATES:
        err.print(f"[red]no template {template!r}; choose from {', '.join(sorted(TEMPLATES))}[/]")
        raise typer.Exit(2)
    text = template_toml(template)
    if print_only:
        out.print(text, markup=False, highlight=False, soft_wrap=True)
        return
    existing = config.read_text() if config.exists() else ""
    if f'provider_id = "{template}"' in existing:
        err.print(f"[red]{config} already has a provider {template!r}[/]")
        raise typer.Exit(1)
    with config.open("a") as fh:
        fh.write(("\n" if existing and not existing.endswith("\n") else "") + "\n" + text)
    out.print(f"appended the {template} template to {config}: fill in client_id, set the secret")
    out.print("then check it with: athkit gateway check -c " + str(config))


@gateway_app.command("reseal")
def reseal(config: ConfigOpt = Path("gateway.toml")) -> None:
    """Re-seal stored upstream tokens and provider secrets with the keyring's first key."""
    from athkit.gateway.app import sealer_from_env
    from athkit.gateway.config import ConfigError
    from athkit.gateway.reseal import reseal_all
    from athkit.store.db import Database, default_sqlite_url

    cfg = _load(config, check_env=False)
    try:
        sealer = sealer_from_env(cfg)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    db = Database(cfg.gateway.database_url or default_sqlite_url(cfg.gateway.data_dir))
    try:
        report = reseal_all(db, sealer)
    finally:
        db.dispose()
    out.print(
        f"checked {report.checked}, re-sealed {report.resealed} with key {sealer.primary!r}, "
        f"unreadable {report.unreadable}"
    )
    if report.unreadable:
        err.print("[yellow]some values open with no key in the ring: keep the old key[/]")
        raise typer.Exit(1)

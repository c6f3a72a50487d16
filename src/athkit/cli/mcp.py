"""``athkit mcp serve``: the ATH agent tools as an MCP server (stdio or streamable HTTP).

Needs the ``mcp`` extra (``pip install 'athkit[mcp]'``). On stdio nothing but MCP goes to
stdout; messages go to stderr.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from athkit.cli.agent_common import DEFAULT_USER, DevOpt, UserOpt, VaultOpt, err, open_agent

mcp_app = typer.Typer(help="MCP server for agents (needs athkit[mcp]).", no_args_is_help=True)


class Transport(str, Enum):  # noqa: UP042 - StrEnum needs Python 3.11
    stdio = "stdio"
    streamable_http = "streamable-http"


@mcp_app.command("serve")
def serve_cmd(
    transport: Annotated[Transport, typer.Option(help="stdio or streamable-http.")] = (
        Transport.stdio
    ),
    host: Annotated[str, typer.Option(help="HTTP interface (streamable-http).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port (streamable-http).", min=1)] = 8808,
    registry: Annotated[
        str | None,
        typer.Option(envvar="ATHKIT_REGISTRY_URL", help="Registry for search_providers."),
    ] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="Origin (or *.domain) the tools may fetch without asking."),
    ] = None,
    user: UserOpt = DEFAULT_USER,
    dev: DevOpt = False,
    vault: VaultOpt = None,
) -> None:
    """Serve search_providers, discover_provider, connect_provider, list_grants, call_api
    and revoke to an MCP client, acting for --user with the vault's agent identity."""
    try:
        from athkit.integrations import mcp_server
        from athkit.integrations.tools import ATHTools
    except ImportError as exc:
        err.print(f"[red]the MCP server needs the mcp extra: pip install 'athkit[mcp]' ({exc})[/]")
        raise typer.Exit(2) from None
    tools = ATHTools(open_agent(vault, dev=dev), registry=registry, allow=allow or ())
    if transport is Transport.stdio:
        mcp_server.run_stdio(tools, user=user)
        return
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print("[red]the MCP server acts with the user's grants and has no login of its own: "
                  "it listens on loopback only[/]")
        raise typer.Exit(2)
    import uvicorn

    hosts = [f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"]
    err.print(f"MCP (streamable HTTP) at http://{host}:{port}/mcp/")
    uvicorn.run(
        mcp_server.streamable_http_app(tools, user=user, allowed_hosts=hosts), host=host, port=port
    )

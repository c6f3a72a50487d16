"""``athkit agent init | serve-identity | rotate-key | whoami | vault-key``: the agent's identity.

``init`` creates the key pair and profile in the vault; the identity document (§3) and the
Client ID Metadata Document are derived from it and served by ``serve-identity`` (loopback,
for development) or by your own host (``whoami --documents DIR`` writes them out).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from athkit.cli.agent import agent_app
from athkit.cli.agent_common import VaultOpt, err, fail, open_agent, open_vault, out
from athkit.client.agent import init_agent
from athkit.client.errors import ClientStateError
from athkit.client.identity_server import IdentityServer
from athkit.client.profile import DEFAULT_GRACE, IDENTITY_PATH, AgentProfile
from athkit.client.vault import VaultError, generate_env_key

DEFAULT_IDENTITY_URL = "http://127.0.0.1:8765"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64] or "developer"


@agent_app.command("init")
def init_cmd(
    name: Annotated[str, typer.Option("--name", help="The agent's display name.")],
    developer: Annotated[str, typer.Option("--developer", help="The developer's name.")],
    developer_id: Annotated[
        str | None, typer.Option(help="Developer id (default: from the name).")
    ] = None,
    contact: Annotated[str | None, typer.Option(help="Developer contact (e-mail/URL).")] = None,
    url: Annotated[
        str, typer.Option("--url", help="Where the identity is served (origin).")
    ] = DEFAULT_IDENTITY_URL,
    agent_id: Annotated[
        str | None, typer.Option(help="Full agent_id URL (default: URL/.well-known/agent.json).")
    ] = None,
    key_type: Annotated[str, typer.Option(help="P-256 (ES256) or Ed25519.")] = "P-256",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing identity.")] = False,
    vault: VaultOpt = None,
) -> None:
    """Create the agent's key pair, identity document and Client ID Metadata Document."""
    if key_type not in ("P-256", "Ed25519"):
        fail(ValueError("--key-type is P-256 or Ed25519"), 2)
    the_id = agent_id or url.rstrip("/") + IDENTITY_PATH
    if urlsplit(the_id).scheme not in ("http", "https") or not urlsplit(the_id).netloc:
        fail(ValueError(f"agent_id must be an http(s) URL: {the_id!r}"), 2)
    dev: dict[str, str] = {"name": developer, "id": developer_id or _slug(developer)}
    if contact:
        dev["contact"] = contact
    v = open_vault(vault)
    try:
        profile = init_agent(v, name, dev, agent_id=the_id, kind=key_type, replace=force)
    except (ClientStateError, VaultError, ValueError) as exc:
        fail(exc)
    out.print(f"agent [bold]{profile.name}[/] created")
    out.print(f"  agent_id         {profile.agent_id}")
    out.print(f"  key              {profile.key.algorithm}, kid {profile.key.kid}")
    out.print(f"  client metadata  {profile.client_metadata_url}")
    out.print(f"  vault            {v.describe()['location']}")
    out.print("next: [bold]athkit agent serve-identity[/] (keep it running), then "
              "[bold]athkit agent connect SERVICE[/]")


@agent_app.command("serve-identity")
def serve_identity_cmd(
    host: Annotated[str, typer.Option(help="Loopback address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(help="Port (default: the agent_id's port).", min=1, max=65535)
    ] = None,
    vault: VaultOpt = None,
) -> None:
    """Serve the identity document and Client ID Metadata Document (development, loopback)."""
    agent = open_agent(vault)
    profile = agent.profile
    parts = urlsplit(profile.agent_id)
    listen_port = port or parts.port or (443 if parts.scheme == "https" else 80)

    def documents() -> dict[str, dict[str, object]]:
        return agent.profile.documents()

    try:
        server = IdentityServer(documents, host, listen_port)
    except (OSError, ValueError) as exc:
        fail(ValueError(f"cannot listen on {host}:{listen_port}: {exc}"))
    out.print(f"serving [bold]{profile.agent_id}[/]")
    out.print(f"    and [bold]{profile.client_metadata_url}[/]  (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


@agent_app.command("rotate-key")
def rotate_key_cmd(
    grace: Annotated[
        int, typer.Option(help="Seconds the old key keeps verifying.", min=0)
    ] = DEFAULT_GRACE,
    vault: VaultOpt = None,
) -> None:
    """Rotate the signing key; the document lists old and new key during the grace period."""
    agent = open_agent(vault)
    old = agent.profile.key.kid
    new = agent.rotate_key(grace)
    until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() + grace))
    out.print(f"new key kid [bold]{new.kid}[/] signs from now on")
    out.print(f"old key kid {old} keeps verifying until {until}")


@agent_app.command("whoami")
def whoami_cmd(
    documents: Annotated[
        Path | None,
        typer.Option("--documents", help="Also write the documents to serve into this dir."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    vault: VaultOpt = None,
) -> None:
    """Who this agent is, which keys verify, and where and how the vault is kept."""
    agent = open_agent(vault)
    profile: AgentProfile = agent.profile
    info: dict[str, object] = {
        "agent_id": profile.agent_id,
        "name": profile.name,
        "developer": profile.developer,
        "signing_kid": profile.key.kid,
        "verifying_kids": [k.kid for k in profile.verifying_keys()],
        "client_metadata_url": profile.client_metadata_url,
        "vault": agent.vault.describe(),
        "registrations": [c.service for c in agent.vault.clients()],
        "users_with_grants": agent.vault.users(),
    }
    if documents is not None:
        for path, doc in profile.documents().items():
            target = documents / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        err.print(f"documents written under {documents}")
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    v = agent.vault.describe()
    out.print(f"[bold]{profile.name}[/] by {profile.developer.get('name')}")
    out.print(f"  agent_id      {profile.agent_id}")
    out.print(f"  signing key   {profile.key.kid}")
    out.print(f"  verifying     {', '.join(k.kid for k in profile.verifying_keys())}")
    out.print(f"  vault         {v['location']} ({v['kind']})")
    out.print(f"  encryption    {v['encryption']}")
    out.print(f"  registrations {len(agent.vault.clients())}")


@agent_app.command("vault-key")
def vault_key_cmd() -> None:
    """Print a fresh ATHKIT_VAULT_KEY value (for machines with no OS keyring)."""
    typer.echo(generate_env_key())

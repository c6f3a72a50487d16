"""``athkit user``: the user's side of the 9-step handshake (PROTOCOL.md §10).

``keygen`` makes the user's key pair (the private JWK stays in a 0600 file), ``grant`` signs the
step-0 credential for an agent, ``confirm`` lists the confirmations waiting at a service (proved
with ``X-ATH-User-Proof``) and signs the step-7 answer. Agent-side install only.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import httpx
import typer
from rich.console import Console
from rich.table import Table

from athkit.client.errors import ATHError, error_from_response
from athkit.crypto.credentials import confirmation_response, issue, user_request_proof
from athkit.crypto.did import did_key_from_jwk
from athkit.crypto.keys import AgentKey

user_app = typer.Typer(
    help="The user's keys, pre-authorization credentials and out-of-band confirmations.",
    no_args_is_help=True,
)

out = Console(emoji=False)
err = Console(stderr=True, emoji=False)

METADATA_PATH = "/.well-known/ath-handshake.json"
CONFIRMATIONS_PATH = "/ath/confirmations"
_TTL = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def parse_ttl(text: str) -> int:
    """``"2h"`` → 7200; units s, m, h, d (none: seconds). ``ValueError`` on anything else."""
    m = _TTL.match(text)
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"invalid duration {text!r} (use e.g. 90s, 30m, 2h, 1d)")
    return int(m.group(1)) * _UNITS[m.group(2)]


def parse_scopes(text: str) -> list[str]:
    scopes = [s.strip() for s in re.split(r"[,\s]+", text) if s.strip()]
    if not scopes:
        raise ValueError("no scopes given")
    return list(dict.fromkeys(scopes))


def _write_private(path: Path, text: str, force: bool) -> None:
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists (use --force to overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def check_service_url(url: str) -> str:
    """HTTPS, or plain http to a loopback host only (the user's proofs travel there)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK):
        return url.rstrip("/")
    raise ValueError(f"{url!r}: use https (plain http only for a loopback service)")


# -- the logic behind ``confirm`` (also used by the demo and bench) ---------------------------


def fetch_server_did(http: httpx.Client, service: str) -> str:
    """The service's DID from ``/.well-known/ath-handshake.json``."""
    resp = http.get(service + METADATA_PATH, headers={"Accept": "application/json"})
    if resp.status_code != 200:
        raise error_from_response(resp.status_code, resp.content)
    did = resp.json().get("server_did")
    if not isinstance(did, str) or not did.startswith("did:"):
        raise ValueError("the service's handshake metadata has no server_did")
    return did


def list_confirmations(
    http: httpx.Client, service: str, key: AgentKey, server_did: str
) -> list[dict[str, Any]]:
    """``GET /ath/confirmations`` proved with the user's key: the pending requests."""
    user_did = did_key_from_jwk(key.public_jwk())
    path = urlsplit(service + CONFIRMATIONS_PATH).path
    proof = user_request_proof(key, user_did, server_did, "GET", path, time.time())
    resp = http.get(
        service + CONFIRMATIONS_PATH,
        headers={"X-ATH-User-Proof": proof, "Accept": "application/json"},
    )
    if resp.status_code != 200:
        raise error_from_response(resp.status_code, resp.content)
    items = resp.json().get("confirmations")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def answer_confirmation(
    http: httpx.Client,
    service: str,
    key: AgentKey,
    item: Mapping[str, Any],
    approve: Sequence[str] | None,
) -> dict[str, Any]:
    """Sign and send the step-7 answer: ``approve`` scopes (a subset), or deny with ``None``."""
    requested = [str(s) for s in item.get("requested_scopes") or []]
    if approve is not None:
        extra = [s for s in approve if s not in requested]
        if extra:
            raise ValueError(f"not requested, cannot approve: {', '.join(extra)}")
    body = confirmation_response(
        key,
        request_id=str(item["request_id"]),
        handshake_id=str(item["handshake_id"]),
        client_did=str(item["client_did"]),
        approved=approve is not None,
        approved_scopes=list(approve or []),
        expires_at=int(item["expires_at"]),
    )
    url = f"{service}{CONFIRMATIONS_PATH}/{quote(str(item['request_id']), safe='')}"
    resp = http.post(url, json=body, headers={"Accept": "application/json"})
    if resp.status_code != 200:
        raise error_from_response(resp.status_code, resp.content)
    data = resp.json()
    return data if isinstance(data, dict) else {}


def _table(items: Sequence[Mapping[str, Any]]) -> Table:
    t = Table(title="Pending confirmations")
    for col in ("request_id", "agent", "developer", "client_did", "scopes", "expires"):
        t.add_column(col)
    for i in items:
        info = i.get("client_info") or {}
        exp = int(i.get("expires_at") or 0)
        t.add_row(
            str(i.get("request_id")),
            str(info.get("name", "")),
            str(info.get("developer", "")),
            str(i.get("client_did", ""))[:32] + "…",
            ", ".join(i.get("requested_scopes") or []),
            f"in {max(0, exp - int(time.time()))} s",
        )
    return t


# -- commands -----------------------------------------------------------------------------------


@user_app.command("keygen")
def keygen(
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the private JWK.")],
    kind: Annotated[str, typer.Option("--kind", help="P-256 or Ed25519.")] = "P-256",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Generate the user's key pair; prints the user's did:key."""
    if kind not in ("P-256", "Ed25519"):
        err.print("[red]--kind must be P-256 or Ed25519[/red]")
        raise typer.Exit(2)
    key = AgentKey.generate("P-256" if kind == "P-256" else "Ed25519")
    try:
        _write_private(out_path, json.dumps(key.private_jwk()), force)
    except FileExistsError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    print(did_key_from_jwk(key.public_jwk()))


@user_app.command("grant")
def grant(
    key_path: Annotated[Path, typer.Option("--key", help="The user's private JWK file.")],
    agent: Annotated[str, typer.Option("--agent", help="The agent's DID (client_did).")],
    scopes: Annotated[str, typer.Option("--scopes", help="Comma-separated scopes.")],
    ttl: Annotated[str, typer.Option("--ttl", help="Validity, e.g. 2h.")] = "2h",
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write {credential, signature} here.")
    ] = None,
    store_for: Annotated[
        str | None,
        typer.Option(
            "--store-for",
            help="Also keep it in the agent's credential vault for this service URL.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out.")] = False,
) -> None:
    """Sign the step-0 credential letting AGENT ask for SCOPES for TTL."""
    try:
        key = AgentKey.load(key_path)
        if not agent.startswith(("did:key:", "did:web:")):
            raise ValueError("--agent must be a did:key or did:web")
        signed = issue(key, agent, parse_scopes(scopes), parse_ttl(ttl))
    except (OSError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    text = json.dumps(signed.to_dict(), indent=2) + "\n"
    if out_path is not None:
        try:
            _write_private(out_path, text, force)
        except FileExistsError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        err.print(
            f"credential for {agent} ({', '.join(signed.scopes)}) valid until "
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(signed.expires_at))} "
            f"→ {out_path}"
        )
    else:
        print(text, end="")
    if store_for:
        from athkit.cli.agent_common import open_vault

        open_vault(None).add_user_credential(store_for, signed)


@user_app.command("confirm")
def confirm(
    service: Annotated[str, typer.Option("--service", help="The service's base URL.")],
    key_path: Annotated[Path, typer.Option("--key", help="The user's private JWK file.")],
    approve: Annotated[
        str | None,
        typer.Option("--approve", help="Approve these scopes (comma-separated, or 'all')."),
    ] = None,
    deny: Annotated[bool, typer.Option("--deny", help="Deny the request.")] = False,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Which request (default: the only one).")
    ] = None,
    server_did: Annotated[
        str | None, typer.Option("--server-did", help="Skip fetching the service's DID.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the confirmations waiting for this user; with --approve/--deny, answer one."""
    if approve is not None and deny:
        err.print("[red]--approve and --deny exclude each other[/red]")
        raise typer.Exit(2)
    try:
        base = check_service_url(service)
        key = AgentKey.load(key_path)
        with httpx.Client(timeout=10.0, follow_redirects=False) as http:
            sdid = server_did or fetch_server_did(http, base)
            items = list_confirmations(http, base, key, sdid)
            if approve is None and not deny:
                if as_json:
                    print(json.dumps({"confirmations": items}, indent=2))
                elif items:
                    out.print(_table(items))
                else:
                    out.print("no pending confirmations")
                return
            chosen = [i for i in items if request_id is None or i.get("request_id") == request_id]
            if not chosen:
                err.print("[red]no such pending confirmation[/red]")
                raise typer.Exit(1)
            if len(chosen) > 1:
                out.print(_table(chosen))
                err.print("[red]several are pending: pick one with --request-id[/red]")
                raise typer.Exit(2)
            item = chosen[0]
            scopes: list[str] | None = None
            if approve is not None:
                scopes = (
                    list(item.get("requested_scopes") or [])
                    if approve.strip() == "all"
                    else parse_scopes(approve)
                )
            result = answer_confirmation(http, base, key, item, scopes)
    except ATHError as exc:
        err.print(f"[red]{exc.code_str}: {exc.message}[/red]")
        raise typer.Exit(1) from exc
    except (OSError, ValueError, httpx.HTTPError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        verdict = "approved " + ", ".join(scopes) if scopes is not None else "denied"
        out.print(f"{item['request_id']}: {verdict}")

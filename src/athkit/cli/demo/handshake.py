"""``athkit demo --handshake``: seed 003 (SDK native integration) run for real, nine steps.

ATH Shop starts on a loopback port with the 9-step handshake enabled. The user makes a key
(``athkit user keygen``), links it to the shop account ``alice`` once, and pre-authorizes the
AI shopping assistant for ``goods:read`` and ``order:create`` for two hours (``athkit user
grant``). The agent then runs steps 1–9 with the client SDK; the shop asks the user out of band
and the user approves with the logic of ``athkit user confirm`` (a signed answer that never passes
through the agent). Finally the agent calls the shop's API over the encrypted session, and a
replayed ciphertext is refused.

Each step states what it expects; the function returns 0 only when every expectation held.
Imports the server packages: :mod:`athkit.cli.main` loads it lazily.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax

from athkit.cli.demo.native import DEFAULT_PASSWORD
from athkit.cli.demo.walkthrough import Walkthrough, demo_data_dir, verdict
from athkit.cli.trace import shorten_secret
from athkit.cli.user import answer_confirmation, fetch_server_did, list_confirmations
from athkit.client import ATHClient
from athkit.client.credentials import UserCredentialStore
from athkit.client.errors import ATHError
from athkit.client.handshake import PendingConfirmation
from athkit.crypto.credentials import issue, new_nonce, user_key_link_object
from athkit.crypto.did import did_key_from_jwk
from athkit.crypto.keys import AgentKey
from athkit.crypto.signing import sign_object
from athkit.demo.shop import DEMO_PASSWORD_ENV, DEMO_USER, create_shop_app
from athkit.web.serving import BackgroundServer, free_port

SCOPES = ["goods:read", "order:create"]
CREDENTIAL_TTL = 2 * 3600
CONTEXT = {
    "client_info": {"name": "AI Shopping Assistant", "developer": "athkit demo"},
    "purpose": "Find goods and place orders for alice",
}
STEP_TITLES = {
    1: ("handshake_request", "agent → shop: who I am, my nonce A"),
    2: ("handshake_response", "shop → agent: who the shop is, signature over nonce A"),
    3: ("identity_proof", "agent → shop: signature over nonce B"),
    4: ("identity_result", "shop → agent: verified, here is what I support"),
    5: ("scope_request", "agent → shop: these scopes, with the user's signed credential"),
    6: ("authorization_confirmation_request", "shop → user, out of band"),
    7: ("authorization_confirmation_response", "user → shop, signed by the user's key"),
    8: ("scope_result", "shop → agent: what was granted, and the restrictions"),
    9: ("handshake_complete", "ECDH P-256 → HKDF-SHA256 → AES-256-GCM session, access token"),
}
_SECRET = frozenset({"access_token", "signature", "authorization"})


def _short(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _short(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_short(v) for v in value[:6]]
    if isinstance(value, str):
        if key in _SECRET:
            return shorten_secret(value, 12)
        if len(value) > 72:
            return value[:60] + "…"
    return value


def _json_panel(title: str, data: Mapping[str, Any]) -> Panel:
    text = json.dumps(_short(dict(data)), indent=2, ensure_ascii=False)
    return Panel(Syntax(text, "json", word_wrap=True), title=title, title_align="left")


def _link_user_key(http: httpx.Client, shop_url: str, user: AgentKey, password: str) -> str:
    """Sign in as the demo user and link the CLI key to the account (done once, on the web)."""
    resp = http.post(
        shop_url + "/login",
        data={"username": DEMO_USER, "password": password, "next": "/"},
        follow_redirects=False,
    )
    if resp.status_code not in (302, 303):
        raise RuntimeError(f"sign-in failed with HTTP {resp.status_code}")
    server_did = fetch_server_did(http, shop_url)
    user_did = did_key_from_jwk(user.public_jwk())
    nonce, ts = new_nonce(), int(time.time())
    link = user_key_link_object(user_did, DEMO_USER, server_did, nonce, ts)
    pub = {k: v for k, v in user.public_jwk().items() if k in ("kty", "crv", "x", "y")}
    resp = http.post(
        shop_url + "/ath/user/keys",
        json={
            "user_did": user_did,
            "public_jwk": pub,
            "signature": sign_object(user, link),
            "nonce": nonce,
            "timestamp": ts,
        },
        headers={"Origin": shop_url},
    )
    if resp.status_code not in (200, 201):
        raise RuntimeError(f"linking the key failed: HTTP {resp.status_code} {resp.text[:200]}")
    http.cookies.clear()
    return server_did


def run_handshake_demo(
    console: Console,
    *,
    data_dir: Path | None = None,
    quiet: bool = False,
    password: str | None = None,
    wait_seconds: float = 60.0,
) -> int:
    """Start ATH Shop with the handshake, walk steps 0–9 and an encrypted call; 0 when all held."""
    password = password or os.environ.get(DEMO_PASSWORD_ENV) or DEFAULT_PASSWORD
    walk = Walkthrough(console, quiet=quiet)
    with demo_data_dir(data_dir) as ddir, ExitStack() as running:
        port = free_port()
        shop_url = f"http://127.0.0.1:{port}"
        app = create_shop_app(public_url=shop_url, data_dir=ddir, dev_mode=True, password=password)
        try:
            shop = BackgroundServer(app, port=port).start()
        except RuntimeError as exc:
            console.print(f"[bold red]could not start ATH Shop: {escape(str(exc))}[/]")
            return 1
        running.callback(shop.stop)
        user_http = running.enter_context(httpx.Client(timeout=10.0, trust_env=False))
        try:
            _walk(walk, shop_url, ddir, user_http, password, wait_seconds)
        except ATHError as exc:
            walk.failures.append(f"{walk.current}: unexpected {exc.code_str} ({exc.message})")
            console.print(f"  [bold red]✗ {escape(exc.code_str)}: {escape(exc.message)}[/]")
        except (httpx.HTTPError, RuntimeError, ValueError) as exc:
            walk.failures.append(f"{walk.current}: {type(exc).__name__}: {exc}")
            console.print(f"  [bold red]✗ {type(exc).__name__}: {escape(str(exc))}[/]")
        except KeyboardInterrupt:
            console.print("\n[yellow]interrupted[/]")
            return 130
    return verdict(walk, steps=11)


def _walk(
    walk: Walkthrough,
    shop_url: str,
    ddir: Path,
    user_http: httpx.Client,
    password: str,
    wait_seconds: float,
) -> None:
    walk.show(
        Panel.fit(
            f"ATH Shop        {shop_url}  (native mode, 9-step handshake enabled)\n"
            f"Data            {escape(str(ddir))}\n"
            f"User            {DEMO_USER} (signs with a CLI-held key)\n"
            f"Agent           AI Shopping Assistant (did:key, P-256)\n"
            f"Credential      {', '.join(SCOPES)} for 2 hours",
            title="athkit demo --handshake: seed 003, SDK native integration",
        )
    )
    # -- step 0 ------------------------------------------------------------------------------
    walk.step(0, "User pre-authorization", "may this agent act for me at all?")
    user = AgentKey.generate("P-256")
    user_key_path = ddir / "user.jwk"
    user.save(user_key_path)
    user_did = did_key_from_jwk(user.public_jwk())
    walk.say(f"$ athkit user keygen --out {escape(str(user_key_path))}")
    walk.say(f"  user_did = {user_did}")
    server_did = _link_user_key(user_http, shop_url, user, password)
    walk.say(f"the user linked this key to the shop account '{DEMO_USER}' (signed-in, once)")
    agent = AgentKey.generate("P-256")
    agent_did = did_key_from_jwk(agent.public_jwk())
    signed = issue(user, agent_did, SCOPES, CREDENTIAL_TTL)
    walk.say(
        f"$ athkit user grant --key user.jwk --agent {agent_did[:24]}… "
        f"--scopes {','.join(SCOPES)} --ttl 2h --out cred.json"
    )
    walk.show(_json_panel("user credential (step 0)", signed.to_dict()))
    store = UserCredentialStore(ddir / "agent_user_credentials.json")
    store.add(shop_url, signed)
    stored = store.find(shop_url, client_did=agent_did, scopes=SCOPES)
    walk.expect(stored is not None, "the agent stores the credential for the shop")
    walk.expect(
        signed.expires_at - signed.credential["issued_at"] == CREDENTIAL_TTL,
        "the credential is valid for 2 hours",
    )

    answered: dict[str, Any] = {}

    def observe(step: int, title: str, payload: Mapping[str, Any]) -> None:
        if step == 6:
            return  # shown from the user's side below
        name, what = STEP_TITLES.get(step, (title, ""))
        if title.startswith("complete"):
            walk.step(9, "Key agreement", "how do we talk privately from here on?")
            walk.show(_json_panel("complete (agent's ephemeral key)", payload))
            return
        if step == 9:
            walk.show(_json_panel(name, payload))
            return
        walk.step(step, name, what)
        walk.show(_json_panel(name, payload))
        if step == 2:
            walk.say("the agent checks server_pubkey is the key server_did names, and the")
            walk.say("shop's signature over nonce A — before it proves anything itself")
        if step == 5:
            walk.say("the shop verifies the user's signature, expiry, client_did and scopes ⊆")

    def on_pending(p: PendingConfirmation) -> None:
        walk.step(6, *STEP_TITLES[6])
        walk.say(f"$ athkit user confirm --service {shop_url} --key user.jwk")
        items = list_confirmations(user_http, shop_url, user, server_did)
        mine = [i for i in items if i.get("request_id") == p.request_id]
        walk.expect(len(mine) == 1, "the user sees the request, never relayed by the agent")
        if not mine:
            return
        walk.show(_json_panel("pending confirmation (X-ATH-User-Proof)", mine[0]))
        walk.step(7, *STEP_TITLES[7])
        walk.say(
            f"$ athkit user confirm --service {shop_url} --key user.jwk "
            f"--request-id {p.request_id} --approve {','.join(SCOPES)}"
        )
        answered.update(answer_confirmation(user_http, shop_url, user, mine[0], SCOPES))
        walk.show(_json_panel("shop's answer", answered))

    wire: list[httpx.Request] = []
    agent_http = httpx.Client(timeout=10.0, trust_env=False, event_hooks={"request": [wire.append]})
    with ATHClient(shop_url, agent_did, agent, http_client=agent_http) as client:
        client.discover()
        t0 = time.perf_counter()
        session = client.handshake(
            SCOPES,
            signed,
            ttl=3600,
            context=CONTEXT,
            wait=wait_seconds,
            on_pending=on_pending,
            observer=observe,
        )
        took = time.perf_counter() - t0
        walk.expect(answered.get("status") == "approved", "the shop took the user's approval")
        res = session.result
        walk.expect(
            sorted(res.scopes_granted) == sorted(SCOPES), "both scopes granted", res.scopes_granted
        )
        walk.expect(0 < res.ttl_granted <= 3600, "ttl_granted ≤ 1 hour", res.ttl_granted)
        walk.expect(bool(res.restrictions), "restrictions come with the grant", res.restrictions)
        walk.expect(res.server_did == server_did, "the session is with the shop's DID")
        walk.say(
            f"session {res.session_id}, keys expire at {res.session_expires_at}; "
            f"handshake took {took * 1000:.0f} ms including the user's answer"
        )

        # -- the encrypted API ------------------------------------------------------------------
        walk.step(10, "Encrypted API calls", "does the session protect real traffic?")
        goods = session.get("/goods")
        sent = wire[-1]
        walk.show(_json_panel(f"on the wire: GET {sent.url.path}", json.loads(sent.content)))
        walk.expect(
            goods.status_code == 200 and "goods" in goods.json(),
            "GET /api/goods answers (decrypted)",
            goods.status_code,
        )
        order = session.post(
            "/orders/create", json={"items": [{"product_id": "p-100", "quantity": 1}]}
        )
        sent = wire[-1]
        walk.show(_json_panel(f"on the wire: POST {sent.url.path}", json.loads(sent.content)))
        walk.show(_json_panel("decrypted answer", order.json()))
        walk.expect(
            order.status_code == 201, "POST /api/orders/create places the order", order.status_code
        )
        replay = agent_http.post(str(sent.url), content=sent.content, headers=sent.headers)
        walk.expect(
            replay.status_code == 409,
            "the same ciphertext sent again is refused (409)",
            replay.status_code,
        )
        walk.say(
            f"replayed envelope → HTTP {replay.status_code} "
            f"{escape(replay.headers.get('content-type', ''))}"
        )
    agent_http.close()

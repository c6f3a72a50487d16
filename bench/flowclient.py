"""One full signed-in ATH flow on a lean asyncio HTTP client: the load behind ``flows_per_s``.

Not a package (see ``common.py``). The same requests as :func:`common.run_flow` (which drives
``athkit.client.ATHClient`` and ``HTTPBrowser`` over httpx), byte for byte where it matters to
the shop: the protocol bodies are built with the SDK's own message models, the browser sends its
sign-in cookie and the consent page's binding cookie, reads the page's form (hidden fields and
scope boxes), posts the decision and follows the redirect to ``/ath/callback``. Only the client
machinery is cheaper: users are tasks on one event loop per process (no threads competing for
an interpreter lock) and HTTP/1.1 runs on athkit's pooled httptools client
(:mod:`athkit.gateway.upstream_http`) instead of httpx and html.parser, so that the load
generator costs the shared two cores little and the figure measures the shop.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from athkit.client import AgentKey
from athkit.crypto.attestation import sign_attestation
from athkit.demo.agent import DEVELOPER, identity_document
from athkit.demo.shop import DEMO_USER
from athkit.gateway.upstream_http import Origin, UpstreamClient
from athkit.protocol.messages import AuthorizeRequest, RegisterRequest, TokenRequest

PROVIDER_ID = "ath-shop"
FLOW_SCOPES = ["products:read", "cart:read"]
PLACEHOLDER_CODE = "ath_callback"  # what ATHClient sends when the service's callback is its own
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
_BOX = re.compile(r'<input type="checkbox" name="([^"]+)" value="([^"]+)"([^>]*)>')
_ACTION = re.compile(r'<form method="post" action="([^"]+)"')


class FlowError(RuntimeError):
    pass


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v.decode("latin-1")
        return None

    def cookies(self) -> dict[str, str]:
        out = {}
        for k, v in self.headers:
            if k == b"set-cookie":
                pair = v.decode("latin-1").split(";", 1)[0]
                name, _, value = pair.partition("=")
                out[name.strip()] = value.strip().strip('"')
        return out

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LeanUser:
    """One agent developer's load plus one signed-in user's browser, sharing a client."""

    shop_url: str
    id_root: Path
    id_url: str
    password: str
    http: UpstreamClient
    cookies: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.origin = Origin.of(self.shop_url)

    async def send(
        self,
        method: str,
        target: str,
        *,
        json_body: Any = None,
        form: list[tuple[str, str]] | None = None,
        browser: bool = False,
    ) -> Answer:
        headers: list[tuple[bytes, bytes]] = []
        data: bytes | None = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers += [(b"content-type", b"application/json"), (b"accept", b"application/json")]
        elif form is not None:
            data = urlencode(form).encode()
            headers.append((b"content-type", b"application/x-www-form-urlencoded"))
        if browser:
            headers.append((b"accept", b"text/html"))
            if self.cookies:
                jar = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
                headers.append((b"cookie", jar.encode("latin-1")))
        if data is not None:
            headers.append((b"content-length", str(len(data)).encode()))
        resp = await self.http.request(
            self.origin, method, target, headers, _body(data) if data is not None else None
        )
        try:
            body = await resp.read()
        finally:
            resp.release()
        answer = Answer(resp.status, resp.headers, body)
        if browser:
            for name, value in answer.cookies().items():
                if value:
                    self.cookies[name] = value
                else:
                    self.cookies.pop(name, None)
        return answer

    async def sign_in(self) -> None:
        form = [("username", DEMO_USER), ("password", self.password), ("next", "/")]
        resp = await self.send("POST", "/login", form=form, browser=True)
        if resp.status != 303 or "shop_session" not in self.cookies:
            raise FlowError(f"sign-in failed: HTTP {resp.status}")

    def new_agent(self) -> tuple[AgentKey, str]:
        """A fresh P-256 key and its identity document, published as a static file."""
        key = AgentKey.generate("P-256", kid="default")
        rel = f"agents/bench-{secrets.token_hex(8)}.json"
        agent_id = f"{self.id_url}/{rel}"
        path = self.id_root / rel
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(identity_document(agent_id, key)))
        os.replace(tmp, path)
        return key, agent_id

    async def flow(self) -> None:
        """register → authorize → consent (open the page, decide, callback) → token."""
        key, agent_id = self.new_agent()
        base = self.shop_url
        reg = RegisterRequest.model_validate(
            {
                "agent_id": agent_id,
                "agent_attestation": sign_attestation(key, agent_id, base),
                "developer": DEVELOPER,
                "requested_providers": [{"provider_id": PROVIDER_ID, "scopes": FLOW_SCOPES}],
                "purpose": "benchmark",
            }
        )
        r = await self.send(
            "POST", "/ath/agents/register", json_body=reg.model_dump(mode="json", exclude_none=True)
        )
        if r.status != 201:
            raise FlowError(f"register: HTTP {r.status} {r.body[:200]!r}")
        registered = r.json()
        if registered["agent_status"] != "approved":
            raise FlowError(f"agent not approved: {registered['agent_status']}")
        client_id, client_secret = registered["client_id"], registered["client_secret"]
        auth = AuthorizeRequest(
            client_id=client_id,
            agent_attestation=sign_attestation(key, agent_id, base),
            provider_id=PROVIDER_ID,
            scopes=FLOW_SCOPES,
            state=secrets.token_urlsafe(32),
        )
        r = await self.send(
            "POST", "/ath/authorize", json_body=auth.model_dump(mode="json", exclude_none=True)
        )
        if r.status != 200:
            raise FlowError(f"authorize: HTTP {r.status} {r.body[:200]!r}")
        authorized = r.json()
        page_url = urlsplit(authorized["authorization_url"])
        page = await self.send("GET", f"{page_url.path}?{page_url.query}", browser=True)
        if page.status != 200:
            raise FlowError(f"consent page: HTTP {page.status} {page.body[:200]!r}")
        text = page.body.decode()
        action = _ACTION.search(text)
        if action is None:
            raise FlowError("no consent form on the page")
        form = [(html.unescape(n), html.unescape(v)) for n, v in _HIDDEN.findall(text)]
        offered = [html.unescape(v) for _, v, rest in _BOX.findall(text) if "disabled" not in rest]
        form += [("scope", s) for s in offered if s in FLOW_SCOPES]
        form.append(("decision", "approve"))
        r = await self.send("POST", html.unescape(action.group(1)), form=form, browser=True)
        location = r.header(b"location")
        if r.status != 303 or location is None:
            raise FlowError(f"consent: HTTP {r.status} {r.body[:200]!r}")
        target = urlsplit(location)
        done = await self.send("GET", f"{target.path}?{target.query}", browser=True)
        if done.status != 200:
            raise FlowError(f"callback: HTTP {done.status} {done.body[:200]!r}")
        tok = TokenRequest(
            grant_type="authorization_code",
            client_id=client_id,
            client_secret=client_secret,
            agent_attestation=sign_attestation(key, agent_id, f"{base}/ath/token"),
            code=PLACEHOLDER_CODE,
            ath_session_id=authorized["ath_session_id"],
        )
        r = await self.send(
            "POST", "/ath/token", json_body=tok.model_dump(mode="json", exclude_none=True)
        )
        if r.status != 200:
            raise FlowError(f"token: HTTP {r.status} {r.body[:200]!r}")
        token = r.json()
        if not token.get("access_token") or sorted(token["effective_scopes"]) != sorted(
            FLOW_SCOPES
        ):
            raise FlowError(f"token answer: {token}")

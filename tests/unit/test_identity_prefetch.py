"""Registration fetches the agent's identity document on the server's event loop (one fetch).

The identity host is a real uvicorn server that counts the GETs it answers; the shop is real
ATH Shop on SQLite. Whatever the document's host answers, the registration makes exactly one
fetch and the agent gets the same ATH error as before (the step reads the prefetch's result).
"""

from __future__ import annotations

import gzip
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from athkit.crypto.attestation import sign_attestation
from athkit.crypto.keys import AgentKey
from athkit.demo.agent import DEVELOPER, identity_document
from athkit.web.serving import BackgroundServer
from tests.conftest import Shop, start_shop


@dataclass
class Host:
    """Serves ``docs[path]`` (status, body) and counts every GET per path."""

    server: BackgroundServer
    docs: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.server.url}{path}"


@pytest.fixture
def host() -> Iterator[Host]:
    app = FastAPI()
    holder: list[Host] = []

    @app.get("/{path:path}")
    def serve(path: str, request: Request) -> Response:
        h = holder[0]
        key = "/" + path
        h.hits[key] = h.hits.get(key, 0) + 1
        status, body = h.docs.get(key, (404, b"{}"))
        if path.startswith("gzip/"):
            headers = {"Content-Encoding": "gzip"}
            return Response(gzip.compress(body), media_type="application/json", headers=headers)
        if path.startswith("chunked/"):  # no length: Transfer-Encoding: chunked, in pieces
            pieces = [body[i : i + 100] for i in range(0, len(body), 100)]
            return StreamingResponse(iter(pieces), media_type="application/json")
        return Response(body, status_code=status, media_type="application/json")

    with BackgroundServer(app) as server:
        holder.append(Host(server))
        yield holder[0]


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    s = start_shop(tmp_path, ath_options={"identity_max_bytes": 4096})
    try:
        yield s
    finally:
        s.server.stop()


def _publish(
    host: Host, key: AgentKey, status: int = 200, body: bytes | None = None, kind: str = "agents"
) -> str:
    path = f"/{kind}/{secrets.token_hex(6)}.json"
    agent_id = host.url(path)
    doc = body if body is not None else json.dumps(identity_document(agent_id, key)).encode()
    host.docs[path] = (status, doc)
    return agent_id


def _register(shop: Shop, key: AgentKey, agent_id: str) -> httpx.Response:
    body = {
        "agent_id": agent_id,
        "agent_attestation": sign_attestation(key, agent_id, shop.url),
        "developer": dict(DEVELOPER),
        "requested_providers": [{"provider_id": "ath-shop", "scopes": ["products:read"]}],
    }
    return httpx.post(f"{shop.url}/ath/agents/register", json=body, timeout=10)


def test_registration_fetches_the_document_once(shop: Shop, host: Host) -> None:
    blocking: list[str] = []  # fetches through the worker thread's blocking client
    fetcher = shop.app.state.athkit.fetcher
    fetcher._http.event_hooks["request"].append(lambda r: blocking.append(str(r.url)))
    key = AgentKey.generate("P-256", kid="default")
    agent_id = _publish(host, key)
    resp = _register(shop, key, agent_id)
    assert resp.status_code == 201, resp.text
    assert resp.json()["agent_status"] == "approved"
    assert sum(host.hits.values()) == 1
    assert blocking == []  # fetched on the server's loop, before the step
    # Cached now; another key at the same agent_id: one forced re-fetch (key rotation), refused.
    second = AgentKey.generate("P-256", kid="default")
    assert _register(shop, second, agent_id).status_code == 401
    assert sum(host.hits.values()) == 2
    assert blocking == [agent_id]


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (404, b"{}", "answered HTTP 404"),
        (200, b"x" * 5000, "too large"),
        (200, b"not json", "not valid"),
    ],
)
def test_a_failed_fetch_is_the_agents_error_and_is_not_repeated(
    shop: Shop, host: Host, status: int, body: bytes, message: str
) -> None:
    key = AgentKey.generate("P-256", kid="default")
    agent_id = _publish(host, key, status, body)
    resp = _register(shop, key, agent_id)
    assert resp.status_code == 401, resp.text
    err = resp.json()
    assert err["code"] == "INVALID_ATTESTATION"
    assert message in err["message"]
    assert sum(host.hits.values()) == 1


def test_request_refused_before_the_fetch_fetches_nothing(shop: Shop, host: Host) -> None:
    key = AgentKey.generate("P-256", kid="default")
    agent_id = _publish(host, key)
    body = {
        "agent_id": agent_id,
        "agent_attestation": sign_attestation(key, agent_id, shop.url),
        "developer": dict(DEVELOPER),
        "requested_providers": [{"provider_id": "ath-shop", "scopes": ["bad scope"]}],
    }
    resp = httpx.post(f"{shop.url}/ath/agents/register", json=body, timeout=10)
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "INVALID_REQUEST"
    assert host.hits == {}


@pytest.mark.parametrize("kind", ["gzip", "chunked"])
def test_compressed_and_chunked_documents_are_read(shop: Shop, host: Host, kind: str) -> None:
    key = AgentKey.generate("P-256", kid="default")
    agent_id = _publish(host, key, kind=kind)
    resp = _register(shop, key, agent_id)
    assert resp.status_code == 201, resp.text
    assert sum(host.hits.values()) == 1


def test_a_document_inflating_past_the_cap_is_refused(shop: Shop, host: Host) -> None:
    key = AgentKey.generate("P-256", kid="default")
    doc = json.loads(json.dumps(identity_document("x", key)))
    bomb = json.dumps({**doc, "pad": " " * 100_000}).encode()  # gzip: a few hundred bytes
    agent_id = _publish(host, key, body=bomb, kind="gzip")
    resp = _register(shop, key, agent_id)
    assert resp.status_code == 401, resp.text
    assert "too large" in resp.json()["message"]


def test_a_private_address_is_never_connected(shop: Shop) -> None:
    key = AgentKey.generate("P-256", kid="default")
    agent_id = "http://10.20.30.40:9/agent.json"  # dev mode allows loopback, never this
    resp = _register(shop, key, agent_id)
    assert resp.status_code == 401, resp.text
    assert resp.json()["code"] == "INVALID_ATTESTATION"
    assert "non-public" in resp.json()["message"]


@pytest.mark.parametrize("trusted", [True, False])
def test_https_documents_are_verified_against_the_configured_trust(
    tmp_path: Path, trusted: bool
) -> None:
    """The loop's fetch checks the host's certificate as the blocking one does: with the
    operator's CA the document is read; without it the fetch fails (ConnectError)."""
    from tests.oauth.support import loopback_tls

    ca, cert, tls_key = loopback_tls(tmp_path)
    app = FastAPI()
    docs: dict[str, bytes] = {}

    @app.get("/{path:path}")
    def serve(path: str) -> Response:
        return Response(docs.get("/" + path, b"{}"), media_type="application/json")

    options: dict[str, object] = {"outbound_ca_file": str(ca)} if trusted else {}
    with BackgroundServer(app, ssl_certfile=str(cert), ssl_keyfile=str(tls_key)) as server:
        key = AgentKey.generate("P-256", kid="default")
        agent_id = f"https://127.0.0.1:{server.port}/agent.json"
        docs["/agent.json"] = json.dumps(identity_document(agent_id, key)).encode()
        s = start_shop(tmp_path, ath_options=options)
        try:
            resp = _register(s, key, agent_id)
        finally:
            s.server.stop()
    if trusted:
        assert resp.status_code == 201, resp.text
    else:
        assert resp.status_code == 401, resp.text
        assert resp.json()["details"]["reason"] == "ConnectError"

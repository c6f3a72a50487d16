"""Example Mail keeps a bounded request history (it used to grow without limit under load)."""

from __future__ import annotations

import httpx

from athkit.demo.mail_api import create_resource_api
from athkit.web.serving import BackgroundServer


def test_history_keeps_only_the_last_requests() -> None:
    # The issuer is never contacted: requests without a token are refused before any JWKS fetch.
    app = create_resource_api("http://127.0.0.1:9", "http://127.0.0.1:9", history=5)
    with BackgroundServer(app) as server, httpx.Client() as http:
        for i in range(20):
            resp = http.get(f"{server.url}/v1/messages?i={i}", headers={"Authorization": "x"})
            assert resp.status_code == 401
        kept = list(app.state.requests)
    assert len(kept) == 5
    assert [r["query"] for r in kept] == [f"i={i}" for i in range(15, 20)]
    assert kept[-1] == {"method": "GET", "path": "/v1/messages", "query": "i=19", "authorization": "x"}


def test_history_can_be_off() -> None:
    app = create_resource_api("http://127.0.0.1:9", "http://127.0.0.1:9", history=0)
    with BackgroundServer(app) as server:
        assert httpx.get(f"{server.url}/v1/me").status_code == 401
    assert len(app.state.requests) == 0

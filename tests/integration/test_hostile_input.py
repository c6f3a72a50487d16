"""Hostile input against ATH Shop on real PostgreSQL: control characters, security headers,
redirect URIs, and the native proxy shape checking the token before it reveals any route."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MANY_AGENTS, AgentIdentity, Shop, start_shop
from tests.integration.support import (
    PROVIDER,
    authorize_body,
    error_of,
    register_body,
    registered_client,
    token_body,
)

NUL = "a\x00b"


@pytest.fixture(scope="module")
def pg_shop(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> Iterator[Shop]:
    """ATH Shop on PostgreSQL, where a NUL byte reaching a query is an error of the driver."""
    s = start_shop(
        tmp_path_factory.mktemp("pg-hostile"), database_url=pg_url, ath_options=MANY_AGENTS
    )
    try:
        yield s
    finally:
        s.server.stop()


def _still_serving(shop: Shop) -> None:
    resp = httpx.get(f"{shop.url}/.well-known/ath-app.json")
    assert resp.status_code == 200, resp.text


def _field_error(resp: httpx.Response, field: str) -> None:
    body = error_of(resp, 422, "VALIDATION_ERROR")
    locs = [e["loc"] for e in body["details"]["errors"]]
    assert any(field in loc for loc in locs), locs
    assert "\x00" not in resp.text and "\\u0000" not in resp.text  # input never echoed


@pytest.mark.parametrize(
    ("endpoint", "mutate", "field"),
    [
        ("register", lambda b: b.update(agent_id=b["agent_id"] + "\x00"), "agent_id"),
        ("register", lambda b: b["requested_providers"][0].update(provider_id=NUL), "provider_id"),
        ("register", lambda b: b.update(purpose="buy\x00shoes"), "purpose"),
        ("register", lambda b: b["developer"].update(name=NUL), "name"),
        ("register", lambda b: b.update(redirect_uris=["https://a.example/\x00"]), "redirect_uris"),
        ("authorize", lambda b: b.update(client_id=NUL), "client_id"),
        ("authorize", lambda b: b.update(provider_id=NUL), "provider_id"),
        ("authorize", lambda b: b.update(state="s" * 30 + "\x00"), "state"),
        ("authorize", lambda b: b.update(resource="https://r.example/\x00"), "resource"),
        ("authorize", lambda b: b.update(scopes=["products:read\x00"]), "scopes"),
        ("token", lambda b: b.update(ath_session_id=NUL), "ath_session_id"),
        ("token", lambda b: b.update(code="c\x1b[31m"), "code"),
        ("revoke", lambda b: b.update(client_id=NUL), "client_id"),
    ],
)
def test_control_characters_in_json_fields_are_refused_on_postgres(
    pg_shop: Shop,
    new_agent: Callable[..., AgentIdentity],
    endpoint: str,
    mutate: Callable[[dict[str, Any]], None],
    field: str,
) -> None:
    agent = new_agent("nul")
    url = pg_shop.url
    if endpoint == "register":
        body = register_body(agent, url)
    else:
        client = registered_client(pg_shop, agent)
        cid, secret = str(client.client_id), str(client.client_secret)
        body = {
            "authorize": lambda: authorize_body(agent, url, cid),
            "token": lambda: token_body(agent, url, cid, secret, "ath_sess_x"),
            "revoke": lambda: {"client_id": cid, "client_secret": secret, "token": "t"},
        }[endpoint]()
    mutate(body)
    path = {"register": "/ath/agents/register"}.get(endpoint, f"/ath/{endpoint}")
    _field_error(httpx.post(url + path, json=body), field)
    _still_serving(pg_shop)


@pytest.mark.parametrize(
    "path",
    [
        "/ath/agents/a%00b",
        "/ath/agents/a%1Fb",
        "/ath/handshake/%00/result",
        "/ath/handshake/%00/identity",
        "/ath/oauth/authorize?state=%00",
        "/ath/oauth/authorize?response_type=code&client_id=a%00b",
        "/ath/callback?state=abc%00&code=x",
        "/ath/proxy/ath-shop%00/api/products",
        "/api/products?q=%7F",
    ],
)
def test_control_characters_in_path_and_query_are_invalid_request(
    pg_shop: Shop, path: str
) -> None:
    method = "POST" if path.endswith("/identity") else "GET"
    resp = httpx.request(method, pg_shop.url + path, headers={"Authorization": "Basic eDp5"})
    error_of(resp, 400, "INVALID_REQUEST")
    assert resp.headers["x-content-type-options"] == "nosniff"
    _still_serving(pg_shop)


def test_nul_in_the_consent_forms_state_is_invalid_request(pg_shop: Shop) -> None:
    resp = httpx.post(
        f"{pg_shop.url}/ath/oauth/authorize",
        content=b"state=abc%00def&csrf=x&decision=approve",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    error_of(resp, 400, "INVALID_REQUEST")
    _still_serving(pg_shop)


def test_line_breaks_in_a_form_are_text_not_control() -> None:
    """The form/query rule lets tab and line breaks through (free text), nothing else."""
    from athkit.protocol.fields import has_control
    from athkit.web.input_guard import _bad_pairs

    assert not _bad_pairs(b"note=one%0D%0Atwo%09three")
    assert _bad_pairs(b"note=one%00two")
    assert _bad_pairs(b"n%01ame=x")
    assert has_control("\x7f") and not has_control("caf\u00e9")


# -- security headers (one middleware) ---------------------------------------------------------


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    s = start_shop(tmp_path_factory.mktemp("headers"), ath_options=MANY_AGENTS)
    try:
        yield s
    finally:
        s.server.stop()


def _html_headers_ok(resp: httpx.Response) -> None:
    assert resp.headers["content-type"].startswith("text/html"), resp.headers
    assert resp.headers["x-frame-options"] == "DENY"
    csp = resp.headers["content-security-policy"]
    assert "default-src 'none'" in csp or "frame-ancestors 'none'" in csp, csp
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "no-referrer"


def test_html_error_pages_carry_csp_and_frame_options(shop: Shop) -> None:
    html = {"Accept": "text/html"}
    for path in ("/ath/callback?state=nope", "/ath/oauth/authorize?state=nope"):
        resp = httpx.get(shop.url + path, headers=html)
        assert 400 <= resp.status_code < 500, resp.text
        _html_headers_ok(resp)
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]


def test_every_response_is_nosniff(shop: Shop, agent: AgentIdentity) -> None:
    for resp in (
        httpx.get(f"{shop.url}/.well-known/ath-app.json"),
        httpx.get(f"{shop.url}/openapi.json"),
        httpx.post(f"{shop.url}/ath/token", content=b"{"),
        httpx.get(f"{shop.url}/api/products"),
        httpx.get(f"{shop.url}/no/such/page"),
        httpx.post(f"{shop.url}/ath/agents/register", json=register_body(agent, shop.url)),
    ):
        assert resp.headers["x-content-type-options"] == "nosniff", resp.request.url
        assert resp.headers["referrer-policy"] == "no-referrer"


def test_console_csrf_cookie_is_secure_outside_dev_mode(tmp_path: Path) -> None:
    from fastapi import FastAPI

    from athkit.native import ATH
    from athkit.web.serving import BackgroundServer

    for dev_mode, public_url, secure in (
        (False, "http://127.0.0.1:1", True),  # a TLS proxy in front: always Secure
        (True, "https://shop.example", True),
        (True, "http://127.0.0.1:1", False),
    ):
        app = FastAPI()
        ath = ATH(
            app,
            public_url=public_url,
            current_user=lambda r: "alice",
            operator=lambda r: True,
            data_dir=tmp_path / f"c{dev_mode}{secure}",
            dev_mode=dev_mode,
        )
        with BackgroundServer(app) as server:
            resp = httpx.get(f"{server.url}/ath/console/agents")
            assert resp.status_code == 200, resp.text
            _html_headers_ok(resp)
            cookie = resp.headers["set-cookie"]
            assert cookie.startswith("ath_console_csrf=")
            assert ("secure" in cookie.lower()) is secure, (dev_mode, public_url, cookie)
        ath.close()


@pytest.mark.parametrize(
    ("uri", "dev_mode", "ok"),
    [
        ("https://agent.example/cb", False, True),
        ("http://agent.example/cb", False, False),
        ("http://localhost:8765/cb", False, False),  # RFC 8252 §8.3: not a loopback literal
        ("http://127.0.0.1:8765/cb", False, True),  # RFC 8252 §7.3
        ("http://[::1]:8765/cb", False, True),
        ("http://agent.example/cb", True, True),
        ("https://agent.example/cb#frag", True, False),
        ("https://user:pw@agent.example/cb", False, False),
        ("ftp://agent.example/cb", True, False),
    ],
)
def test_redirect_uri_rule(uri: str, dev_mode: bool, ok: bool) -> None:
    from athkit.protocol.errors import ATHError
    from athkit.protocol.redirects import check_redirect_uri

    if ok:
        check_redirect_uri(uri, dev_mode=dev_mode)
    else:
        with pytest.raises(ATHError) as refused:
            check_redirect_uri(uri, dev_mode=dev_mode)
        assert refused.value.code_str == "INVALID_REQUEST"


def test_http_redirect_uri_refused_at_registration_outside_dev_mode(
    tmp_path: Path, agent: AgentIdentity
) -> None:
    """A production service (dev_mode off) refuses ``http://`` redirect URIs; the agent here
    is on loopback, so dev mode's identity rules are kept by an allow-loopback fetcher."""
    from fastapi import FastAPI

    from athkit.core.identity import IdentityFetcher
    from athkit.core.service import ATHService
    from athkit.core.settings import ATHSettings
    from athkit.native import ATH
    from athkit.web.serving import BackgroundServer, free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = ATHSettings(public_url=url, provider_id=PROVIDER, data_dir=tmp_path, dev_mode=False)
    svc = ATHService(settings)
    svc.verifier.fetcher = IdentityFetcher(dev_mode=True)  # the test agent lives on loopback
    app = FastAPI()
    ath = ATH(app, service=svc, current_user=lambda r: None)
    with BackgroundServer(app, port=port):
        for uri, status in (("http://agent.example/cb", 400), ("http://127.0.0.1:9/cb", 201)):
            body = register_body(agent, url, ["products:read"], redirect_uris=[uri])
            resp = httpx.post(f"{url}/ath/agents/register", json=body)
            assert resp.status_code == status, resp.text
            if status == 400:
                assert resp.json()["code"] == "INVALID_REQUEST"
                assert "RFC 8252" in resp.json()["message"]
    ath.close()


# -- item 18: the native proxy shape checks the token first ----------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/ath/proxy/ath-shop/api/products",  # exists
        "/ath/proxy/ath-shop/api/no-such-route",  # under api_base, no route
        "/ath/proxy/ath-shop/admin/secrets",  # outside api_base
        "/ath/proxy/other-provider/api/products",
        "/ath/proxy/",
    ],
)
def test_native_proxy_checks_the_token_before_any_route(shop: Shop, path: str) -> None:
    for method in ("GET", "DELETE"):
        anonymous = httpx.request(method, shop.url + path)
        error_of(anonymous, 401, "TOKEN_INVALID")
        forged = httpx.request(
            method, shop.url + path, headers={"Authorization": "Bearer ath_tk_nope"}
        )
        error_of(forged, 401, "TOKEN_INVALID")


def test_native_proxy_answers_404_and_405_only_to_a_valid_token(
    shop: Shop, agent: AgentIdentity
) -> None:
    from tests.integration.support import consented_session

    grant = consented_session(shop, agent, ["products:read"])
    token = grant.client.exchange_token(grant.session_id)
    h = {"Authorization": f"Bearer {token.access_token}", "X-ATH-Agent-ID": agent.agent_id}
    base = f"{shop.url}/ath/proxy/{PROVIDER}"
    assert httpx.get(f"{base}/api/products", headers=h).status_code == 200
    error_of(httpx.get(f"{base}/api/no-such-route", headers=h), 404, "NOT_FOUND")
    error_of(httpx.get(f"{base}/admin", headers=h), 404, "NOT_FOUND")
    error_of(httpx.delete(f"{base}/api/products", headers=h), 405, "METHOD_NOT_ALLOWED")
    error_of(httpx.get(f"{shop.url}/ath/proxy/other/api/x", headers=h), 403, "PROVIDER_MISMATCH")
    error_of(httpx.get(f"{base}/api/no-such-route"), 401, "TOKEN_INVALID")

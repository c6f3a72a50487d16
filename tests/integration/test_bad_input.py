"""Hostile and broken input at every JSON endpoint: a clear ATH error, never a 500 (§9)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from athkit.client import ATHClient
from tests.conftest import MANY_AGENTS, AgentIdentity, Shop, start_shop
from tests.integration.support import (
    PROVIDER,
    attest,
    authorize_body,
    consented_session,
    error_of,
    register_body,
    registered_client,
    token_body,
)

ENDPOINTS = ["/ath/agents/register", "/ath/authorize", "/ath/token", "/ath/revoke"]
SECRET = "ath_secret_DO-NOT-ECHO-0123456789abcdef"
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """One ATH Shop for this module; tests use fresh agent identities."""
    s = start_shop(tmp_path_factory.mktemp("bad-input"), ath_options=MANY_AGENTS)
    try:
        yield s
    finally:
        s.server.stop()


def send(
    shop: Shop,
    path: str,
    content: bytes | str,
    ctype: str | None = "application/json",
    method: str = "POST",
    **headers: str,
) -> httpx.Response:
    h = dict(headers)
    if ctype is not None:
        h["Content-Type"] = ctype
    resp = httpx.request(method, f"{shop.url}{path}", content=content, headers=h)
    assert resp.status_code < 500 and "Traceback" not in resp.text, resp.text
    return resp


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"a": 1,}',
        b"",
        b"not json",
        b"\xff\xfe{}",
        b"{'single': 'quotes'}",
        b'{"a": 1} trailing',
    ],
    ids=["truncated", "trailing-comma", "empty", "text", "bad-utf8", "single-quotes", "trailing"],
)
def test_malformed_json(shop: Shop, path: str, raw: bytes) -> None:
    error_of(send(shop, path, raw), 400, "INVALID_REQUEST")


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "raw", [b"[]", b'[{"client_id": "x"}]', b'"text"', b"null", b"42", b"true"]
)
def test_json_that_is_not_an_object(shop: Shop, path: str, raw: bytes) -> None:
    error_of(send(shop, path, raw), 400, "INVALID_REQUEST")


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("depth", [5_000, 30_000])
def test_deeply_nested_json(shop: Shop, path: str, depth: int) -> None:
    """Nesting deep enough to exhaust the parser's recursion is bad input, not a crash."""
    balanced = "[" * depth + "]" * depth
    for raw in ('{"scopes": ' + "[" * depth + "}", '{"x": ' + balanced + "}"):
        if len(raw) > LIMIT:
            error_of(send(shop, path, raw), 413, "PAYLOAD_TOO_LARGE")
        else:
            error_of(send(shop, path, raw), 400, "INVALID_REQUEST")


@pytest.mark.parametrize("path", ENDPOINTS)
def test_missing_fields(shop: Shop, path: str) -> None:
    body = error_of(send(shop, path, b"{}"), 422, "VALIDATION_ERROR")
    errors = body["details"]["errors"]
    assert errors and all({"loc", "msg"} == set(e) for e in errors)
    missing = {e["loc"][-1] for e in errors}
    expected = {
        "/ath/agents/register": {
            "agent_id",
            "agent_attestation",
            "developer",
            "requested_providers",
        },
        "/ath/authorize": {"client_id", "agent_attestation", "provider_id", "scopes", "state"},
        "/ath/token": {
            "grant_type",
            "client_id",
            "client_secret",
            "agent_attestation",
            "code",
            "ath_session_id",
        },
        "/ath/revoke": {"token", "client_id", "client_secret"},
    }[path]
    assert missing == expected


WRONG_TYPES: dict[str, dict[str, Any]] = {
    "/ath/agents/register": {
        "agent_id": ["https://a.example"],
        "agent_attestation": SECRET,
        "developer": "me",
        "requested_providers": {"p": SECRET},
    },
    "/ath/authorize": {
        "client_id": 7,
        "agent_attestation": [SECRET],
        "provider_id": PROVIDER,
        "scopes": "products:read",
        "state": {"s": SECRET},
    },
    "/ath/token": {
        "grant_type": "authorization_code",
        "client_id": "ath_x",
        "client_secret": [SECRET],
        "agent_attestation": {"jwt": SECRET},
        "code": 1,
        "ath_session_id": None,
    },
    "/ath/revoke": {"token": [SECRET], "client_id": "ath_x", "client_secret": {"v": SECRET}},
}


@pytest.mark.parametrize("path", ENDPOINTS)
def test_wrong_types_do_not_echo_secrets(shop: Shop, path: str) -> None:
    resp = send(shop, path, json.dumps(WRONG_TYPES[path]))
    body = error_of(resp, 422, "VALIDATION_ERROR")
    assert body["details"]["errors"]
    assert SECRET not in resp.text


@pytest.mark.parametrize("path", ENDPOINTS)
def test_oversized_strings_do_not_echo(shop: Shop, path: str) -> None:
    huge = SECRET * 220  # ~8.8 KB: over every string bound; the body stays under 64 KiB
    fields = {
        "/ath/agents/register": ["agent_id", "agent_attestation"],
        "/ath/authorize": ["client_id", "agent_attestation", "state"],
        "/ath/token": ["client_id", "client_secret", "agent_attestation", "code", "ath_session_id"],
        "/ath/revoke": ["token", "client_id", "client_secret"],
    }[path]
    resp = send(shop, path, json.dumps(dict.fromkeys(fields, huge)))
    error_of(resp, 422, "VALIDATION_ERROR")
    assert SECRET not in resp.text


def test_valid_json_with_secret_and_missing_field(shop: Shop) -> None:
    data = {
        "grant_type": "authorization_code",
        "client_id": "ath_x",
        "client_secret": SECRET,
        "code": "c",
        "ath_session_id": "s",
    }
    resp = send(shop, "/ath/token", json.dumps(data))
    body = error_of(resp, 422, "VALIDATION_ERROR")
    assert [e["loc"] for e in body["details"]["errors"]] == [["agent_attestation"]]
    assert SECRET not in resp.text


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    "ctype",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        None,
    ],
)
def test_wrong_content_type(shop: Shop, path: str, ctype: str | None) -> None:
    error_of(send(shop, path, b"{}", ctype=ctype), 415, "UNSUPPORTED_MEDIA_TYPE")


def test_json_content_type_variants_accepted(shop: Shop) -> None:
    for ctype in ("application/json; charset=utf-8", "APPLICATION/JSON", "application/ath+json"):
        error_of(send(shop, "/ath/revoke", b"{}", ctype=ctype), 422, "VALIDATION_ERROR")


@pytest.mark.parametrize("path", ENDPOINTS)
def test_body_over_64_kib(shop: Shop, path: str) -> None:
    big = json.dumps({"purpose": "x" * LIMIT}).encode()
    body = error_of(send(shop, path, big), 413, "PAYLOAD_TOO_LARGE")
    assert body["details"] == {"limit": LIMIT}

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        for _ in range(40):
            yield b" " * 4096

    resp = httpx.post(
        f"{shop.url}{path}", content=chunks(), headers={"Content-Type": "application/json"}
    )
    error_of(resp, 413, "PAYLOAD_TOO_LARGE")
    # Exactly at the limit is read (and then judged on its content).
    at_limit = b"{}" + b" " * (LIMIT - 2)
    error_of(send(shop, path, at_limit), 422, "VALIDATION_ERROR")


def test_unknown_fields_are_ignored(shop: Shop, agent: AgentIdentity) -> None:
    extra = {"x_future_field": {"nested": [1, 2]}, "ath_extension": "ignored"}
    body = {**register_body(agent, shop.url), **extra}
    body["requested_providers"][0]["priority"] = 1
    body["developer"]["website"] = "https://dev.example"
    reg = httpx.post(f"{shop.url}/ath/agents/register", json=body)
    assert reg.status_code == 201, reg.text
    assert reg.json()["agent_status"] == "approved"
    cid, secret = reg.json()["client_id"], reg.json()["client_secret"]

    auth = httpx.post(
        f"{shop.url}/ath/authorize", json={**authorize_body(agent, shop.url, cid), **extra}
    )
    assert auth.status_code == 200, auth.text
    client = ATHClient(shop.url, agent.agent_id, agent.key, client_id=cid, client_secret=secret)
    grant = consented_session(shop, agent, client=client)
    tok = httpx.post(
        f"{shop.url}/ath/token",
        json={**token_body(agent, shop.url, cid, secret, grant.session_id), **extra},
    )
    assert tok.status_code == 200, tok.text
    token = tok.json()["access_token"]
    rev = httpx.post(
        f"{shop.url}/ath/revoke",
        json={"client_id": cid, "client_secret": secret, "token": token, **extra},
    )
    assert rev.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/ath/nope",
        "/ath/agents",
        "/api/nothing",
        "/.well-known/ath.json",
        "/ath/agents/register/extra",
    ],
)
def test_unknown_route(shop: Shop, path: str) -> None:
    for method in ("GET", "POST"):
        error_of(send(shop, path, b"{}", method=method), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/ath/token"),
        ("PUT", "/ath/agents/register"),
        ("DELETE", "/ath/revoke"),
        ("GET", "/ath/authorize"),
        ("POST", "/.well-known/ath-app.json"),
        ("DELETE", "/ath/agents/ath_someone"),
        ("POST", "/api/products"),
        ("PATCH", "/ath/callback"),
    ],
)
def test_wrong_method(shop: Shop, method: str, path: str) -> None:
    resp = send(shop, path, b"{}", method=method)
    error_of(resp, 405, "METHOD_NOT_ALLOWED")
    assert "allow" in resp.headers


# -- GET /ath/agents/{client_id} ------------------------------------------------------------


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
def two_clients(
    shop: Shop, new_agent: Callable[..., AgentIdentity]
) -> tuple[tuple[AgentIdentity, ATHClient], tuple[AgentIdentity, ATHClient]]:
    a, b = new_agent("status-a"), new_agent("status-b")
    return (a, registered_client(shop, a)), (b, registered_client(shop, b))


def test_agent_status_endpoint(
    shop: Shop,
    two_clients: tuple[tuple[AgentIdentity, ATHClient], tuple[AgentIdentity, ATHClient]],
) -> None:
    (a, ca), (b, cb) = two_clients
    assert ca.client_id and ca.client_secret and cb.client_id and cb.client_secret
    url = f"{shop.url}/ath/agents/{ca.client_id}"

    ok = httpx.get(url, headers=basic(ca.client_id, ca.client_secret))
    assert ok.status_code == 200
    body = ok.json()
    assert body["agent_status"] == "approved" and body["client_id"] == ca.client_id
    assert body["agent_id"] == a.agent_id
    assert body["approved_providers"][0]["provider_id"] == PROVIDER
    assert "client_secret" not in body and ca.client_secret not in ok.text
    assert ok.headers["cache-control"] == "no-store"
    # Our client reads the same record.
    assert ca.agent_status().agent_status.value == "approved"

    # Authenticated by a fresh attestation instead of the secret.
    by_attestation = httpx.get(url, headers={"X-ATH-Attestation": attest(a, shop.url)})
    assert by_attestation.status_code == 200
    assert by_attestation.json()["client_id"] == ca.client_id

    refusals = [
        (basic(ca.client_id, ca.client_secret + "x"), 401, "INVALID_CLIENT"),
        (basic(ca.client_id, cb.client_secret), 401, "INVALID_CLIENT"),
        (basic(cb.client_id, cb.client_secret), 401, "INVALID_CLIENT"),  # B reading A's record
        ({}, 401, "INVALID_CLIENT"),
        ({"Authorization": "Basic !!!not-base64"}, 401, "INVALID_CLIENT"),
        (
            {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
            401,
            "INVALID_CLIENT",
        ),
        ({"Authorization": f"Bearer {ca.client_secret}"}, 401, "INVALID_CLIENT"),
        ({"X-ATH-Attestation": attest(b, shop.url)}, 403, "AGENT_IDENTITY_MISMATCH"),
        ({"X-ATH-Attestation": attest(a, f"{shop.url}/ath/token")}, 401, "INVALID_ATTESTATION"),
        ({"X-ATH-Attestation": "garbage"}, 401, "INVALID_ATTESTATION"),
    ]
    for headers, status, code in refusals:
        resp = httpx.get(url, headers=headers)
        error_of(resp, status, code)
        assert ca.client_secret not in resp.text

    unknown = f"{shop.url}/ath/agents/ath_unknown"
    error_of(httpx.get(unknown, headers=basic("ath_unknown", "whatever")), 401, "INVALID_CLIENT")
    error_of(httpx.get(unknown), 401, "INVALID_CLIENT")

"""The agent client without a network: the sans-I/O core fed canned responses, plus the sync and
async drivers over httpx.MockTransport (PROTOCOL.md §2–§9)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import warnings
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest

from athkit.client import (
    AsyncATHClient,
    ATHClient,
    AuthorizationRequestResult,
    ClientCore,
    CredentialStore,
    DraftVersionWarning,
    PreparedRequest,
    RawResponse,
    StoredCredentials,
    errors,
    identity_document,
    parse_redirect,
)
from athkit.client._core import manual_base_url
from athkit.client.errors import (
    ERROR_CLASSES,
    AgentAlreadyRegisteredError,
    ClientStateError,
    ProtocolViolation,
    ScopeInsufficientError,
    ServiceUnreachableError,
    StateMismatchError,
    TokenRevokedError,
    UnsupportedVersionError,
    error_from_response,
)
from athkit.crypto import AgentKey, decode_unverified, load_public_jwk, verify_attestation_signature
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.messages import AgentIdentityDocument, ManualServiceConfig

BASE = "https://shop.example"
AGENT_ID = "https://agent.example/.well-known/agent.json"
DEVELOPER = {"name": "Dev Co", "id": "dev-1"}
PROVIDERS = [{"provider_id": "shop", "scopes": ["orders:read", "orders:write"]}]

KEY = AgentKey.generate()

DISCOVERY: dict[str, Any] = {
    "ath_version": "0.1",
    "app_id": "shop",
    "name": "ATH Shop",
    "auth": {
        "type": "oauth2",
        "authorization_endpoint": f"{BASE}/oauth/authorize",
        "token_endpoint": f"{BASE}/oauth/token",
        "scopes_supported": ["orders:read"],
    },
    "api_base": f"{BASE}/api/",
}
REGISTERED: dict[str, Any] = {
    "client_id": "cid-1",
    "client_secret": "sec/ret+1 ",
    "agent_status": "approved",
    "approved_providers": [
        {"provider_id": "shop", "approved_scopes": ["orders:read"], "denied_scopes": []}
    ],
    "approval_expires": "2027-01-01T00:00:00Z",
}
AUTHORIZED: dict[str, Any] = {
    "authorization_url": f"{BASE}/oauth/authorize?x=1",
    "ath_session_id": "sess-1",
}
TOKEN: dict[str, Any] = {
    "access_token": "tok-1",
    "token_type": "Bearer",
    "expires_in": 3600,
    "effective_scopes": ["orders:read"],
    "provider_id": "shop",
    "agent_id": AGENT_ID,
    "scope_intersection": {
        "agent_approved": ["orders:read"],
        "user_consented": ["orders:read"],
        "effective": ["orders:read"],
    },
}


def raw(status: int, body: Any = None, *, text: bytes | None = None) -> RawResponse:
    data = text if text is not None else json.dumps(body).encode()
    return RawResponse(status, {"content-type": "application/json"}, data)


Flow = Generator[PreparedRequest, RawResponse, Any]


def drive(flow: Flow, *responses: RawResponse) -> tuple[Any, list[PreparedRequest]]:
    """Drive a flow with canned responses; return its result and the requests it made."""
    sent: list[PreparedRequest] = []
    request = next(flow)
    for response in responses:
        sent.append(request)
        try:
            request = flow.send(response)
        except StopIteration as stop:
            return stop.value, sent
    raise AssertionError("flow wanted more responses")


def run(flow: Flow, *responses: RawResponse) -> Any:
    return drive(flow, *responses)[0]


def core(**kwargs: Any) -> ClientCore:
    return ClientCore(BASE + "/", AGENT_ID, KEY, **kwargs)


def registered_core() -> ClientCore:
    return core(client_id="cid-1", client_secret="secret-1")


def claims_of(request: PreparedRequest) -> dict[str, Any]:
    token = request.json["agent_attestation"]
    header, claims = decode_unverified(token)
    assert header["alg"] == "ES256" and header["kid"] == KEY.kid and header["typ"] == "JWT"
    verify_attestation_signature(token, load_public_jwk(KEY.public_jwk()))
    return claims


# -- URLs and the audience rule (§3) --------------------------------------------------------


def test_base_url_loses_trailing_slash() -> None:
    assert core().base_url == BASE
    assert core().token_url == f"{BASE}/ath/token"


def test_register_request_url_body_and_audience() -> None:
    req = core().build_register(DEVELOPER, PROVIDERS, purpose="shopping")
    assert (req.method, req.url) == ("POST", f"{BASE}/ath/agents/register")
    assert req.json["agent_id"] == AGENT_ID
    assert req.json["developer"] == DEVELOPER
    assert req.json["requested_providers"] == PROVIDERS
    assert req.json["purpose"] == "shopping"
    assert "redirect_uris" not in req.json  # absent unless given (§4)
    claims = claims_of(req)
    assert claims["aud"] == BASE
    assert claims["sub"] == AGENT_ID == claims["iss"]
    assert claims["exp"] > claims["iat"]


def test_authorize_request_url_body_and_audience() -> None:
    req, state = registered_core().build_authorize("shop", ["orders:read"], resource=f"{BASE}/api")
    assert (req.method, req.url) == ("POST", f"{BASE}/ath/authorize")
    assert req.json["client_id"] == "cid-1"
    assert req.json["state"] == state
    assert req.json["scopes"] == ["orders:read"]
    assert req.json["resource"] == f"{BASE}/api"
    assert "user_redirect_uri" not in req.json
    assert claims_of(req)["aud"] == BASE


def test_token_request_url_body_and_audience() -> None:
    req = registered_core().build_token("sess-1")
    assert (req.method, req.url) == ("POST", f"{BASE}/ath/token")
    body = dict(req.json)
    assert claims_of(req)["aud"] == f"{BASE}/ath/token"
    del body["agent_attestation"]
    assert body == {
        "grant_type": "authorization_code",
        "client_id": "cid-1",
        "client_secret": "secret-1",
        "code": "ath_callback",
        "ath_session_id": "sess-1",
    }


def test_every_attestation_has_a_fresh_jti() -> None:
    c = registered_core()
    requests = [
        c.build_register(DEVELOPER, PROVIDERS),
        c.build_register(DEVELOPER, PROVIDERS),
        c.build_authorize("shop", ["orders:read"])[0],
        c.build_authorize("shop", ["orders:read"])[0],
        c.build_token("s"),
        c.build_token("s"),
    ]
    jtis = [claims_of(r)["jti"] for r in requests]
    assert len(set(jtis)) == len(jtis)


def test_state_is_fresh_and_at_least_128_bits() -> None:
    c = registered_core()
    states = {c.build_authorize("shop", ["orders:read"])[1] for _ in range(5)}
    assert len(states) == 5
    for s in states:
        assert len(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))) * 8 >= 128


def test_calls_needing_credentials_refuse_before_registering() -> None:
    c = core()
    with pytest.raises(ClientStateError):
        c.build_authorize("shop", ["orders:read"])
    with pytest.raises(ClientStateError):
        c.build_token("sess-1")
    with pytest.raises(ClientStateError):
        c.build_agent_status()


# -- registration (§4) ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201])
def test_register_accepts_200_and_201_and_keeps_credentials(status: int) -> None:
    c = core()
    result = run(c.register_flow(DEVELOPER, PROVIDERS), raw(status, REGISTERED))
    assert result.client_id == "cid-1"
    assert result.agent_status.value == "approved"
    assert (c.client_id, c.client_secret) == ("cid-1", "sec/ret+1 ")


def test_register_duplicate_is_typed() -> None:
    body = {"code": "AGENT_ALREADY_REGISTERED", "message": "dup"}
    with pytest.raises(AgentAlreadyRegisteredError) as info:
        run(core().register_flow(DEVELOPER, PROVIDERS), raw(409, body))
    assert info.value.status == 409


def test_register_response_missing_required_field_is_a_protocol_violation() -> None:
    body = {k: v for k, v in REGISTERED.items() if k != "approval_expires"}
    c = core()
    with pytest.raises(ProtocolViolation) as info:
        run(c.register_flow(DEVELOPER, PROVIDERS), raw(201, body))
    assert info.value.code == "INVALID_RESPONSE"
    assert c.client_id is None


def test_agent_status_uses_form_urlencoded_basic_auth() -> None:
    c = core(client_id="id:1", client_secret="sec ret/+")
    req = c.build_agent_status()
    assert (req.method, req.url) == ("GET", f"{BASE}/ath/agents/id%3A1")
    scheme, value = req.headers["Authorization"].split(" ")
    assert scheme == "Basic"
    user, password = base64.b64decode(value).decode().split(":")
    assert (user, password) == ("id%3A1", "sec+ret%2F%2B")
    assert (unquote_plus(user), unquote_plus(password)) == ("id:1", "sec ret/+")
    body = {**REGISTERED, "agent_id": AGENT_ID}
    assert c.parse_agent_status(raw(200, body)).agent_id == AGENT_ID


# -- authorization and token (§5, §6) -------------------------------------------------------


def test_authorize_returns_result_and_remembers_state() -> None:
    c = registered_core()
    flow = c.authorize_flow("shop", ["orders:read"], f"{BASE}/cb")
    result, (sent,) = drive(flow, raw(200, AUTHORIZED))
    assert isinstance(result, AuthorizationRequestResult)
    assert result.ath_session_id == "sess-1"
    assert result.authorization_url == AUTHORIZED["authorization_url"]
    assert sent.json["state"] == result.state
    assert sent.json["user_redirect_uri"] == f"{BASE}/cb"
    assert c.pending_state("sess-1") == result.state


def test_state_mismatch_raises_before_any_request() -> None:
    c = registered_core()
    result = run(c.authorize_flow("shop", ["orders:read"]), raw(200, AUTHORIZED))
    flow = c.exchange_token_flow(result.ath_session_id, "code-1", returned_state="forged")
    with pytest.raises(StateMismatchError) as info:
        next(flow)
    assert info.value.code is ErrorCode.STATE_MISMATCH
    with pytest.raises(StateMismatchError):
        c.build_token("unknown-session", "code-1", returned_state=result.state)


def test_matching_state_exchanges_and_keeps_token() -> None:
    c = registered_core()
    result = run(c.authorize_flow("shop", ["orders:read"]), raw(200, AUTHORIZED))
    token, (sent,) = drive(
        c.exchange_token_flow(result.ath_session_id, "code-1", returned_state=result.state),
        raw(200, TOKEN),
    )
    assert sent.json["code"] == "code-1"
    assert token.effective_scopes == ["orders:read"]
    assert token.scope_intersection.user_consented == ["orders:read"]
    assert c.access_token == "tok-1"
    assert c.token_for("shop") == "tok-1"
    assert c.pending_state("sess-1") is None  # single use


def test_token_error_is_typed_and_token_not_kept() -> None:
    c = registered_core()
    body = {"code": "SESSION_EXPIRED", "message": "too late", "details": {"ath_session_id": "s"}}
    with pytest.raises(errors.SessionExpiredError) as info:
        run(c.exchange_token_flow("s"), raw(400, body))
    assert info.value.details == {"ath_session_id": "s"}
    assert c.access_token is None


# -- errors (§9) ----------------------------------------------------------------------------


def test_every_error_code_has_its_class() -> None:
    for code in ErrorCode:
        cls = ERROR_CLASSES[code.value]
        assert issubclass(cls, ATHError)
        assert cls.code == code
        assert getattr(errors, cls.__name__) is cls
        assert cls.__name__.endswith("Error")


@pytest.mark.parametrize("code", list(ErrorCode))
def test_error_from_response_is_typed_per_code(code: ErrorCode) -> None:
    body = json.dumps({"code": code.value, "message": "m", "details": {"k": 1}}).encode()
    err = error_from_response(418, body)
    assert type(err) is ERROR_CLASSES[code.value]
    assert (err.code, err.message, err.details, err.status) == (code, "m", {"k": 1}, 418)
    assert err.to_dict() == {"code": code.value, "message": "m", "details": {"k": 1}}


def test_named_classes_match_codes() -> None:
    assert TokenRevokedError.code is ErrorCode.TOKEN_REVOKED
    assert ScopeInsufficientError().status == 403
    assert errors.InvalidAttestationError("bad").status == 401
    assert issubclass(ServiceUnreachableError, errors.ServiceUnavailableError)


def test_unknown_code_keeps_its_string() -> None:
    err = error_from_response(400, b'{"code": "BRAND_NEW_CODE", "message": "later"}')
    assert type(err) is ATHError
    assert err.code == "BRAND_NEW_CODE" and err.status == 400


@pytest.mark.parametrize(
    "body", [b"<html>oops</html>", b"", b"[1]", b'{"code": 5, "message": "x"}']
)
def test_non_ath_error_bodies_are_invalid_response(body: bytes) -> None:
    err = error_from_response(502, body)
    assert isinstance(err, ProtocolViolation)
    assert err.code == "INVALID_RESPONSE" and err.status == 502


def test_success_status_with_non_json_body_is_a_protocol_violation() -> None:
    with pytest.raises(ProtocolViolation):
        run(registered_core().exchange_token_flow("s"), raw(200, text=b"not json"))


# -- discovery and versions (§2) ------------------------------------------------------------


def test_discover_caches_api_base_and_ignores_unknown_fields() -> None:
    c = core()
    doc = {**DISCOVERY, "future_field": {"x": 1}, "auth": {**DISCOVERY["auth"], "new": True}}
    result, (sent,) = drive(c.discover_flow(), raw(200, doc))
    assert (sent.method, sent.url) == ("GET", f"{BASE}/.well-known/ath-app.json")
    assert result.app_id == "shop" and result.auth.agent_attestation_required is True
    assert c.api_base == f"{BASE}/api"
    assert c.discovery is result


def test_draft_version_is_accepted_with_a_warning() -> None:
    with pytest.warns(DraftVersionWarning):
        result = run(core().discover_flow(), raw(200, {**DISCOVERY, "ath_version": "0.1-draft"}))
    assert result.ath_version == "0.1-draft"


def test_same_major_newer_minor_is_accepted_quietly() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(core().discover_flow(), raw(200, {**DISCOVERY, "ath_version": "0.9"}))


@pytest.mark.parametrize("version", ["1.0", "2.3-draft", "banana", "0.1.2"])
def test_unsupported_or_malformed_version_stops(version: str) -> None:
    c = core()
    # A future MAJOR may change the document's shape: the version is checked first.
    with pytest.raises(UnsupportedVersionError) as info:
        run(c.discover_flow(), raw(200, {"ath_version": version, "totally": "different"}))
    assert info.value.code is ErrorCode.UNSUPPORTED_VERSION
    assert c.api_base is None


def test_missing_version_is_a_protocol_violation() -> None:
    doc = {k: v for k, v in DISCOVERY.items() if k != "ath_version"}
    with pytest.raises(ProtocolViolation):
        run(core().discover_flow(), raw(200, doc))


def test_gateway_catalog() -> None:
    catalog = {
        "ath_version": "0.1",
        "gateway_id": "gw",
        "agent_registration_endpoint": f"{BASE}/ath/agents/register",
        "supported_providers": [
            {"provider_id": "github", "display_name": "GitHub", "available_scopes": ["repo"]}
        ],
    }
    result, (sent,) = drive(core().discover_gateway_flow(), raw(200, catalog))
    assert sent.url == f"{BASE}/.well-known/ath.json"
    assert result.supported_providers[0].provider_id == "github"


def test_manual_config_derives_base_url(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "provider": "shop",
        "api_base": "https://api.shop.example/v1",
        "oauth": {
            "authorization_url": f"{BASE}/ath/authorize",
            "token_url": f"{BASE}/ath/token",
        },
    }
    path = tmp_path / "svc.json"
    path.write_text(json.dumps(config))
    with ATHClient.from_manual_config(path, agent_id=AGENT_ID, key=KEY) as client:
        assert client.base_url == BASE
        assert client.api_base == "https://api.shop.example/v1"
        assert client.core.manual_config is not None
    bad = ManualServiceConfig.model_validate(
        {**config, "oauth": {**config["oauth"], "token_url": f"{BASE}/oauth/token"}}
    )
    with pytest.raises(ValueError):
        manual_base_url(bad)


# -- API calls and revocation (§7, §8) ------------------------------------------------------


def test_api_request_carries_token_and_agent_header() -> None:
    c = core(api_base=f"{BASE}/api/")
    c.set_token("tok-1", "shop")
    req = c.build_api_request("get", c.api_url("/orders"), params={"a": "1"})
    assert (req.method, req.url) == ("GET", f"{BASE}/api/orders")
    assert req.headers["Authorization"] == "Bearer tok-1"
    assert req.headers["X-ATH-Agent-ID"] == AGENT_ID
    with pytest.raises(ValueError):
        c.api_url("https://evil.example/steal")
    with pytest.raises(ClientStateError):
        c.build_api_request("GET", c.api_url("/x"), provider_id="other")


def test_api_url_needs_discovery() -> None:
    with pytest.raises(ClientStateError):
        core().api_url("/orders")


def test_proxy_url_shape() -> None:
    c = core()
    assert c.proxy_url("github", "/user/repos") == f"{BASE}/ath/proxy/github/user/repos"
    assert c.proxy_url("git hub", "user") == f"{BASE}/ath/proxy/git%20hub/user"


def test_check_api_response_only_raises_on_ath_errors() -> None:
    ClientCore.check_api_response(200, b'{"code": "TOKEN_REVOKED", "message": "x"}')
    ClientCore.check_api_response(404, b'{"message": "upstream says not found"}')
    ClientCore.check_api_response(500, b"<html></html>")
    with pytest.raises(TokenRevokedError):
        ClientCore.check_api_response(401, b'{"code": "TOKEN_REVOKED", "message": "x"}')


def test_revoke_sends_credentials_and_forgets_token() -> None:
    c = registered_core()
    c.set_token("tok-1", "shop")
    _, (req,) = drive(c.revoke_flow(), raw(200, {}))
    assert (req.method, req.url) == ("POST", f"{BASE}/ath/revoke")
    assert req.json == {"token": "tok-1", "client_id": "cid-1", "client_secret": "secret-1"}
    assert c.access_token is None
    with pytest.raises(ClientStateError):
        c.token_for("shop")


def test_parse_redirect() -> None:
    p = parse_redirect("https://agent.example/cb?code=abc&state=xyz")
    assert (p.code, p.state, p.error) == ("abc", "xyz", None)
    p = parse_redirect("https://agent.example/cb?error=access_denied&error_description=no&state=s")
    assert (p.code, p.error, p.error_description, p.state) == (None, "access_denied", "no", "s")


# -- identity document and credential store (§3, §4) ----------------------------------------


def test_identity_document() -> None:
    doc = identity_document(AGENT_ID, "Shopper", DEVELOPER, KEY, capabilities=["shopping"])
    assert doc["agent_id"] == AGENT_ID and doc["ath_version"] == "0.1"
    assert doc["public_key"]["kid"] == KEY.kid
    assert "d" not in doc["public_key"]
    assert doc["capabilities"] == ["shopping"]
    AgentIdentityDocument.model_validate(doc)
    load_public_jwk(doc["public_key"])


def test_credential_store_round_trip(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "sub" / "creds.json")
    assert store.load() == {}
    creds = StoredCredentials("cid-1", "secret-1", AGENT_ID)
    store.save(BASE + "/", creds)
    assert store.get(BASE) == creds
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert json.loads(store.path.read_text())[BASE]["client_secret"] == "secret-1"
    assert store.delete(BASE) is True
    assert store.delete(BASE) is False
    assert store.get(BASE) is None


# -- drivers over httpx.MockTransport -------------------------------------------------------


class FakeService:
    """A tiny canned ATH service recording what it received."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.revoked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        body = json.loads(request.content) if request.content else {}
        routes: dict[tuple[str, str], Callable[[], httpx.Response]] = {
            ("GET", "/.well-known/ath-app.json"): lambda: httpx.Response(200, json=DISCOVERY),
            ("POST", "/ath/agents/register"): lambda: httpx.Response(201, json=REGISTERED),
            ("POST", "/ath/authorize"): lambda: httpx.Response(200, json=AUTHORIZED),
            ("POST", "/ath/token"): lambda: httpx.Response(200, json=TOKEN),
            ("POST", "/ath/revoke"): lambda: self._revoke(body),
        }
        if (request.method, path) in routes:
            return routes[(request.method, path)]()
        if path == "/api/orders":
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token in self.revoked:
                return httpx.Response(401, json={"code": "TOKEN_REVOKED", "message": "revoked"})
            return httpx.Response(
                200, json={"orders": [], "agent": request.headers["x-ath-agent-id"]}
            )
        return httpx.Response(404, text="no route")

    def _revoke(self, body: dict[str, Any]) -> httpx.Response:
        self.revoked.append(body["token"])
        return httpx.Response(200)


def test_sync_client_full_flow() -> None:
    service = FakeService()
    http = httpx.Client(transport=httpx.MockTransport(service))
    with ATHClient(BASE, AGENT_ID, KEY, http_client=http) as client:
        assert client.discover().api_base == f"{BASE}/api/"
        client.register(DEVELOPER, PROVIDERS)
        assert client.client_id == "cid-1"
        auth = client.authorize("shop", ["orders:read"])
        client.exchange_token(auth.ath_session_id)
        response = client.request("GET", "/orders")
        assert response.json() == {"orders": [], "agent": AGENT_ID}
        client.revoke()
        assert client.access_token is None
        client.set_token("tok-1")
        with pytest.raises(TokenRevokedError):
            client.request("GET", "/orders")
        missing = client.request("GET", "/nothing")  # non-ATH error: returned as is
        assert missing.status_code == 404
    assert not http.is_closed  # injected clients belong to the caller
    token_request = next(r for r in service.requests if r.url.path == "/ath/token")
    _, claims = decode_unverified(json.loads(token_request.content)["agent_attestation"])
    assert claims["aud"] == f"{BASE}/ath/token"
    http.close()


def test_sync_client_wraps_transport_failures() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http = httpx.Client(transport=httpx.MockTransport(refuse))
    client = ATHClient(BASE, AGENT_ID, KEY, http_client=http)
    with client, pytest.raises(ServiceUnreachableError) as info:
        client.discover()
    assert info.value.code is ErrorCode.SERVICE_UNAVAILABLE


def test_async_client_full_flow() -> None:
    service = FakeService()

    async def main() -> None:
        transport = httpx.MockTransport(service)
        http = httpx.AsyncClient(transport=transport)
        async with http, AsyncATHClient(BASE, AGENT_ID, KEY, http_client=http) as client:
            await client.discover()
            await client.register(DEVELOPER, PROVIDERS)
            auth = await client.authorize("shop", ["orders:read"], f"{BASE}/cb")
            with pytest.raises(StateMismatchError):
                await client.exchange_token(auth.ath_session_id, "c", returned_state="no")
            token = await client.exchange_token(auth.ath_session_id, "c", returned_state=auth.state)
            assert token.access_token == client.access_token == "tok-1"
            response = await client.request("GET", "/orders")
            assert response.status_code == 200
            await client.revoke()
            client.set_token("tok-1")
            with pytest.raises(TokenRevokedError):
                await client.request("GET", "/orders")

    asyncio.run(main())
    paths = [r.url.path for r in service.requests]
    assert paths.count("/ath/token") == 1  # the mismatched state never reached the service


def test_async_client_owns_its_http_client() -> None:
    async def main() -> None:
        client = AsyncATHClient(BASE, AGENT_ID, KEY, timeout=2.0)
        http = client._http
        assert http.timeout.connect == 2.0
        await client.close()
        assert http.is_closed

    asyncio.run(main())


def test_client_imports_no_server_packages() -> None:
    import subprocess
    import sys

    code = (
        "import sys, athkit.client\n"
        "banned = ('athkit.core', 'athkit.store', 'athkit.web', 'starlette', 'fastapi',"
        " 'sqlalchemy')\n"
        "print([m for m in sys.modules if m.split('.')[0] in banned or m.startswith(banned)])\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"

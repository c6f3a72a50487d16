"""AttestationVerifier against real identity documents served over HTTP (PROTOCOL.md §3).

The agent identity host is a real uvicorn server; the store is a real SQLite database; only the
clock is ours, so iat/exp windows and replay expiry are exact.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from joserfc import jwt
from sqlalchemy import delete, func, select

from athkit.core.attestation import AttestationVerifier
from athkit.core.clock import to_datetime
from athkit.core.identity import IdentityFetcher
from athkit.crypto.attestation import sign_attestation
from athkit.crypto.keys import AgentKey
from athkit.demo.agent import identity_document
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.db import Database
from athkit.store.models import ReplayRow
from athkit.store.repositories import Store
from athkit.store.shared import SQLReplayCache
from athkit.web.serving import BackgroundServer
from tests.conftest import AgentIdentity

BASE = "https://shop.example"
TOKEN_AUD = f"{BASE}/ath/token"


class FakeClock:
    """A settable clock: the verifier and the fetcher read ``now``."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Env:
    def __init__(self, db: Database) -> None:
        self.clock = FakeClock()
        self.fetcher = IdentityFetcher(dev_mode=True, clock=self.clock)
        self.requests: list[str] = []
        self.fetcher._http.event_hooks["request"].append(
            lambda req: self.requests.append(str(req.url))
        )
        self.db = db
        with db.transaction() as s:
            s.execute(delete(ReplayRow))
        self.store = Store(self.db)
        self.verifier = self.make_verifier()

    def make_verifier(self, **kw: Any) -> AttestationVerifier:
        kw.setdefault("base_url", BASE)
        return AttestationVerifier(fetcher=self.fetcher, replay=SQLReplayCache(self.store), clock=self.clock, **kw)

    def sign(self, agent: AgentIdentity, aud: str = BASE, **kw: Any) -> str:
        return sign_attestation(agent.key, agent.agent_id, aud, now=self.clock.now, **kw)

    def replay_rows(self) -> int:
        with self.db.transaction() as s:
            return int(s.scalar(select(func.count()).select_from(ReplayRow)) or 0)

    def close(self) -> None:
        self.fetcher.close()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('verifier') / 'verifier.db'}")
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def env(db: Database) -> Iterator[Env]:
    e = Env(db)
    try:
        yield e
    finally:
        e.close()


@pytest.fixture
def agent(new_agent: Callable[..., AgentIdentity]) -> AgentIdentity:
    return new_agent("verifier")


def raw_token(key: AgentKey, claims: dict[str, Any], kid: str | None = "default") -> str:
    header: dict[str, Any] = {"alg": key.algorithm, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(header, claims, key.key, algorithms=[key.algorithm])


def claims_for(env: Env, agent: AgentIdentity, **over: Any) -> dict[str, Any]:
    now = int(env.clock.now)
    c: dict[str, Any] = {
        "iss": agent.agent_id,
        "sub": agent.agent_id,
        "aud": BASE,
        "iat": now,
        "exp": now + 3600,
        "jti": secrets.token_urlsafe(16),
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def refused(env: Env, token: str, endpoint: str = "register", match: str | None = None) -> ATHError:
    with pytest.raises(ATHError, match=match) as err:
        env.verifier.verify(token, endpoint=endpoint)  # type: ignore[arg-type]
    assert err.value.code == ErrorCode.INVALID_ATTESTATION
    assert err.value.status == 401
    return err.value


# -- the happy path ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["P-256", "Ed25519"])
def test_valid_attestation_passes(
    env: Env, new_agent: Callable[..., AgentIdentity], kind: str
) -> None:
    agent = new_agent("ok", kind)
    v = env.verifier.verify(env.sign(agent), endpoint="register", expected_agent_id=agent.agent_id)
    assert v.agent_id == agent.agent_id
    assert v.identity.agent_id == agent.agent_id
    assert v.claims["aud"] == BASE
    assert env.requests == [agent.agent_id]
    assert env.replay_rows() == 1


def test_identity_document_is_cached_for_at_most_five_minutes(
    env: Env, agent: AgentIdentity
) -> None:
    env.fetcher = IdentityFetcher(dev_mode=True, clock=env.clock, cache_seconds=3600)
    assert env.fetcher.cache_seconds == 300  # the configured hour is capped
    env.fetcher._http.event_hooks["request"].append(lambda r: env.requests.append(str(r.url)))
    env.verifier = env.make_verifier()
    for _ in range(3):
        env.verifier.verify(env.sign(agent), endpoint="register")
    assert len(env.requests) == 1
    env.clock.advance(299)
    env.verifier.verify(env.sign(agent), endpoint="register")
    assert len(env.requests) == 1
    env.clock.advance(2)
    env.verifier.verify(env.sign(agent), endpoint="register")
    assert len(env.requests) == 2
    env.fetcher.close()


# -- audience ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "aud"),
    [("register", BASE), ("authorize", BASE), ("status", BASE), ("token", TOKEN_AUD)],
)
def test_audience_accepted_per_endpoint(
    env: Env, agent: AgentIdentity, endpoint: str, aud: str
) -> None:
    env.verifier.verify(env.sign(agent, aud), endpoint=endpoint)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("endpoint", "aud"),
    [
        ("register", BASE + "/"),
        ("register", TOKEN_AUD),
        ("register", "https://other.example"),
        ("register", "http://shop.example"),
        ("register", "https://shop.example:443"),
        ("register", "https://shop.example.evil.example"),
        ("authorize", BASE + "/ath/authorize"),
        ("authorize", BASE + "/"),
        ("token", BASE),
        ("token", TOKEN_AUD + "/"),
        ("token", "https://other.example/ath/token"),
        ("token", ""),
    ],
)
def test_audience_refused(env: Env, agent: AgentIdentity, endpoint: str, aud: str) -> None:
    err = refused(env, env.sign(agent, aud), endpoint, match="aud")
    assert err.details["expected_aud"] == (TOKEN_AUD if endpoint == "token" else BASE)


def test_missing_audience_refused(env: Env, agent: AgentIdentity) -> None:
    refused(env, raw_token(agent.key, claims_for(env, agent, aud=None)), match="aud")


def test_configured_base_url_with_trailing_slash(env: Env, agent: AgentIdentity) -> None:
    env.verifier = env.make_verifier(base_url=BASE + "/")
    env.verifier.verify(env.sign(agent, BASE), endpoint="register")
    env.verifier.verify(env.sign(agent, TOKEN_AUD), endpoint="token")
    refused(env, env.sign(agent, BASE + "/"), "register", match="aud")


def test_rejected_attestation_does_not_burn_its_jti(env: Env, agent: AgentIdentity) -> None:
    token = env.sign(agent, BASE)
    refused(env, token, "token", match="aud")
    assert env.replay_rows() == 0
    env.verifier.verify(token, endpoint="register")


# -- time window ------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_iat_within_five_minutes_accepted(env: Env, agent: AgentIdentity, offset: int) -> None:
    now = int(env.clock.now)
    token = raw_token(agent.key, claims_for(env, agent, iat=now + offset, exp=now + offset + 600))
    env.verifier.verify(token, endpoint="register")


@pytest.mark.parametrize("offset", [-301, 301, -3000, 3000])
def test_iat_outside_five_minutes_refused(env: Env, agent: AgentIdentity, offset: int) -> None:
    now = int(env.clock.now)
    token = raw_token(agent.key, claims_for(env, agent, iat=now + offset, exp=now + offset + 600))
    refused(env, token, match="iat")


def test_expired_refused(env: Env, agent: AgentIdentity) -> None:
    now = int(env.clock.now)
    refused(
        env, raw_token(agent.key, claims_for(env, agent, iat=now - 60, exp=now)), match="expired"
    )
    refused(
        env,
        raw_token(agent.key, claims_for(env, agent, iat=now - 60, exp=now - 1)),
        match="expired",
    )
    token = env.sign(agent, lifetime=120)
    env.clock.advance(121)
    refused(env, token, match="expired")


def test_lifetime_longer_than_max_refused(env: Env, agent: AgentIdentity) -> None:
    refused(env, env.sign(agent, lifetime=3601), match="lifetime")
    env.verifier.verify(env.sign(agent, lifetime=3600), endpoint="register")
    env.verifier = env.make_verifier(max_lifetime=300)
    refused(env, env.sign(agent, lifetime=301), match="lifetime")
    env.verifier.verify(env.sign(agent, lifetime=300), endpoint="register")


@pytest.mark.parametrize(
    "over", [{"iat": None}, {"exp": None}, {"iat": "now"}, {"exp": "2030-01-01T00:00:00Z"}]
)
def test_iat_and_exp_must_be_numbers(env: Env, agent: AgentIdentity, over: dict[str, Any]) -> None:
    refused(env, raw_token(agent.key, claims_for(env, agent, **over)))


@pytest.mark.parametrize(
    ("iat", "exp"),
    [
        (math.nan, 10 * 365 * 86400),  # NaN compares false: would dodge window and lifetime checks
        (0, math.inf),
        (0, math.nan),
        (math.inf, math.inf),
        (True, 600),
    ],
)
def test_iat_and_exp_must_be_finite(env: Env, agent: AgentIdentity, iat: float, exp: float) -> None:
    now = int(env.clock.now)
    # JSON as Python writes it carries NaN/Infinity; a signed token can hold them.
    claims = claims_for(env, agent, iat=iat if iat is True else now + iat, exp=now + exp)
    refused(env, raw_token(agent.key, claims), match="iat and exp")
    assert env.replay_rows() == 0


@pytest.mark.parametrize("jti", [None, "", "short", 12345678, "x" * 257])
def test_missing_or_bad_jti_refused(env: Env, agent: AgentIdentity, jti: Any) -> None:
    refused(env, raw_token(agent.key, claims_for(env, agent, jti=jti)), match="jti")
    assert env.replay_rows() == 0


# -- replay -----------------------------------------------------------------------------------


def test_replay_refused_until_exp_then_purged(env: Env, agent: AgentIdentity) -> None:
    token = env.sign(agent, lifetime=600)
    env.verifier.verify(token, endpoint="register")
    refused(env, token, match="replay")
    env.clock.advance(250)
    refused(env, token, match="replay")
    # the same jti at another endpoint is still a replay
    again = env.sign(agent, TOKEN_AUD, extra={"jti": json.loads(_payload(token))["jti"]})
    refused(env, again, "token", match="replay")
    assert env.replay_rows() == 1

    env.clock.advance(351)  # now past exp: the attestation itself is refused as too old ...
    refused(env, token, match="clock window|expired")
    # ... and its replay entry is no longer needed
    assert env.store.purge_expired(to_datetime(env.clock.now)) == 1
    assert env.replay_rows() == 0


def test_jti_is_per_agent(env: Env, new_agent: Callable[..., AgentIdentity]) -> None:
    a, b = new_agent("a"), new_agent("b")
    jti = secrets.token_urlsafe(16)
    env.verifier.verify(env.sign(a, extra={"jti": jti}), endpoint="register")
    env.verifier.verify(env.sign(b, extra={"jti": jti}), endpoint="register")
    refused(env, env.sign(a, extra={"jti": jti}), match="replay")


def _payload(token: str) -> bytes:
    import base64

    seg = token.split(".")[1]
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))


# -- iss / sub --------------------------------------------------------------------------------


def test_iss_may_be_agent_id_or_its_domain(env: Env, agent: AgentIdentity) -> None:
    host = httpx.URL(agent.agent_id).netloc.decode()
    for iss in (agent.agent_id, host, f"http://{host}"):
        env.verifier.verify(env.sign(agent, extra={"iss": iss}), endpoint="register")


@pytest.mark.parametrize(
    "iss",
    [
        "https://evil.example",
        "evil.example",
        "https://evil.example/.well-known/agent.json",
        "127.0.0.1",
        "",
        None,
    ],
)
def test_iss_other_refused(env: Env, agent: AgentIdentity, iss: Any) -> None:
    refused(env, raw_token(agent.key, claims_for(env, agent, iss=iss)), match="iss")


def test_iss_of_another_agent_on_same_host_path_refused(
    env: Env, new_agent: Callable[..., AgentIdentity]
) -> None:
    a, b = new_agent("a"), new_agent("b")
    refused(env, env.sign(a, extra={"iss": b.agent_id}), match="iss")


def test_sub_mismatch_is_identity_mismatch(
    env: Env, new_agent: Callable[..., AgentIdentity]
) -> None:
    a, b = new_agent("a"), new_agent("b")
    with pytest.raises(ATHError) as err:
        env.verifier.verify(env.sign(a), endpoint="authorize", expected_agent_id=b.agent_id)
    assert err.value.code == ErrorCode.AGENT_IDENTITY_MISMATCH
    assert err.value.status == 403
    assert env.requests == []  # refused before fetching anything


def test_missing_sub_refused(env: Env, agent: AgentIdentity) -> None:
    refused(env, raw_token(agent.key, claims_for(env, agent, sub=None)), match="sub")
    assert env.requests == []


def test_sub_naming_another_agents_document_fails_signature(
    env: Env, new_agent: Callable[..., AgentIdentity]
) -> None:
    victim, attacker = new_agent("victim"), new_agent("attacker")
    forged = raw_token(attacker.key, claims_for(env, victim))
    refused(env, forged, match="signature")


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "e30.e30.e30"])
def test_malformed_token_refused(env: Env, token: str) -> None:
    refused(env, token)


def test_alg_none_refused(env: Env, agent: AgentIdentity) -> None:
    import base64

    def seg(o: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()

    token = f"{seg({'alg': 'none', 'typ': 'JWT'})}.{seg(claims_for(env, agent))}."
    refused(env, token, match="not allowed")


# -- key rotation -----------------------------------------------------------------------------


def test_key_rotation_forces_one_refetch_per_minute(env: Env, agent: AgentIdentity) -> None:
    env.verifier.verify(env.sign(agent), endpoint="register")
    assert len(env.requests) == 1

    agent.rotate(AgentKey.generate(kid="default"))
    env.verifier.verify(env.sign(agent), endpoint="register")  # old key cached: forced re-fetch
    assert len(env.requests) == 2
    assert agent.agent_id in env.fetcher._forced

    # A second rotation within 60 s: the forced re-fetch budget is spent, nothing is fetched.
    env.clock.advance(30)
    agent.rotate(AgentKey.generate(kid="default"))
    refused(env, env.sign(agent), match="signature")
    refused(env, env.sign(agent), match="signature")
    assert len(env.requests) == 2

    # A stream of bad signatures cannot make us hammer the agent's host either.
    stranger = AgentKey.generate(kid="default")
    for _ in range(5):
        refused(env, raw_token(stranger, claims_for(env, agent)), match="signature")
    assert len(env.requests) == 2

    env.clock.advance(31)  # 61 s after the first forced re-fetch
    env.verifier.verify(env.sign(agent), endpoint="register")
    assert len(env.requests) == 3


def test_rotation_budget_is_per_agent(env: Env, new_agent: Callable[..., AgentIdentity]) -> None:
    a, b = new_agent("a"), new_agent("b")
    env.verifier.verify(env.sign(a), endpoint="register")
    env.verifier.verify(env.sign(b), endpoint="register")
    a.rotate(AgentKey.generate(kid="default"))
    b.rotate(AgentKey.generate(kid="default"))
    env.verifier.verify(env.sign(a), endpoint="register")
    env.verifier.verify(env.sign(b), endpoint="register")
    assert len(env.requests) == 4


def test_expired_token_does_not_trigger_refetch(env: Env, agent: AgentIdentity) -> None:
    env.verifier.verify(env.sign(agent), endpoint="register")
    token = env.sign(agent, lifetime=60)
    env.clock.advance(61)
    refused(env, token, match="expired")
    refused(env, env.sign(agent, "https://other.example"), match="aud")
    assert len(env.requests) == 1
    assert env.fetcher._forced == {}


# -- bad identity documents -------------------------------------------------------------------


class BadHost:
    """A real identity host serving broken documents at fixed paths."""

    def __init__(self, server: BackgroundServer, key: AgentKey) -> None:
        self.server = server
        self.key = key

    def url(self, name: str) -> str:
        return f"{self.server.url}/{name}/agent.json"


@pytest.fixture(scope="module")
def bad_host() -> Iterator[BadHost]:
    key = AgentKey.generate(kid="default")
    app = FastAPI(openapi_url=None, docs_url=None)
    holder: dict[str, str] = {}

    def doc(name: str, **over: Any) -> dict[str, Any]:
        d = identity_document(f"{holder['origin']}/{name}/agent.json", key)
        d.update(over)
        return d

    @app.get("/big/agent.json")
    def big() -> Response:
        return JSONResponse(doc("big", capabilities=["x" * 1000] * 70))

    @app.get("/notjson/agent.json")
    def notjson() -> Response:
        return PlainTextResponse("<html>hello</html>")

    @app.get("/array/agent.json")
    def array() -> Response:
        return JSONResponse([doc("array")])

    @app.get("/incomplete/agent.json")
    def incomplete() -> Response:
        d = doc("incomplete")
        del d["public_key"]
        return JSONResponse(d)

    @app.get("/wrongid/agent.json")
    def wrongid() -> Response:
        return JSONResponse(doc("wrongid", agent_id=f"{holder['origin']}/other/agent.json"))

    @app.get("/redirect/agent.json")
    def redirect() -> Response:
        return RedirectResponse(f"{holder['origin']}/jwks/agent.json", status_code=302)

    @app.get("/error/agent.json")
    def error() -> Response:
        return JSONResponse(doc("error"), status_code=500)

    @app.get("/badkey/agent.json")
    def badkey() -> Response:
        return JSONResponse(doc("badkey", public_key={"kty": "EC", "crv": "P-256", "x": 5}))

    @app.get("/privatekey/agent.json")
    def privatekey() -> Response:
        return JSONResponse(doc("privatekey", public_key=key.private_jwk()))

    @app.get("/rsakey/agent.json")
    def rsakey() -> Response:
        return JSONResponse(doc("rsakey", public_key={"kty": "RSA", "n": "AQAB", "e": "AQAB"}))

    @app.get("/jwks/agent.json")
    def jwks() -> Response:
        other = AgentKey.generate(kid="other").public_jwk()
        return JSONResponse(doc("jwks", public_key={"keys": [other, key.public_jwk()]}))

    @app.get("/pem/agent.json")
    def pem() -> Response:
        return JSONResponse(doc("pem", public_key=key.key.as_pem(private=False).decode()))

    with BackgroundServer(app) as server:
        holder["origin"] = server.url
        yield BadHost(server, key)


def _bad_token(env: Env, host: BadHost, name: str) -> str:
    return sign_attestation(host.key, host.url(name), BASE, now=env.clock.now)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("big", "too large"),
        ("notjson", "not valid"),
        ("array", "not valid"),
        ("incomplete", "not valid"),
        ("wrongid", "different agent_id"),
        ("missing", "HTTP 404"),
        ("redirect", "HTTP 302"),
        ("error", "HTTP 500"),
        ("badkey", "signature"),
        ("privatekey", "signature"),
        ("rsakey", "signature"),
    ],
)
def test_bad_identity_document_is_invalid_attestation(
    env: Env, bad_host: BadHost, name: str, match: str
) -> None:
    err = refused(env, _bad_token(env, bad_host, name), match=match)
    assert err.details.get("agent_id", bad_host.url(name)) == bad_host.url(name)
    assert env.replay_rows() == 0


@pytest.mark.parametrize("name", ["jwks", "pem"])
def test_jwk_set_and_pem_documents_verify(env: Env, bad_host: BadHost, name: str) -> None:
    v = env.verifier.verify(_bad_token(env, bad_host, name), endpoint="register")
    assert v.agent_id == bad_host.url(name)


def test_size_limit_is_configurable(env: Env, bad_host: BadHost) -> None:
    env.fetcher = IdentityFetcher(dev_mode=True, clock=env.clock, max_bytes=1024 * 1024)
    env.verifier = env.make_verifier()
    env.verifier.verify(_bad_token(env, bad_host, "big"), endpoint="register")
    env.fetcher.close()


def test_unreachable_identity_host_is_invalid_attestation(env: Env) -> None:
    from athkit.web.serving import free_port

    agent_id = f"http://127.0.0.1:{free_port()}/agent.json"
    token = sign_attestation(AgentKey.generate(), agent_id, BASE, now=env.clock.now)
    err = refused(env, token, match="could not be fetched")
    assert err.details["reason"] == "ConnectError"


@pytest.mark.parametrize(
    "agent_id",
    [
        "http://10.0.0.1/agent.json",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "http://127.0.0.1:99999/agent.json",
    ],
)
def test_agent_id_behind_ssrf_guard(env: Env, agent_id: str) -> None:
    token = sign_attestation(AgentKey.generate(), agent_id, BASE, now=env.clock.now)
    refused(env, token)
    assert env.requests == []


def test_outside_dev_mode_http_agent_ids_are_refused(env: Env, agent: AgentIdentity) -> None:
    env.fetcher = IdentityFetcher(dev_mode=False, clock=env.clock)
    env.verifier = env.make_verifier()
    refused(env, env.sign(agent), match="https")
    env.fetcher.close()

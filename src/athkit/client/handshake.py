"""The agent's side of the 9-step trusted handshake (PROTOCOL.md §10, docs/handshake.md).

:class:`HandshakeCore` is sans-I/O: :meth:`HandshakeCore.flow` is a generator that yields
:class:`HandshakeRequest` (or :class:`ResolveDID` when a ``did:web`` must be fetched), receives
:class:`~athkit.client._core.RawResponse` (or the resolved JWK) and returns a
:class:`HandshakeResult`. :func:`run_handshake` / :func:`arun_handshake` drive it over httpx and
wrap the result in a :class:`HandshakeSession` / :class:`AsyncHandshakeSession` whose calls are
encrypted transparently. ``ATHClient.handshake`` and ``AsyncATHClient.handshake`` call these.

Order of trust: the server's step-2 signature (and that ``server_pubkey`` is the key
``server_did`` names) is verified **before** the agent signs anything for it (step 3).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from athkit.client._core import RawResponse
from athkit.client.errors import (
    ATHError,
    ConfirmationTimeoutError,
    EncryptionErrorError,
    InvalidSignatureError,
    MessageReplayedError,
    ProtocolViolation,
    ServiceUnreachableError,
    SessionKeyExpiredError,
    error_from_response,
    parse_error_body,
)
from athkit.crypto.channel import (
    CIPHER_SUITE,
    CONTENT_TYPE,
    KEY_EXCHANGE_ALG,
    ChannelError,
    EphemeralKey,
    SessionChannel,
    client_channel,
    derive_session_keys,
)
from athkit.crypto.credentials import (
    MAX_SKEW,
    SignedCredential,
    client_kex_object,
    client_proof_object,
    new_nonce,
    server_kex_object,
    server_proof_object,
)
from athkit.crypto.did import DIDError, DIDResolver, did_key_from_jwk, same_public_key
from athkit.crypto.keys import AgentKey
from athkit.crypto.signing import sign_object, verify_object

HANDSHAKE_PATH = "/ath/handshake"
VERSIONS = ["0.1"]
CAPABILITIES = ["ES256", "EdDSA"]
MAX_LONG_POLL = 30
DEFAULT_WAIT = 300.0
DEFAULT_TTL = 3600

Observer = Callable[[int, str, Mapping[str, Any]], None]
"""``observer(step, title, payload)``: called as each step is sent/received (demo, logging)."""


@dataclass(frozen=True)
class HandshakeRequest:
    """One HTTP request of the flow; ``delay`` seconds to wait before sending it."""

    method: str
    url: str
    json: Any = None
    timeout: float | None = None
    delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=lambda: {"Accept": "application/json"})


@dataclass(frozen=True)
class ResolveDID:
    """Ask the driver to resolve a ``did:web`` (network I/O) and send back its public JWK."""

    did: str


@dataclass(frozen=True)
class PendingConfirmation:
    """Step 5 answered 202: the user is being asked out of band (steps 6–7)."""

    handshake_id: str
    request_id: str
    expires_at: int
    client_did: str
    server_did: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class HandshakeResult:
    """Everything the nine steps established (keys included: keep it private)."""

    handshake_id: str
    client_did: str
    server_did: str
    server_pubkey: dict[str, Any]
    version: str
    identity_metadata: dict[str, Any]
    scope_result: dict[str, Any]
    complete: dict[str, Any]
    session_id: str
    session_expires_at: int
    access_token: str
    expires_in: int
    keys: tuple[bytes, bytes]
    timings: dict[str, float]

    @property
    def scopes_granted(self) -> list[str]:
        return [str(s) for s in self.scope_result.get("scopes_granted") or []]

    @property
    def scopes_denied(self) -> list[dict[str, Any]]:
        return list(self.scope_result.get("scopes_denied") or [])

    @property
    def restrictions(self) -> dict[str, Any]:
        r = self.scope_result.get("restrictions")
        return dict(r) if isinstance(r, dict) else {}

    @property
    def ttl_granted(self) -> int:
        v = self.scope_result.get("ttl_granted")
        return v if isinstance(v, int) else 0


HandshakeFlow = Generator[HandshakeRequest | ResolveDID, Any, HandshakeResult]


def _json_of(response: RawResponse) -> dict[str, Any]:
    try:
        data = json.loads(response.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolViolation(
            "handshake response is not JSON", {"http_status": response.status}
        ) from exc
    if not isinstance(data, dict):
        raise ProtocolViolation("handshake response is not a JSON object")
    return data


def _expect(response: RawResponse, *ok: int) -> dict[str, Any]:
    if response.status not in ok:
        raise error_from_response(response.status, response.body)
    return _json_of(response)


def _str(data: Mapping[str, Any], name: str) -> str:
    v = data.get(name)
    if not isinstance(v, str) or not v:
        raise ProtocolViolation(f"handshake response lacks a string {name!r}")
    return v


def _int(data: Mapping[str, Any], name: str) -> int:
    v = data.get(name)
    if not isinstance(v, int) or isinstance(v, bool):
        raise ProtocolViolation(f"handshake response lacks an integer {name!r}")
    return v


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "127.0.0.1", "::1")


class HandshakeCore:
    """Builds and checks every message of the agent's side (no I/O)."""

    def __init__(
        self,
        base_url: str,
        key: AgentKey,
        *,
        client_did: str | None = None,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.client_did = client_did or did_key_from_jwk(key.public_jwk())
        self.clock = clock
        self.timer = timer

    def client_pubkey(self) -> dict[str, Any]:
        jwk = self.key.public_jwk()
        return {k: jwk[k] for k in ("kty", "crv", "x", "y", "alg", "kid") if k in jwk}

    def url(self, handshake_id: str | None = None, suffix: str = "") -> str:
        if handshake_id is None:
            return self.base_url + HANDSHAKE_PATH
        return f"{self.base_url}{HANDSHAKE_PATH}/{quote(handshake_id, safe='')}{suffix}"

    def _check_fresh(self, ts: int, what: str) -> None:
        if abs(self.clock() - ts) > MAX_SKEW:
            raise ProtocolViolation(f"{what} timestamp is more than 300 s off our clock")

    def flow(
        self,
        scopes: list[str],
        credential: SignedCredential,
        *,
        ttl: int = DEFAULT_TTL,
        context: Mapping[str, Any] | None = None,
        wait: float = DEFAULT_WAIT,
        poll_interval: float = 1.0,
        on_pending: Callable[[PendingConfirmation], None] | None = None,
        observer: Observer | None = None,
    ) -> HandshakeFlow:
        """Steps 1–9; see the module docstring for the driving protocol."""
        note: Observer = observer or (lambda step, title, payload: None)
        timings: dict[str, float] = {}
        t0 = self.timer()

        # -- step 1: handshake_request ------------------------------------------------------
        nonce_a = new_nonce()
        request1 = {
            "client_did": self.client_did,
            "client_pubkey": self.client_pubkey(),
            "versions": list(VERSIONS),
            "capabilities": list(CAPABILITIES),
            "nonce": nonce_a,
            "timestamp": int(self.clock()),
        }
        note(1, "handshake_request", request1)
        resp = yield HandshakeRequest("POST", self.url(), request1)
        data = _expect(resp, 201, 200)
        handshake_id = _str(data, "handshake_id")
        hr = data.get("handshake_response")
        if not isinstance(hr, dict):
            raise ProtocolViolation("step 2 lacks handshake_response")
        note(2, "handshake_response", {"handshake_id": handshake_id, **hr})

        # -- step 2: verify the server before proving ourselves -----------------------------
        server_did = _str(hr, "server_did")
        server_pubkey = hr.get("server_pubkey")
        nonce_b = _str(hr, "nonce")
        ts2 = _int(hr, "timestamp")
        version = _str(hr, "version")
        if version not in VERSIONS:
            raise ProtocolViolation(f"server chose unsupported version {version!r}")
        if not isinstance(server_pubkey, dict):
            raise ProtocolViolation("step 2 lacks server_pubkey")
        if server_did.startswith("did:web:"):
            named = yield ResolveDID(server_did)
        else:
            try:
                named = DIDResolver(lambda url: None).resolve(server_did)
            except DIDError as exc:
                raise InvalidSignatureError(
                    f"server_did cannot be resolved: {exc}", {"server_did": server_did}
                ) from exc
        if not same_public_key(named, server_pubkey):
            raise InvalidSignatureError(
                "server_pubkey is not the key server_did names", {"server_did": server_did}
            )
        proof2 = server_proof_object(
            handshake_id, self.client_did, server_did, nonce_a, nonce_b, ts2
        )
        if not verify_object(named, proof2, hr.get("signature")):
            raise InvalidSignatureError(
                "the server's step-2 signature is invalid", {"server_did": server_did}
            )
        self._check_fresh(ts2, "step 2")

        # -- step 3: identity_proof ---------------------------------------------------------
        ts3 = int(self.clock())
        proof3 = client_proof_object(
            handshake_id, self.client_did, server_did, nonce_a, nonce_b, ts3
        )
        request3 = {"signature": sign_object(self.key, proof3), "credentials": [], "timestamp": ts3}
        note(3, "identity_proof", request3)
        resp = yield HandshakeRequest("POST", self.url(handshake_id, "/identity"), request3)
        result4 = _expect(resp, 200)
        if result4.get("success") is not True:
            raise ProtocolViolation("identity_result.success is not true")
        metadata = result4.get("metadata")
        metadata = dict(metadata) if isinstance(metadata, dict) else {}
        note(4, "identity_result", result4)

        # -- step 5: scope_request ----------------------------------------------------------
        request5 = {
            "scopes": list(scopes),
            "ttl": int(ttl),
            "user_authorization": credential.to_dict(),
            "context": dict(context) if context is not None else {},
        }
        note(5, "scope_request", request5)
        resp = yield HandshakeRequest("POST", self.url(handshake_id, "/scope"), request5)
        data5 = _expect(resp, 202, 200)
        timings["steps_1_5"] = self.timer() - t0

        # -- steps 6-8: the user is asked out of band; we wait for scope_result ----------------
        scope_result: dict[str, Any]
        if resp.status == 200:
            scope_result = data5
        else:
            pending = PendingConfirmation(
                handshake_id=handshake_id,
                request_id=_str(data5, "request_id"),
                expires_at=_int(data5, "expires_at"),
                client_did=self.client_did,
                server_did=server_did,
                scopes=tuple(scopes),
            )
            note(6, "pending_user_confirmation", data5)
            if on_pending is not None:
                on_pending(pending)
            deadline = self.clock() + wait
            delay = 0.0
            while True:
                remaining = deadline - self.clock()
                if remaining <= 0:
                    raise ConfirmationTimeoutError(
                        "the user did not answer within the agent's wait",
                        {"handshake_id": handshake_id, "request_id": pending.request_id},
                        status=408,
                    )
                long_poll = max(0, min(MAX_LONG_POLL, int(remaining)))
                t_poll = self.timer()
                resp = yield HandshakeRequest(
                    "GET",
                    self.url(handshake_id, f"/result?wait={long_poll}"),
                    timeout=long_poll + 15.0,
                    delay=delay,
                )
                if resp.status == 202:
                    # a server that answers quickly despite ?wait= is polled gently
                    elapsed = self.timer() - t_poll
                    delay = poll_interval if elapsed < max(1.0, long_poll / 2) else 0.0
                    continue
                scope_result = _expect(resp, 200)
                timings["step_8_last_poll"] = self.timer() - t_poll
                break
        if not isinstance(scope_result.get("scopes_granted"), list):
            raise ProtocolViolation("scope_result lacks scopes_granted")
        note(8, "scope_result", scope_result)

        # -- step 9: key agreement ----------------------------------------------------------
        t9 = self.timer()
        eph = EphemeralKey()
        kex = client_kex_object(handshake_id, self.client_did, server_did, eph.public_jwk())
        request9 = {
            "key_exchange_alg": KEY_EXCHANGE_ALG,
            "key_exchange_params": {
                "epk": eph.public_jwk(),
                "signature": sign_object(self.key, kex),
            },
            "cipher_suite": CIPHER_SUITE,
        }
        note(9, "complete (agent epk)", request9)
        resp = yield HandshakeRequest("POST", self.url(handshake_id, "/complete"), request9)
        done = _expect(resp, 200)
        timings["step_9"] = self.timer() - t9
        if done.get("key_exchange_alg") != KEY_EXCHANGE_ALG or done.get("cipher_suite") != (
            CIPHER_SUITE
        ):
            raise ProtocolViolation("server chose another key exchange or cipher suite")
        params = done.get("key_exchange_params")
        epk = params.get("epk") if isinstance(params, dict) else None
        # The server signs both ephemeral keys: without that, whoever sits in between could
        # substitute its own key and read the channel.
        signed = server_kex_object(
            handshake_id,
            self.client_did,
            server_did,
            eph.public_jwk(),
            epk if isinstance(epk, dict) else {},
            str(done.get("session_id", "")),
        )
        if not isinstance(params, dict) or not verify_object(
            named, signed, params.get("signature")
        ):
            raise InvalidSignatureError(
                "the server's step-9 key exchange signature does not verify",
                {"step": 9},
            )
        try:
            shared = eph.agree(epk)
        except ChannelError as exc:
            raise ProtocolViolation(f"server epk is unusable: {exc.message}") from exc
        keys = derive_session_keys(
            shared, nonce_a, nonce_b, self.client_did, server_did, handshake_id
        )
        token = _str(done, "access_token")
        if str(done.get("token_type", "")).lower() != "bearer":
            raise ProtocolViolation("token_type must be Bearer")
        result = HandshakeResult(
            handshake_id=handshake_id,
            client_did=self.client_did,
            server_did=server_did,
            server_pubkey=dict(server_pubkey),
            version=version,
            identity_metadata=metadata,
            scope_result=scope_result,
            complete={k: v for k, v in done.items() if k != "access_token"},
            session_id=_str(done, "session_id"),
            session_expires_at=_int(done, "session_expires_at"),
            access_token=token,
            expires_in=_int(done, "expires_in"),
            keys=keys,
            timings=timings,
        )
        note(9, "handshake_complete", {**result.complete, "access_token": token[:24] + "…"})
        return result


# -- the encrypted session ----------------------------------------------------------------------


class SessionCore:
    """Build encrypted requests and open encrypted responses for one session (no I/O)."""

    def __init__(
        self,
        result: HandshakeResult,
        api_base: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.result = result
        self.api_base = api_base.rstrip("/")
        self.channel: SessionChannel = client_channel(
            result.session_id, result.keys, result.session_expires_at, clock
        )
        self.token_expires_at = clock() + result.expires_in
        self.clock = clock

    @property
    def access_token(self) -> str:
        return self.result.access_token

    def url(self, path: str) -> str:
        if urlsplit(path).scheme or path.startswith("//"):
            raise ValueError(f"path must be relative to the service, got {path!r}")
        return self.api_base + "/" + path.lstrip("/")

    def build(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[str, dict[str, str], bytes, int]:
        """``(url, headers, body, seq)`` for an encrypted call; the AAD path is the URL path."""
        url = self.url(path)
        if content is None:
            content = b"" if json_body is None else json.dumps(json_body).encode("utf-8")
        try:
            envelope = self.channel.seal(method.upper(), urlsplit(url).path, content)
        except ChannelError as exc:
            raise SessionKeyExpiredError(exc.message, status=401) from exc
        merged = dict(headers or {})
        merged.update(
            {
                "Authorization": f"Bearer {self.result.access_token}",
                "X-ATH-Agent-ID": self.result.client_did,
                "X-ATH-Session": self.result.session_id,
                "Content-Type": CONTENT_TYPE,
                "Accept": "application/json",
            }
        )
        if json_body is not None or content:
            merged.setdefault("X-ATH-Content-Type", "application/json")
        body = json.dumps(envelope, separators=(",", ":")).encode("ascii")
        return url, merged, body, int(envelope["seq"])

    def open(
        self, status: int, headers: Mapping[str, str], body: bytes, seq: int
    ) -> tuple[bytes, str | None]:
        """Decrypt a response; ``(plaintext, original content type)``. Raises typed errors."""
        ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype != CONTENT_TYPE:
            # a plain answer is only acceptable as an error refused before decryption
            if 200 <= status < 300:
                raise ProtocolViolation(
                    "service answered an encrypted call in plain text", {"http_status": status}
                )
            raise error_from_response(status, body)
        try:
            envelope = json.loads(body)
            plaintext = self.channel.open_response(envelope, seq)
        except ValueError as exc:
            if isinstance(exc, ChannelError):
                cls = (
                    MessageReplayedError
                    if exc.code == "MESSAGE_REPLAYED"
                    else (EncryptionErrorError)
                )
                raise cls(f"response refused: {exc.message}") from exc
            raise EncryptionErrorError("response envelope is not JSON") from exc
        inner = headers.get("x-ath-content-type")
        if not 200 <= status < 300 and parse_error_body(plaintext) is not None:
            raise error_from_response(status, plaintext)
        return plaintext, inner


def _response(
    status: int, headers: Mapping[str, str], plaintext: bytes, inner: str | None, req: httpx.Request
) -> httpx.Response:
    out = {
        k: v
        for k, v in headers.items()
        if k.lower()
        not in ("content-type", "content-length", "content-encoding", "x-ath-content-type")
    }
    out["content-type"] = inner or "application/json"
    return httpx.Response(status, headers=out, content=plaintext, request=req)


class HandshakeSession:
    """An established session: :meth:`request` encrypts the body and decrypts the answer.

    Calls are serialised (a lock) so that ``seq`` reaches the service in order.
    """

    def __init__(self, http: httpx.Client, core: SessionCore) -> None:
        self._http = http
        self.core = core
        self._lock = threading.Lock()

    @property
    def result(self) -> HandshakeResult:
        return self.core.result

    @property
    def session_id(self) -> str:
        return self.core.result.session_id

    @property
    def access_token(self) -> str:
        return self.core.access_token

    @property
    def scopes_granted(self) -> list[str]:
        return self.core.result.scopes_granted

    @property
    def restrictions(self) -> dict[str, Any]:
        return self.core.result.restrictions

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Call ``{api_base}{path}`` over the encrypted channel; ATH errors raise typed."""
        with self._lock:
            url, hdrs, body, seq = self.core.build(
                method, path, json_body=json, content=content, headers=headers
            )
            try:
                resp = self._http.request(
                    method.upper(), url, headers=hdrs, content=body, params=params
                )
            except httpx.TransportError as exc:
                raise ServiceUnreachableError(
                    f"{method} {url} failed: {type(exc).__name__}"
                ) from exc
            plaintext, inner = self.core.open(resp.status_code, resp.headers, resp.content, seq)
        return _response(resp.status_code, resp.headers, plaintext, inner, resp.request)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)


class AsyncHandshakeSession:
    """The ``async`` twin of :class:`HandshakeSession`."""

    def __init__(self, http: httpx.AsyncClient, core: SessionCore) -> None:
        import anyio

        self._http = http
        self.core = core
        self._lock = anyio.Lock()

    @property
    def result(self) -> HandshakeResult:
        return self.core.result

    @property
    def session_id(self) -> str:
        return self.core.result.session_id

    @property
    def access_token(self) -> str:
        return self.core.access_token

    @property
    def scopes_granted(self) -> list[str]:
        return self.core.result.scopes_granted

    @property
    def restrictions(self) -> dict[str, Any]:
        return self.core.result.restrictions

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        async with self._lock:
            url, hdrs, body, seq = self.core.build(
                method, path, json_body=json, content=content, headers=headers
            )
            try:
                resp = await self._http.request(
                    method.upper(), url, headers=hdrs, content=body, params=params
                )
            except httpx.TransportError as exc:
                raise ServiceUnreachableError(
                    f"{method} {url} failed: {type(exc).__name__}"
                ) from exc
            plaintext, inner = self.core.open(resp.status_code, resp.headers, resp.content, seq)
        return _response(resp.status_code, resp.headers, plaintext, inner, resp.request)

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, **kw)


# -- drivers ------------------------------------------------------------------------------------


def coerce_credential(credential: SignedCredential | Mapping[str, Any]) -> SignedCredential:
    """Accept a :class:`SignedCredential` or its ``{credential, signature}`` dict."""
    if isinstance(credential, SignedCredential):
        return credential
    return SignedCredential.from_dict(dict(credential))


def default_resolver(base_url: str) -> DIDResolver:
    """did:key locally; did:web over HTTPS (http allowed only for a loopback service)."""
    return DIDResolver(dev_mode=_is_loopback(base_url))


def _raw(resp: httpx.Response) -> RawResponse:
    return RawResponse(resp.status_code, resp.headers, resp.content)


def run_handshake(
    http: httpx.Client, core: HandshakeCore, flow: HandshakeFlow, resolver: DIDResolver
) -> HandshakeResult:
    """Drive ``flow`` over a blocking httpx client."""
    step = next(flow)
    while True:
        answer: Any
        if isinstance(step, ResolveDID):
            try:
                answer = resolver.resolve(step.did)
            except DIDError as exc:
                raise InvalidSignatureError(
                    f"server_did cannot be resolved: {exc}", {"server_did": step.did}
                ) from exc
        else:
            if step.delay > 0:
                time.sleep(step.delay)
            try:
                resp = http.request(
                    step.method,
                    step.url,
                    json=step.json,
                    headers=dict(step.headers),
                    timeout=step.timeout if step.timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                raise ServiceUnreachableError(
                    f"{step.method} {step.url} failed: {type(exc).__name__}"
                ) from exc
            answer = _raw(resp)
        try:
            step = flow.send(answer)
        except StopIteration as stop:
            result: HandshakeResult = stop.value
            return result


async def arun_handshake(
    http: httpx.AsyncClient, core: HandshakeCore, flow: HandshakeFlow, resolver: DIDResolver
) -> HandshakeResult:
    """Drive ``flow`` over an async httpx client (did:web resolution runs in a thread)."""
    import anyio

    step = next(flow)
    while True:
        answer: Any
        if isinstance(step, ResolveDID):
            try:
                answer = await anyio.to_thread.run_sync(resolver.resolve, step.did)
            except DIDError as exc:
                raise InvalidSignatureError(
                    f"server_did cannot be resolved: {exc}", {"server_did": step.did}
                ) from exc
        else:
            if step.delay > 0:
                await anyio.sleep(step.delay)
            try:
                resp = await http.request(
                    step.method,
                    step.url,
                    json=step.json,
                    headers=dict(step.headers),
                    timeout=step.timeout if step.timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                raise ServiceUnreachableError(
                    f"{step.method} {step.url} failed: {type(exc).__name__}"
                ) from exc
            answer = _raw(resp)
        try:
            step = flow.send(answer)
        except StopIteration as stop:
            result: HandshakeResult = stop.value
            return result


__all__ = [
    "ATHError",
    "AsyncHandshakeSession",
    "HandshakeCore",
    "HandshakeRequest",
    "HandshakeResult",
    "HandshakeSession",
    "PendingConfirmation",
    "ResolveDID",
    "SessionCore",
    "arun_handshake",
    "coerce_credential",
    "default_resolver",
    "run_handshake",
]

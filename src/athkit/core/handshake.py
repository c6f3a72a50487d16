"""The server side of the 9-step trusted handshake (PROTOCOL.md §10, docs/handshake.md).

:class:`HandshakeService` sits next to an :class:`~athkit.core.service.ATHService` (native or
gateway) and shares its store, settings and clock. Every step is one compare-and-set transition
of the handshake row written in one transaction with what the step creates (confirmation request,
session, audit record); every method returns a plain result or raises :class:`ATHError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from athkit.core.audit import audit_row
from athkit.core.clock import as_utc, to_datetime
from athkit.core.handshake_keys import ServerIdentity, load_sealer
from athkit.core.handshake_restrictions import Restrictions, rate_limited
from athkit.core.netguard import check_url
from athkit.core.tokens import TokenInfo, require_scopes_of
from athkit.crypto.canonical import b64url_decode, b64url_encode
from athkit.crypto.channel import (
    CIPHER_SUITE,
    KEY_EXCHANGE_ALG,
    ChannelError,
    EphemeralKey,
    SessionChannel,
    derive_session_keys,
    server_channel,
)
from athkit.crypto.credentials import (
    CredentialError,
    SignedCredential,
    UserProofError,
    client_kex_object,
    client_proof_object,
    confirmation_object,
    server_kex_object,
    server_proof_object,
    user_key_link_object,
    verify_credential,
    verify_user_request_proof,
)
from athkit.crypto.did import DIDError, DIDResolver, did_key_from_jwk, same_public_key
from athkit.crypto.sealing import SealError
from athkit.crypto.signing import sign, sign_object, verify_object
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.fields import BoundedInt, JsonObject, token
from athkit.protocol.scopes import is_valid_scope
from athkit.store.handshake import HandshakeStore
from athkit.store.models import (
    AuditRow,
    ConfirmationRow,
    HandshakeRow,
    HandshakeSessionRow,
    UserKeyRow,
)
from athkit.store.repositories import DuplicateError

if TYPE_CHECKING:  # pragma: no cover - avoids an import cycle at runtime
    from athkit.core.service import ATHService

log = logging.getLogger("athkit.handshake")

VERSIONS = ("0.1",)
CAPABILITIES = ("ES256", "EdDSA")
MAX_SKEW = 300
MIN_NONCE_BYTES = 16
TOKEN_MAX_TTL = 3600
SESSION_MAX_TTL = 24 * 3600
MAX_WAIT = 30


# -- policy -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandshakePolicy:
    """How a service runs the handshake. Every field has a safe default.

    - ``scopes``: the scopes the handshake may grant (``None``: every scope the service offers).
    - ``extra_scopes``: name → description of scopes offered through the handshake only (on
      top of the service's own, e.g. seed 003's ``goods:read`` and ``order:create``).
    - ``require_user_confirmation``: ask the user out of band (steps 6–7) before step 8.
    - ``token_max_ttl`` (≤ 3600), ``confirmation_ttl``, ``handshake_ttl`` (≤ 600) and
      ``session_key_ttl`` (≤ 24 h), in seconds.
    - ``ip_whitelist``, ``rate_limit``, ``access_time`` + ``timezone``: restrictions reported in
      ``scope_result`` and enforced at every use of the session's token.
    - ``webhook_url``: where step 6 is also POSTed, signed by the server key.
    - ``server_key`` (private JWK) or ``server_key_path``; default: generated under
      ``<data_dir>/handshake/server_key.jwk``. ``use_did_web``: the server DID is the did:web
      of ``public_url`` (its document is served at ``/.well-known/did.json``).
    - ``sealing_keys``: ``"kid:base64,…"`` for sealing session keys at rest (default: the
      ``ATHKIT_HANDSHAKE_SEALING_KEYS`` variable, else a key generated under ``data_dir``).
    - ``known_agents``: ``client_did`` → ``{"name", "developer"}`` shown to the user instead of
      what the agent states about itself in ``scope_request.context``.
    - ``require_encryption``: refuse handshake tokens on plain (unencrypted) API calls.
    """

    scopes: Sequence[str] | None = None
    extra_scopes: Mapping[str, str] = field(default_factory=dict)
    require_user_confirmation: bool = True
    token_max_ttl: int = TOKEN_MAX_TTL
    confirmation_ttl: int = 300
    handshake_ttl: int = 600
    session_key_ttl: int = SESSION_MAX_TTL
    ip_whitelist: Sequence[str] | None = None
    rate_limit: str | None = None
    access_time: str | None = None
    timezone: str = "UTC"
    webhook_url: str | None = None
    webhook_timeout: float = 5.0
    server_key: Mapping[str, Any] | None = None
    server_key_path: Path | None = None
    use_did_web: bool = False
    sealing_keys: str | None = None
    known_agents: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    require_encryption: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.token_max_ttl <= TOKEN_MAX_TTL:
            raise ValueError("token_max_ttl must be between 1 and 3600 seconds")
        if not 0 < self.handshake_ttl <= 600:
            raise ValueError("handshake_ttl must be between 1 and 600 seconds")
        if not 0 < self.session_key_ttl <= SESSION_MAX_TTL:
            raise ValueError("session_key_ttl must be between 1 s and 24 h")
        if self.confirmation_ttl <= 0:
            raise ValueError("confirmation_ttl must be positive")
        self.restrictions()  # validates the restriction syntax now

    def restrictions(self) -> Restrictions:
        return Restrictions(
            ip_whitelist=tuple(self.ip_whitelist) if self.ip_whitelist is not None else None,
            rate_limit=self.rate_limit,
            access_time=self.access_time,
            timezone=self.timezone,
        )


# -- message bodies (field names exactly as in §10) ---------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class HandshakeRequestBody(_Body):
    client_did: Annotated[str, token(2048, 8)]
    client_pubkey: JsonObject
    versions: list[Annotated[str, token(32)]] = Field(min_length=1, max_length=16)
    capabilities: list[Annotated[str, token(64)]] = Field(min_length=1, max_length=16)
    nonce: Annotated[str, token(128, 22)]
    timestamp: BoundedInt


class IdentityProofBody(_Body):
    signature: Annotated[str, token(512)]
    credentials: list[JsonObject] | None = Field(None, max_length=8)
    timestamp: BoundedInt


class ScopeRequestBody(_Body):
    scopes: list[Annotated[str, token(128)]] = Field(min_length=1, max_length=64)
    ttl: BoundedInt
    user_authorization: JsonObject | None = None
    context: JsonObject | None = None


class ConfirmationResponseBody(_Body):
    request_id: Annotated[str, token(64)]
    approved: bool
    approved_scopes: list[Annotated[str, token(128)]] = Field(default_factory=list, max_length=64)
    expires_at: BoundedInt
    signature: Annotated[str, token(512)]
    handshake_id: Annotated[str, token(128)] | None = None
    user_did: Annotated[str, token(2048)] | None = None
    client_did: Annotated[str, token(2048)] | None = None


class CompleteBody(_Body):
    key_exchange_alg: Annotated[str, token(64)]
    key_exchange_params: JsonObject
    cipher_suite: Annotated[str, token(64)]


class KeyLinkBody(_Body):
    user_did: Annotated[str, token(2048, 8)]
    public_jwk: JsonObject
    signature: Annotated[str, token(512)]
    nonce: Annotated[str, token(128, 22)]
    timestamp: BoundedInt


def parse_body(model: type[_Body], data: Any) -> Any:
    if not isinstance(data, dict):
        raise ATHError(ErrorCode.INVALID_REQUEST, "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ][:20]
        raise ATHError(
            ErrorCode.VALIDATION_ERROR, "request body is not valid", {"errors": errors}
        ) from exc


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    """An HTTP answer of a step: status and JSON body."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class HandshakeTokenInfo(TokenInfo):
    """A :class:`TokenInfo` for a handshake access token, with its session."""

    session_id: str = ""
    user_did: str = ""
    restrictions: Mapping[str, Any] = field(default_factory=dict)


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(18)


def _nonce() -> str:
    return b64url_encode(secrets.token_bytes(32))


def _nonce_key(kind: str, value: str) -> str:
    return hashlib.sha256(f"ath-hs\0{kind}\0{value}".encode()).hexdigest()


def _epoch(dt: Any) -> int:
    return int(as_utc(dt).timestamp())


class _WebhookSender:
    """POSTs step 6 to the configured URL, signed with the server key (one thread per send)."""

    def __init__(self, url: str, identity: ServerIdentity, timeout: float, clock: Any) -> None:
        self.url = url
        self.identity = identity
        self.timeout = timeout
        self.clock = clock
        self.threads: list[threading.Thread] = []

    def signed_request(self, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        ts = str(int(self.clock()))
        signature = sign(self.identity.key, ts.encode() + b"." + body)
        headers = {
            "Content-Type": "application/json",
            "X-ATH-Webhook-Timestamp": ts,
            "X-ATH-Signature": signature,
            "X-ATH-Server-DID": self.identity.did,
        }
        return body, headers

    def send(self, payload: dict[str, Any]) -> None:
        body, headers = self.signed_request(payload)

        def run() -> None:
            try:
                with httpx.Client(timeout=self.timeout, follow_redirects=False) as c:
                    resp = c.post(self.url, content=body, headers=headers)
                if resp.status_code >= 300:
                    log.warning("confirmation webhook answered HTTP %s", resp.status_code)
            except httpx.HTTPError as exc:
                log.warning("confirmation webhook failed: %s", type(exc).__name__)

        t = threading.Thread(target=run, name="ath-webhook", daemon=True)
        self.threads = [x for x in self.threads if x.is_alive()] + [t]
        t.start()


class HandshakeService:
    """Steps 1–9 for one service, plus user keys, confirmations and token validation."""

    def __init__(
        self,
        service: ATHService,
        policy: HandshakePolicy | None = None,
        *,
        resolver: DIDResolver | None = None,
        scopes_supported: Sequence[str] | None = None,
    ) -> None:
        self.service = service
        self.policy = policy or HandshakePolicy()
        s = service.settings
        self.settings = s
        self.store = HandshakeStore(service.store)
        self.identity = ServerIdentity.load(
            data_dir=s.data_dir,
            public_url=s.public_url,
            key=dict(self.policy.server_key) if self.policy.server_key else None,
            key_path=self.policy.server_key_path,
            use_did_web=self.policy.use_did_web,
        )
        self.sealer = load_sealer(self.policy.sealing_keys, s.data_dir, dev_mode=s.dev_mode)
        self.resolver = resolver or DIDResolver(
            self._fetch_did_document, dev_mode=s.dev_mode, clock=lambda: self.clock()
        )
        self._http: httpx.Client | None = None  # created on the first did:web fetch
        self._http_lock = threading.Lock()
        supported = list(scopes_supported) if scopes_supported is not None else None
        if supported is None:
            supported = [sc for scs in service.supported.values() for sc in scs]
        supported += list(self.policy.extra_scopes)
        self.scopes_supported = list(dict.fromkeys(supported))
        allowed = self.policy.scopes
        self.scopes_allowed = set(self.scopes_supported if allowed is None else allowed)
        self.restrictions = self.policy.restrictions()
        self.webhook = (
            _WebhookSender(
                self.policy.webhook_url, self.identity, self.policy.webhook_timeout, self.clock
            )
            if self.policy.webhook_url
            else None
        )

    def clock(self) -> float:
        return self.service.clock()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def _client(self) -> httpx.Client:
        with self._http_lock:
            if self._http is None:
                t = self.settings.identity_timeout
                self._http = httpx.Client(
                    timeout=httpx.Timeout(t, connect=min(t, 3.0)),
                    transport=self.service.outbound.transport(deadline=t),
                    follow_redirects=False,
                    headers={"Accept": "application/did+json, application/json"},
                )
            return self._http

    def scope_description(self, scope: str) -> str:
        return self.policy.extra_scopes.get(scope) or self.settings.scope_description(scope)

    # -- helpers ------------------------------------------------------------------------------

    def _fetch_did_document(self, url: str) -> Any:
        """did:web documents through the same SSRF guard and limits as identity documents."""
        check_url(url, dev_mode=self.settings.dev_mode, code=ErrorCode.IDENTITY_FETCH_FAILED)
        limit = self.settings.identity_max_bytes
        with self._client().stream("GET", url) as resp:
            if resp.status_code != 200:
                raise DIDError(f"DID document answered HTTP {resp.status_code}")
            body = bytearray()
            for chunk in resp.iter_bytes():
                body.extend(chunk)
                if len(body) > limit:
                    raise DIDError("DID document is too large")
        return json.loads(bytes(body))

    def _resolve(self, did: str, code: ErrorCode, what: str) -> dict[str, Any]:
        try:
            return self.resolver.resolve(did)
        except ATHError:
            raise
        except (DIDError, ValueError) as exc:
            raise ATHError(code, f"{what} cannot be resolved: {exc}", {"did": did[:256]}) from exc

    def _check_timestamp(self, ts: int, now: float) -> None:
        if abs(now - ts) > MAX_SKEW:
            raise ATHError(
                ErrorCode.HANDSHAKE_STALE,
                "timestamp is more than 300 seconds away from the server's clock",
                {"server_time": int(now)},
            )

    def _load(self, handshake_id: str) -> HandshakeRow:
        row = self.store.get_handshake(handshake_id) if len(handshake_id) <= 64 else None
        if row is None:
            raise ATHError(ErrorCode.HANDSHAKE_NOT_FOUND, "no such handshake")
        return row

    def _check_live(self, row: HandshakeRow, now: float) -> None:
        if now >= _epoch(row.expires_at):
            raise ATHError(ErrorCode.HANDSHAKE_EXPIRED, "this handshake has expired; start again")

    @staticmethod
    def _out_of_order(row: HandshakeRow, expected: str) -> ATHError:
        return ATHError(
            ErrorCode.HANDSHAKE_OUT_OF_ORDER,
            f"this step needs the handshake in state {expected!r}",
            {"state": row.status},
        )

    def _audit(
        self, now: float, event: str, outcome: str, row: HandshakeRow | None, **kw: Any
    ) -> AuditRow:
        details = dict(kw.pop("details", None) or {})
        if row is not None:
            details.setdefault("handshake_id", row.handshake_id)
        return audit_row(
            now,
            event,
            outcome,
            agent_id=row.client_did if row is not None else kw.pop("agent_id", None),
            provider_id=self.settings.provider_id or None,
            details=details,
            **kw,
        )

    def _refuse(self, now: float, event: str, row: HandshakeRow | None, err: ATHError) -> ATHError:
        self.service.store.add_audit(self._audit(now, event, "refused", row, reason=err.code_str))
        return err

    # -- discovery ----------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """``GET /.well-known/ath-handshake.json`` (*athkit*): what an agent or CLI needs."""
        base = self.settings.public_url
        return {
            "server_did": self.identity.did,
            "server_pubkey": self.identity.public_jwk,
            "versions": list(VERSIONS),
            "capabilities": list(CAPABILITIES),
            "scopes_supported": sorted(self.scopes_allowed),
            "token_max_ttl": self.policy.token_max_ttl,
            "require_user_confirmation": self.policy.require_user_confirmation,
            "handshake_endpoint": f"{base}/ath/handshake",
            "confirmations_endpoint": f"{base}/ath/confirmations",
            "confirmation_page": f"{base}/ath/confirmations/page",
            "user_keys_page": f"{base}/ath/user/keys",
            "key_exchange_algs": [KEY_EXCHANGE_ALG],
            "cipher_suites": [CIPHER_SUITE],
        }

    # -- step 1 → 2 ---------------------------------------------------------------------------

    def start(self, data: Any, client_ip: str | None = None) -> StepResult:
        now = self.clock()
        req: HandshakeRequestBody = parse_body(HandshakeRequestBody, data)
        self._check_timestamp(req.timestamp, now)
        version = next((v for v in req.versions if v in VERSIONS), None)
        if version is None:
            raise ATHError(
                ErrorCode.UNSUPPORTED_VERSION,
                "no common handshake version",
                {"supported": list(VERSIONS)},
            )
        caps = [c for c in CAPABILITIES if c in req.capabilities]
        if self.identity.algorithm not in ("ES256", "Ed25519") or (
            ("ES256" if self.identity.algorithm == "ES256" else "EdDSA") not in caps
        ):
            raise ATHError(
                ErrorCode.INVALID_REQUEST,
                "the agent does not accept the server's signature algorithm",
                {"server_alg": self.identity.algorithm, "capabilities": list(CAPABILITIES)},
            )
        try:
            if len(b64url_decode(req.nonce)) < MIN_NONCE_BYTES:
                raise ValueError("short")
        except ValueError as exc:
            raise ATHError(
                ErrorCode.INVALID_REQUEST, "nonce must be base64url of at least 128 bits"
            ) from exc
        pub = req.client_pubkey
        if "d" in pub:
            raise ATHError(ErrorCode.INVALID_REQUEST, "client_pubkey must be a public key")
        if not req.client_did.startswith(("did:key:", "did:web:")):
            raise ATHError(ErrorCode.INVALID_REQUEST, "client_did must be a did:key or did:web")
        named = self._resolve(req.client_did, ErrorCode.INVALID_SIGNATURE, "client_did")
        if not same_public_key(named, pub):
            raise self._refuse(
                now,
                "handshake.request",
                None,
                ATHError(
                    ErrorCode.INVALID_SIGNATURE,
                    "client_pubkey is not the key client_did names",
                ),
            )
        kind = "EdDSA" if pub.get("kty") == "OKP" else "ES256"
        if kind not in caps:
            raise ATHError(ErrorCode.INVALID_REQUEST, f"{kind} is not among the capabilities")
        handshake_id = _new_id("hs_")
        nonce_b = _nonce()
        ts = int(now)
        when = to_datetime(now)
        row = HandshakeRow(
            handshake_id=handshake_id,
            status="started",
            client_did=req.client_did,
            client_pubkey={k: pub[k] for k in ("kty", "crv", "x", "y") if k in pub},
            server_did=self.identity.did,
            version=version,
            nonce_a=req.nonce,
            nonce_b=nonce_b,
            client_ip=client_ip,
            created_at=when,
            updated_at=when,
            expires_at=when + timedelta(seconds=self.policy.handshake_ttl),
        )
        audit = self._audit(now, "handshake.request", "accepted", row)
        try:
            self.store.add_handshake(
                row,
                nonce_key=_nonce_key("a", req.nonce),
                nonce_expires=when + timedelta(seconds=2 * MAX_SKEW),
                now=when,
                audit=audit,
            )
        except DuplicateError as exc:
            raise self._refuse(
                now,
                "handshake.request",
                None,
                ATHError(ErrorCode.NONCE_REPLAYED, "this nonce was already used"),
            ) from exc
        proof = server_proof_object(
            handshake_id, req.client_did, self.identity.did, req.nonce, nonce_b, ts
        )
        response = {
            "server_did": self.identity.did,
            "server_pubkey": self.identity.public_jwk,
            "version": version,
            "capabilities": caps,
            "nonce": nonce_b,
            "signature": sign_object(self.identity.key, proof),
            "timestamp": ts,
        }
        return StepResult(201, {"handshake_id": handshake_id, "handshake_response": response})

    # -- step 3 → 4 ---------------------------------------------------------------------------

    def identify(self, handshake_id: str, data: Any) -> StepResult:
        now = self.clock()
        row = self._load(handshake_id)
        self._check_live(row, now)
        req: IdentityProofBody = parse_body(IdentityProofBody, data)
        if row.status != "started":
            raise self._out_of_order(row, "started")
        self._check_timestamp(req.timestamp, now)
        proof = client_proof_object(
            row.handshake_id,
            row.client_did,
            row.server_did,
            row.nonce_a,
            row.nonce_b,
            req.timestamp,
        )
        if not verify_object(row.client_pubkey, proof, req.signature):
            raise self._refuse(
                now,
                "handshake.identity",
                row,
                ATHError(
                    ErrorCode.INVALID_SIGNATURE,
                    "the agent's signature over the server's nonce is invalid",
                ),
            )
        won = self.store.transition(
            row.handshake_id,
            "started",
            audit=self._audit(now, "handshake.identity", "verified", row),
            status="identified",
            credentials=req.credentials,
            updated_at=to_datetime(now),
        )
        if not won:
            raise self._out_of_order(row, "started")
        return StepResult(
            200,
            {
                "success": True,
                "metadata": {
                    "scopes_supported": sorted(self.scopes_allowed),
                    "token_max_ttl": self.policy.token_max_ttl,
                    "require_user_confirmation": self.policy.require_user_confirmation,
                },
                "error": None,
            },
        )

    # -- step 5 → 6 (or 8) --------------------------------------------------------------------

    def _client_info(self, client_did: str, context: Mapping[str, Any] | None) -> dict[str, Any]:
        known = self.policy.known_agents.get(client_did)
        if known is not None:
            return {
                "name": str(known.get("name", client_did)),
                "developer": str(known.get("developer", "")),
                "verified": True,
            }
        ctx = context or {}
        raw = ctx.get("client_info")
        info: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        name = info.get("name") or ctx.get("agent_name") or "Unnamed agent"
        dev = info.get("developer") or ctx.get("developer") or "unknown developer"
        return {"name": str(name)[:200], "developer": str(dev)[:200], "verified": False}

    def request_scopes(self, handshake_id: str, data: Any) -> StepResult:
        now = self.clock()
        row = self._load(handshake_id)
        self._check_live(row, now)
        req: ScopeRequestBody = parse_body(ScopeRequestBody, data)
        if row.status != "identified":
            raise self._out_of_order(row, "identified")
        bad = [s for s in req.scopes if not is_valid_scope(s)]
        if bad:
            raise ATHError(ErrorCode.INVALID_REQUEST, "malformed scope", {"scopes": bad[:10]})
        if req.ttl <= 0:
            raise ATHError(ErrorCode.INVALID_REQUEST, "ttl must be a positive number of seconds")
        scopes = list(dict.fromkeys(req.scopes))
        auth = req.user_authorization
        if auth is None and row.credentials:
            auth = row.credentials[0]
        if auth is None:
            raise self._refuse(
                now,
                "handshake.scope",
                row,
                ATHError(ErrorCode.CREDENTIAL_INVALID, "user_authorization is required"),
            )
        try:
            signed = SignedCredential.from_dict(auth)
            cred = verify_credential(
                signed.credential,
                signed.signature,
                self.resolver,
                client_did=row.client_did,
                now=now,
            )
        except CredentialError as exc:
            code = {
                "invalid": ErrorCode.CREDENTIAL_INVALID,
                "expired": ErrorCode.CREDENTIAL_EXPIRED,
                "agent_mismatch": ErrorCode.CREDENTIAL_AGENT_MISMATCH,
            }[exc.reason]
            raise self._refuse(now, "handshake.scope", row, ATHError(code, exc.message)) from exc
        beyond = [s for s in scopes if s not in cred.scopes]
        if beyond:
            raise self._refuse(
                now,
                "handshake.scope",
                row,
                ATHError(
                    ErrorCode.CREDENTIAL_SCOPE_EXCEEDED,
                    "requested scopes exceed what the user's credential covers",
                    {"scopes": beyond},
                ),
            )
        when = to_datetime(now)
        common: dict[str, Any] = {
            "requested_scopes": scopes,
            "requested_ttl": req.ttl,
            "context": req.context or {},
            "user_did": cred.user_did,
            "credential_scopes": list(cred.scopes),
            "credential_expires_at": cred.expires_at,
            "updated_at": when,
        }
        if not self.policy.require_user_confirmation:
            result = self._scope_result(
                scopes, list(cred.scopes), cred.expires_at, scopes, req.ttl, now
            )
            won = self.store.transition(
                row.handshake_id,
                "identified",
                audit=self._audit(
                    now,
                    "handshake.scope",
                    "granted",
                    row,
                    user_id=cred.user_did,
                    requested=scopes,
                    effective=result["scopes_granted"],
                    denied=[d["scope"] for d in result["scopes_denied"]],
                ),
                status="approved",
                scope_result=result,
                **common,
            )
            if not won:
                raise self._out_of_order(row, "identified")
            return StepResult(200, result)
        expires = min(now + self.policy.confirmation_ttl, cred.expires_at)
        request_id = _new_id("cr_")
        info = self._client_info(row.client_did, req.context)
        conf = ConfirmationRow(
            request_id=request_id,
            handshake_id=row.handshake_id,
            status="pending",
            user_did=cred.user_did,
            client_did=row.client_did,
            client_info=info,
            requested_scopes=scopes,
            created_at=when,
            expires_at=to_datetime(expires),
        )
        won = self.store.transition(
            row.handshake_id,
            "identified",
            confirmation=conf,
            audit=self._audit(
                now,
                "handshake.scope",
                "pending_user",
                row,
                user_id=cred.user_did,
                requested=scopes,
                details={"request_id": request_id},
            ),
            status="pending_user",
            request_id=request_id,
            expires_at=to_datetime(expires),
            **common,
        )
        if not won:
            raise self._out_of_order(row, "identified")
        if self.webhook is not None:
            self.webhook.send(self.confirmation_request(conf))
        return StepResult(
            202,
            {
                "status": "pending_user_confirmation",
                "request_id": request_id,
                "expires_at": int(expires),
            },
        )

    def _scope_result(
        self,
        requested: list[str],
        credential_scopes: list[str],
        credential_expires_at: int,
        user_approved: list[str],
        ttl: int,
        now: float,
    ) -> dict[str, Any]:
        granted: list[str] = []
        denied: list[dict[str, str]] = []
        for s in requested:
            if s not in self.scopes_supported:
                denied.append({"scope": s, "reason": "not_supported"})
            elif s not in self.scopes_allowed:
                denied.append({"scope": s, "reason": "policy"})
            elif s not in credential_scopes:
                denied.append({"scope": s, "reason": "credential"})
            elif s not in user_approved:
                denied.append({"scope": s, "reason": "user"})
            else:
                granted.append(s)
        remaining = max(0, int(credential_expires_at - now))
        ttl_granted = max(0, min(ttl, remaining, self.policy.token_max_ttl, TOKEN_MAX_TTL))
        return {
            "scopes_granted": granted,
            "scopes_denied": denied,
            "ttl_granted": ttl_granted,
            "restrictions": self.restrictions.to_dict(),
        }

    # -- step 6: the confirmation request (out of band) ---------------------------------------

    @staticmethod
    def confirmation_request(conf: ConfirmationRow) -> dict[str, Any]:
        """``authorization_confirmation_request`` (+ *athkit*: handshake_id, user_did)."""
        info = dict(conf.client_info or {})
        return {
            "request_id": conf.request_id,
            "client_did": conf.client_did,
            "client_info": {"name": info.get("name", ""), "developer": info.get("developer", "")},
            "requested_scopes": list(conf.requested_scopes),
            "expires_at": _epoch(conf.expires_at),
            "handshake_id": conf.handshake_id,
            "user_did": conf.user_did,
            "client_info_verified": bool(info.get("verified")),
        }

    def pending_for(self, user_dids: Sequence[str]) -> list[dict[str, Any]]:
        rows = self.store.pending_confirmations(list(user_dids), to_datetime(self.clock()))
        return [self.confirmation_request(r) for r in rows]

    def user_from_proof(self, header: str | None, method: str, path: str) -> str:
        """Verify ``X-ATH-User-Proof`` and return the user's DID (401 otherwise)."""
        if not header:
            raise ATHError(ErrorCode.INVALID_SIGNATURE, "X-ATH-User-Proof is required")
        now = self.clock()

        def unused(nonce: str, expires_at: int) -> bool:
            return self.service.store.remember_once(
                _nonce_key("user-request", nonce),
                to_datetime(max(expires_at, int(now)) + MAX_SKEW),
                to_datetime(now),
            )

        try:
            return verify_user_request_proof(
                header, self.resolver, self.identity.did, method, path, now, nonce_unused=unused
            )
        except UserProofError as exc:
            code = {
                "invalid": ErrorCode.INVALID_SIGNATURE,
                "stale": ErrorCode.HANDSHAKE_STALE,
                "replayed": ErrorCode.NONCE_REPLAYED,
            }[exc.reason]
            raise ATHError(code, exc.message) from exc

    # -- step 7 -------------------------------------------------------------------------------

    def confirm(self, request_id: str, data: Any) -> dict[str, Any]:
        now = self.clock()
        req: ConfirmationResponseBody = parse_body(ConfirmationResponseBody, data)
        if req.request_id != request_id:
            raise ATHError(ErrorCode.INVALID_REQUEST, "request_id differs from the URL")
        conf = self.store.get_confirmation(request_id) if len(request_id) <= 64 else None
        if conf is None:
            raise ATHError(ErrorCode.NOT_FOUND, "no such confirmation request")
        for name in ("handshake_id", "user_did", "client_did"):
            given = getattr(req, name)
            if given is not None and given != getattr(conf, name):
                raise ATHError(ErrorCode.INVALID_REQUEST, f"{name} does not match the request")
        if conf.status != "pending":
            raise ATHError(
                ErrorCode.HANDSHAKE_OUT_OF_ORDER,
                "this confirmation request was already answered",
                {"state": conf.status},
            )
        if now >= _epoch(conf.expires_at):
            raise ATHError(ErrorCode.CONFIRMATION_TIMEOUT, "this confirmation request has expired")
        obj = confirmation_object(
            conf.request_id,
            conf.handshake_id,
            conf.user_did,
            conf.client_did,
            req.approved,
            list(req.approved_scopes),
            req.expires_at,
        )
        jwk = self._resolve(conf.user_did, ErrorCode.INVALID_SIGNATURE, "user_did")
        if not verify_object(jwk, obj, req.signature):
            raise ATHError(
                ErrorCode.INVALID_SIGNATURE, "the user's signature over the confirmation is invalid"
            )
        extra = [s for s in req.approved_scopes if s not in conf.requested_scopes]
        if extra:
            raise ATHError(
                ErrorCode.INVALID_REQUEST,
                "approved_scopes must be a subset of requested_scopes",
                {"scopes": extra},
            )
        row = self._load(conf.handshake_id)
        approved_scopes = list(dict.fromkeys(req.approved_scopes)) if req.approved else []
        approved = bool(req.approved and approved_scopes)
        when = to_datetime(now)
        changes: dict[str, Any] = {
            "approved_scopes": approved_scopes,
            "response": {**req.model_dump(), "signed": obj},
        }
        if approved:
            result = self._scope_result(
                list(row.requested_scopes or []),
                list(row.credential_scopes or []),
                int(row.credential_expires_at or 0),
                approved_scopes,
                int(row.requested_ttl or 0),
                now,
            )
            changes["scope_result"] = result
            changes["expires_at"] = when + timedelta(seconds=self.policy.handshake_ttl)
            effective = list(result["scopes_granted"])
            denied = [d["scope"] for d in result["scopes_denied"]]
        else:
            effective, denied = [], list(conf.requested_scopes)
        won = self.store.decide(
            conf.request_id,
            conf.handshake_id,
            confirmation_status="approved" if approved else "denied",
            handshake_status="approved" if approved else "denied",
            now=when,
            audit=self._audit(
                now,
                "handshake.confirmation",
                "approved" if approved else "denied",
                row,
                user_id=conf.user_did,
                requested=list(conf.requested_scopes),
                effective=effective,
                denied=denied,
                reason=None if approved else "user denied",
            ),
            **changes,
        )
        if not won:
            raise ATHError(
                ErrorCode.HANDSHAKE_OUT_OF_ORDER, "this confirmation request was already answered"
            )
        return {"request_id": conf.request_id, "status": "approved" if approved else "denied"}

    # -- step 8 -------------------------------------------------------------------------------

    def result(self, handshake_id: str) -> StepResult:
        """``scope_result`` (200), still waiting (202), or the refusal of the handshake."""
        now = self.clock()
        row = self._load(handshake_id)
        if row.status == "pending_user":
            if now < _epoch(row.expires_at):
                return StepResult(
                    202,
                    {
                        "status": "pending_user_confirmation",
                        "request_id": row.request_id,
                        "expires_at": _epoch(row.expires_at),
                    },
                )
            self.store.expire_confirmation(
                row.handshake_id,
                row.request_id or "",
                to_datetime(now),
                self._audit(now, "handshake.confirmation", "timeout", row, reason="no answer"),
            )
            row = self._load(handshake_id)
        if row.status == "timeout":
            raise ATHError(
                ErrorCode.CONFIRMATION_TIMEOUT, "the user did not answer the confirmation in time"
            )
        if row.status == "denied":
            raise ATHError(ErrorCode.USER_DENIED, "the user denied this authorization")
        if row.status != "approved":
            raise self._out_of_order(row, "approved")
        self._check_live(row, now)
        return StepResult(200, dict(row.scope_result or {}))

    # -- step 9 -------------------------------------------------------------------------------

    def complete(self, handshake_id: str, data: Any) -> StepResult:
        now = self.clock()
        row = self._load(handshake_id)
        req: CompleteBody = parse_body(CompleteBody, data)
        if row.status == "denied":
            raise ATHError(ErrorCode.USER_DENIED, "the user denied this authorization")
        if row.status != "approved":
            raise self._out_of_order(row, "approved")
        self._check_live(row, now)
        if req.key_exchange_alg != KEY_EXCHANGE_ALG or req.cipher_suite != CIPHER_SUITE:
            raise ATHError(
                ErrorCode.INVALID_REQUEST,
                f"key_exchange_alg must be {KEY_EXCHANGE_ALG} and cipher_suite {CIPHER_SUITE}",
            )
        result = dict(row.scope_result or {})
        granted = list(result.get("scopes_granted") or [])
        ttl = int(result.get("ttl_granted") or 0)
        if not granted or ttl <= 0:
            raise ATHError(ErrorCode.SCOPE_NOT_APPROVED, "no scope was granted by this handshake")
        client_epk = req.key_exchange_params.get("epk")
        kex_client = client_kex_object(
            row.handshake_id,
            row.client_did,
            row.server_did,
            client_epk if isinstance(client_epk, dict) else {},
        )
        if not verify_object(
            row.client_pubkey, kex_client, req.key_exchange_params.get("signature")
        ):
            raise ATHError(
                ErrorCode.INVALID_SIGNATURE,
                "key_exchange_params.signature must be the agent's signature over its epk",
            )
        ephemeral = EphemeralKey()
        try:
            shared = ephemeral.agree(client_epk)
        except ChannelError as exc:
            raise ATHError(ErrorCode.INVALID_REQUEST, exc.message) from exc
        k_c2s, k_s2c = derive_session_keys(
            shared, row.nonce_a, row.nonce_b, row.client_did, row.server_did, row.handshake_id
        )
        session_id = _new_id("hss_")
        sealed = self.sealer.seal(
            b64url_encode(k_c2s + k_s2c), self._seal_aad(session_id, row.handshake_id)
        )
        iat = int(now)
        exp = iat + min(ttl, TOKEN_MAX_TTL)
        session_exp = iat + self.policy.session_key_ttl
        user_did = row.user_did or ""
        link = self.store.get_user_key(user_did) if user_did else None
        account = link.account if link is not None else None
        when = to_datetime(now)
        session = HandshakeSessionRow(
            session_id=session_id,
            handshake_id=row.handshake_id,
            client_did=row.client_did,
            user_did=user_did,
            account=account,
            scopes=granted,
            restrictions=result.get("restrictions") or {},
            sealed_keys=sealed,
            last_seq_c2s=0,
            rate_window=0,
            rate_count=0,
            created_at=when,
            token_expires_at=to_datetime(exp),
            expires_at=to_datetime(session_exp),
        )
        claims = {
            "iss": self.identity.did,
            "sub": row.client_did,
            "aud": self.settings.public_url,
            "iat": iat,
            "exp": exp,
            "jti": secrets.token_urlsafe(16),
            "scope": " ".join(granted),
            "sid": session_id,
            "uid": account or user_did,
        }
        header = {"alg": self.identity.algorithm, "typ": "JWT", "kid": self.identity.kid}
        token = jwt.encode(header, claims, self.identity.key.key, algorithms=[header["alg"]])
        won = self.store.transition(
            row.handshake_id,
            "approved",
            session=session,
            audit=self._audit(
                now,
                "handshake.complete",
                "granted",
                row,
                user_id=account or user_did,
                effective=granted,
                details={"session_id": session_id},
            ),
            status="completed",
            session_id=session_id,
            updated_at=when,
        )
        if not won:
            raise self._out_of_order(row, "approved")
        return StepResult(
            200,
            {
                "key_exchange_alg": KEY_EXCHANGE_ALG,
                "key_exchange_params": {
                    "epk": ephemeral.public_jwk(),
                    "signature": sign_object(
                        self.identity.key,
                        server_kex_object(
                            row.handshake_id,
                            row.client_did,
                            row.server_did,
                            kex_client["epk"],
                            ephemeral.public_jwk(),
                            session_id,
                        ),
                    ),
                },
                "cipher_suite": CIPHER_SUITE,
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": exp - iat,
                "session_id": session_id,
                "session_expires_at": session_exp,
            },
        )

    # -- the session: keys, channel, token ----------------------------------------------------

    @staticmethod
    def _seal_aad(session_id: str, handshake_id: str) -> str:
        return f"ath-handshake-session\0{session_id}\0{handshake_id}"

    def session_keys(self, session: HandshakeSessionRow) -> tuple[bytes, bytes]:
        try:
            raw = b64url_decode(
                self.sealer.open(
                    session.sealed_keys, self._seal_aad(session.session_id, session.handshake_id)
                )
            )
        except (SealError, ValueError) as exc:
            raise ATHError(ErrorCode.ENCRYPTION_ERROR, "session keys cannot be opened") from exc
        return raw[:32], raw[32:]

    def live_session(self, session_id: str) -> HandshakeSessionRow:
        now = self.clock()
        row = self.store.get_session(session_id) if len(session_id) <= 64 else None
        if row is None:
            raise ATHError(ErrorCode.TOKEN_INVALID, "no such handshake session")
        if row.revoked_at is not None:
            raise ATHError(ErrorCode.TOKEN_REVOKED, "this session has been revoked")
        if now >= _epoch(row.expires_at):
            raise ATHError(ErrorCode.SESSION_KEY_EXPIRED, "the session key has expired")
        return row

    def channel_for(self, session: HandshakeSessionRow) -> SessionChannel:
        return server_channel(
            session.session_id,
            self.session_keys(session),
            _epoch(session.expires_at),
            self.clock,
            recv_seq=int(session.last_seq_c2s or 0),
        )

    def open_request(
        self, session_id: str, envelope: Any, method: str, path: str
    ) -> tuple[SessionChannel, int, bytes]:
        """Decrypt a request envelope; refuse tampering (400), replay or reordering (409)."""
        session = self.live_session(session_id)
        channel = self.channel_for(session)
        try:
            seq, plaintext = channel.open_unordered(envelope, method, path)
        except ChannelError as exc:
            raise ATHError(ErrorCode(exc.code), exc.message) from exc
        if seq <= int(session.last_seq_c2s or 0) or not self.store.advance_seq(session_id, seq):
            raise ATHError(ErrorCode.MESSAGE_REPLAYED, "seq is not greater than the last message's")
        return channel, seq, plaintext

    def is_handshake_token(self, token: str) -> bool:
        return token.count(".") == 2 and token.startswith("ey")

    def validate_token(
        self,
        token: str | None,
        *,
        agent_header: str | None,
        provider_id: str | None,
        client_ip: str | None,
        channel_session: str | None,
        required: Sequence[str] = (),
    ) -> HandshakeTokenInfo:
        """Every check of a handshake access token, in the documented order."""
        now = self.clock()
        if not token:
            raise ATHError(ErrorCode.TOKEN_INVALID, "access token is not valid")
        try:
            decoded = jwt.decode(token, self.identity.key.key, algorithms=[self.identity.algorithm])
        except (JoseError, ValueError) as exc:
            raise ATHError(ErrorCode.TOKEN_INVALID, "access token is not valid") from exc
        claims = decoded.claims
        if claims.get("iss") != self.identity.did or claims.get("aud") != self.settings.public_url:
            raise ATHError(ErrorCode.TOKEN_INVALID, "access token is not for this service")
        exp, sid = claims.get("exp"), claims.get("sid")
        if not isinstance(exp, int) or not isinstance(sid, str):
            raise ATHError(ErrorCode.TOKEN_INVALID, "access token is not valid")
        if now >= exp:
            raise ATHError(ErrorCode.TOKEN_EXPIRED, "access token has expired")
        session = self.live_session(sid)
        if session.client_did != claims.get("sub"):
            raise ATHError(ErrorCode.TOKEN_INVALID, "access token does not match its session")
        if channel_session is not None and channel_session != sid:
            raise ATHError(
                ErrorCode.TOKEN_INVALID, "access token belongs to another session than the channel"
            )
        if channel_session is None and self.policy.require_encryption:
            raise ATHError(
                ErrorCode.ENCRYPTION_ERROR, "this service accepts encrypted requests only"
            )
        restrictions = Restrictions.from_dict(session.restrictions)
        restrictions.check_ip(client_ip)
        restrictions.check_time(now)
        window = restrictions.rate_window(now)
        if window is not None and not self.store.take_rate(sid, window[0], window[1]):
            raise rate_limited(restrictions.rate_limit or "", window[2])
        if not agent_header or agent_header != session.client_did:
            raise ATHError(
                ErrorCode.AGENT_IDENTITY_MISMATCH,
                "X-ATH-Agent-ID is missing or names another agent than the token's",
            )
        own_provider = self.settings.provider_id
        if provider_id is not None and own_provider and provider_id != own_provider:
            raise ATHError(
                ErrorCode.PROVIDER_MISMATCH,
                "token was issued for another provider",
                {"token_provider": own_provider, "requested_provider": provider_id},
            )
        scopes = frozenset(str(claims.get("scope", "")).split()) & frozenset(session.scopes)
        info = HandshakeTokenInfo(
            client_id=session.client_did,
            agent_id=session.client_did,
            user_id=session.account or session.user_did,
            provider_id=own_provider,
            scopes=scopes,
            expires_at=to_datetime(exp),
            session_id=sid,
            user_did=session.user_did,
            restrictions=dict(session.restrictions or {}),
        )
        require_scopes_of(info, required)
        return info

    # -- user keys ----------------------------------------------------------------------------

    def link_user_key(self, account: str, data: Any) -> dict[str, Any]:
        """Link a user DID to the signed-in ``account`` (proof: the key signs the link object)."""
        now = self.clock()
        req: KeyLinkBody = parse_body(KeyLinkBody, data)
        self._check_timestamp(req.timestamp, now)
        pub: dict[str, Any] = {
            k: req.public_jwk[k] for k in ("kty", "crv", "x", "y") if k in req.public_jwk
        }
        if "d" in req.public_jwk:
            raise ATHError(ErrorCode.INVALID_REQUEST, "public_jwk must be a public key")
        try:
            did = did_key_from_jwk(pub)
        except (DIDError, ValueError) as exc:
            raise ATHError(ErrorCode.INVALID_REQUEST, f"public_jwk is not usable: {exc}") from exc
        if did != req.user_did:
            raise ATHError(ErrorCode.INVALID_REQUEST, "user_did is not the did:key of public_jwk")
        obj = user_key_link_object(
            req.user_did, account, self.identity.did, req.nonce, req.timestamp
        )
        if not verify_object(pub, obj, req.signature):
            raise ATHError(ErrorCode.INVALID_SIGNATURE, "the key link signature is invalid")
        when = to_datetime(now)
        if not self.service.store.remember_once(
            _nonce_key("key-link", req.nonce), when + timedelta(seconds=2 * MAX_SKEW), when
        ):
            raise ATHError(ErrorCode.NONCE_REPLAYED, "this nonce was already used")
        existing = self.store.get_user_key(did)
        if existing is not None:
            if existing.account != account:
                raise ATHError(
                    ErrorCode.AGENT_ALREADY_REGISTERED,
                    "this key is already linked to another account",
                    status=409,
                )
            return {"user_did": did, "account": account, "linked": True}
        try:
            self.store.link_user_key(
                UserKeyRow(user_did=did, account=account, public_jwk=pub, created_at=when),
                audit_row(
                    now, "user.key_link", "linked", user_id=account, details={"user_did": did}
                ),
            )
        except DuplicateError as exc:
            raise ATHError(
                ErrorCode.AGENT_ALREADY_REGISTERED, "this key is already linked", status=409
            ) from exc
        return {"user_did": did, "account": account, "linked": True}

    def user_dids_of(self, account: str) -> list[str]:
        return [r.user_did for r in self.store.user_keys_of(account)]

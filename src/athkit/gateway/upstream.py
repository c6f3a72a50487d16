"""The OAuth bridge to one upstream provider (PROTOCOL.md §5 gateway rows, RFC 6749, 7636, 7009).

Authlib's httpx client speaks the protocol (PKCE S256, form-encoded token requests with the
configured client authentication, refresh, revocation); this module adds OIDC discovery,
identifying the user (``sub`` from a verified id_token, or userinfo), and turns every upstream
failure into an ATH error with a message a person can act on.
"""

from __future__ import annotations

import importlib
import time
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from athkit.core.outbound import OutboundLimits
from athkit.core.tracing import tracer, tracing_enabled
from athkit.gateway.config import ConfigError, ProviderConfig
from athkit.protocol.errors import ATHError, ErrorCode

# Authlib 1.9 announces its future switch to httpx2 when it falls back to httpx. Its own module
# installs an "always" filter for its warning class on first import, so that module is imported
# first and our narrower "ignore" goes in front of it (a filter placed earlier would lose).
warnings.filterwarnings(
    "ignore", message="The httpx module is deprecated", category=AuthlibDeprecationWarning
)
from authlib.integrations.httpx_client import OAuth2Client, OAuthError  # noqa: E402


def _client_module(cls: type) -> ModuleType:
    """The httpx-compatible module ``cls`` is built on (Authlib picks httpx2 when present)."""
    for base in cls.__mro__:
        root = base.__module__.split(".")[0]
        if root in ("httpx", "httpx2"):
            return importlib.import_module(root)
    return httpx


#: The HTTP library under Authlib's clients, and the errors both it and httpx raise.
OAUTH_HTTP = _client_module(OAuth2Client)
HTTP_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, OAUTH_HTTP.HTTPError)


@dataclass(frozen=True)
class UpstreamTokens:
    access_token: str
    refresh_token: str | None
    token_type: str
    scope: str | None
    expires_at: float | None
    id_token: str | None


@dataclass
class Endpoints:
    issuer: str | None
    authorization: str
    token: str
    userinfo: str | None
    revocation: str | None
    jwks_uri: str | None


def _oauth_error(message: str, **details: Any) -> ATHError:
    return ATHError(ErrorCode.OAUTH_ERROR, message, details or None)


class UpstreamProvider:
    """One configured provider: endpoints, and the OAuth calls the gateway makes to it."""

    def __init__(
        self, cfg: ProviderConfig, *, timeout: float = 30.0, outbound: OutboundLimits | None = None
    ) -> None:
        self.cfg = cfg
        self.timeout = timeout
        # Every call to the provider: ``timeout`` is the deadline of the whole exchange, and
        # the in-flight cap is shared with the service's other outbound calls.
        limits = outbound or OutboundLimits()
        self._transport = limits.transport(deadline=timeout)
        self._oauth_transport = limits.transport(deadline=timeout, http=OAUTH_HTTP)
        self.endpoints = Endpoints(
            issuer=cfg.issuer,
            authorization=cfg.authorization_endpoint or "",
            token=cfg.token_endpoint or "",
            userinfo=cfg.userinfo_endpoint,
            revocation=cfg.revocation_endpoint,
            jwks_uri=cfg.jwks_uri,
        )
        self._jwks: KeySet | None = None

    def discover(self) -> None:
        """Fill endpoints from ``{issuer}/.well-known/openid-configuration`` (explicit wins)."""
        if not self.cfg.issuer:
            return
        url = self.cfg.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            with self._http() as http:
                resp = http.get(url)
            resp.raise_for_status()
            meta = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ConfigError(
                f"providers[{self.cfg.provider_id}].issuer: OIDC discovery at {url} failed: {exc}"
            ) from exc
        if meta.get("issuer") != self.cfg.issuer:
            raise ConfigError(
                f"providers[{self.cfg.provider_id}].issuer: discovery names issuer "
                f"{meta.get('issuer')!r}, config says {self.cfg.issuer!r}"
            )
        e = self.endpoints
        e.authorization = self.cfg.authorization_endpoint or meta["authorization_endpoint"]
        e.token = self.cfg.token_endpoint or meta["token_endpoint"]
        e.userinfo = self.cfg.userinfo_endpoint or meta.get("userinfo_endpoint")
        e.revocation = self.cfg.revocation_endpoint or meta.get("revocation_endpoint")
        e.jwks_uri = self.cfg.jwks_uri or meta.get("jwks_uri")

    def _http(self) -> httpx.Client:
        return httpx.Client(transport=self._transport, timeout=self.timeout)

    def close(self) -> None:
        self._transport.shutdown()
        self._oauth_transport.shutdown()

    def _client(self, **kwargs: Any) -> OAuth2Client:
        return OAuth2Client(
            client_id=self.cfg.client_id,
            client_secret=self.cfg.client_secret(),
            token_endpoint_auth_method=self.cfg.token_endpoint_auth_method,
            revocation_endpoint_auth_method=self.cfg.token_endpoint_auth_method,
            code_challenge_method="S256",
            timeout=self.timeout,
            transport=self._oauth_transport,
            **kwargs,
        )

    def authorization_url(
        self, *, state: str, code_verifier: str, redirect_uri: str, scopes: list[str]
    ) -> str:
        extra: dict[str, str] = {}
        if "offline_access" in scopes:
            extra["prompt"] = "consent"  # OIDC Core §11: offline_access needs prompt=consent
        if self.cfg.resource:
            extra["resource"] = self.cfg.resource
        with self._client(scope=" ".join(scopes), redirect_uri=redirect_uri) as client:
            url, _ = client.create_authorization_url(
                self.endpoints.authorization, state=state, code_verifier=code_verifier, **extra
            )
        return str(url)

    @staticmethod
    def _tokens(raw: dict[str, Any]) -> UpstreamTokens:
        access = raw.get("access_token")
        if not isinstance(access, str) or not access:
            raise _oauth_error("the provider's token response has no access_token")
        expires_at = raw.get("expires_at")
        if expires_at is None and raw.get("expires_in") is not None:
            expires_at = time.time() + float(raw["expires_in"])
        return UpstreamTokens(
            access_token=access,
            refresh_token=raw.get("refresh_token"),
            token_type=str(raw.get("token_type") or "Bearer"),
            scope=raw.get("scope"),
            expires_at=float(expires_at) if expires_at is not None else None,
            id_token=raw.get("id_token"),
        )

    def _call(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except OAuthError as exc:
            raise _oauth_error(
                f"{self.cfg.display_name} refused the {what}: {exc.error}",
                provider_id=self.cfg.provider_id,
                upstream_error=exc.error,
            ) from exc
        except HTTP_ERRORS as exc:
            raise _oauth_error(
                f"{self.cfg.display_name} could not be reached for the {what}",
                provider_id=self.cfg.provider_id,
                reason=type(exc).__name__,
            ) from exc

    def exchange_code(self, *, code: str, code_verifier: str, redirect_uri: str) -> UpstreamTokens:
        """RFC 6749 §4.1.3 with the PKCE verifier (RFC 7636 §4.5)."""
        extra = {"resource": self.cfg.resource} if self.cfg.resource else {}

        def run() -> dict[str, Any]:
            with self._client(redirect_uri=redirect_uri) as client:
                token: dict[str, Any] = client.fetch_token(
                    self.endpoints.token,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                    redirect_uri=redirect_uri,
                    **extra,
                )
                return token

        return self._tokens(self._call("authorization code exchange", run))

    def refresh(self, refresh_token: str) -> UpstreamTokens:
        def run() -> dict[str, Any]:
            with self._client() as client:
                token: dict[str, Any] = client.refresh_token(
                    self.endpoints.token, refresh_token=refresh_token
                )
                return token

        if tracing_enabled():
            with tracer.start_as_current_span("upstream refresh " + self.cfg.provider_id):
                raw = self._call("token refresh", run)
        else:
            raw = self._call("token refresh", run)
        fresh = self._tokens(raw)
        if fresh.refresh_token is None:  # providers may keep the old refresh token valid
            fresh = UpstreamTokens(
                fresh.access_token,
                refresh_token,
                fresh.token_type,
                fresh.scope,
                fresh.expires_at,
                fresh.id_token,
            )
        return fresh

    def revoke(self, token: str, hint: str) -> None:
        """RFC 7009; a provider without a revocation endpoint is skipped."""
        if not self.endpoints.revocation:
            return

        def run() -> None:
            with self._client() as client:
                resp = client.revoke_token(
                    self.endpoints.revocation, token=token, token_type_hint=hint
                )
                resp.raise_for_status()

        self._call("token revocation", run)

    def _keyset(self, refresh: bool = False) -> KeySet:
        if self._jwks is None or refresh:
            if not self.endpoints.jwks_uri:
                raise _oauth_error("the provider publishes no jwks_uri to verify id_tokens")

            def fetch() -> httpx.Response:
                with self._http() as http:
                    return http.get(self.endpoints.jwks_uri or "")

            resp = self._call("key fetch", fetch)
            self._jwks = KeySet.import_key_set(resp.json())
        return self._jwks

    def identify(self, tokens: UpstreamTokens) -> str:
        """The user's ``sub``: from a verified id_token, else from userinfo."""
        if tokens.id_token:
            return self._sub_from_id_token(tokens.id_token)
        if not self.endpoints.userinfo:
            raise _oauth_error("the provider gave no id_token and has no userinfo endpoint")
        userinfo = self.endpoints.userinfo

        def run() -> dict[str, Any]:
            with self._http() as http:
                resp = http.get(
                    userinfo, headers={"Authorization": f"Bearer {tokens.access_token}"}
                )
            resp.raise_for_status()
            data: dict[str, Any] = resp.json()
            return data

        sub = self._call("userinfo request", run).get(self.cfg.user_id_claim)
        if isinstance(sub, int) and not isinstance(sub, bool):
            sub = str(sub)  # numeric account ids (GitHub)
        if not isinstance(sub, str) or not sub:
            raise _oauth_error(f"userinfo carries no {self.cfg.user_id_claim}")
        return sub

    def _sub_from_id_token(self, id_token: str) -> str:
        for attempt in (False, True):
            try:
                tok = jwt.decode(id_token, self._keyset(refresh=attempt))
                break
            except (JoseError, ValueError) as exc:
                if attempt:
                    raise _oauth_error("the provider's id_token does not verify") from exc
        claims = tok.claims
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        now = time.time()
        if self.endpoints.issuer and claims.get("iss") != self.endpoints.issuer:
            raise _oauth_error("id_token iss is not the configured issuer")
        if self.cfg.client_id not in auds:
            raise _oauth_error("id_token was not issued to this gateway")
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] < now - 60:
            raise _oauth_error("id_token has expired")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise _oauth_error("id_token carries no sub")
        return sub

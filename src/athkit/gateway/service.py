"""ATH in gateway mode: the core implementer plus providers, the OAuth bridge and upstream tokens.

Phases A and B, token and revocation are the core's; the gateway changes what a provider is
(configured upstream APIs), where consent leads (the provider's own authorization page, with PKCE
and the upstream scopes the chosen ATH scopes need) and what redeeming the code means (exchange
at the provider, identify the user, seal the provider's tokens at rest).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from athkit.core.audit import audit_row
from athkit.core.clock import Clock, as_utc, system_clock, to_datetime
from athkit.core.outbound import OutboundLimits
from athkit.core.policy import ApprovalPolicy
from athkit.core.resources import ProtectedResource
from athkit.core.secrets import hash_secret
from athkit.core.service import ATHService, RedeemedCode, UserGrant
from athkit.core.settings import ATHSettings
from athkit.core.tokens import TokenInfo, require_scopes_of
from athkit.crypto.sealing import SealError, TokenSealer
from athkit.gateway.config import GatewayConfig, ProviderConfig
from athkit.gateway.upstream import UpstreamProvider, UpstreamTokens
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.messages import GatewayDiscoveryDocument, ProviderInfo, RevokeRequest
from athkit.store.db import Database, default_sqlite_url
from athkit.store.models import AuditRow, SessionRow, UpstreamTokenRow
from athkit.store.repositories import Store

#: The "client" under which a user's own sign-in grant is kept (gateway user pages and the
#: handshake sessions that user confirms), beside the grants kept per registered agent.
USER_GRANT_CLIENT = "ath:user-sign-in"


def owner_aad(client_id: str, user_id: str, provider_id: str) -> str:
    """Associated data that binds a sealed token to its row."""
    return f"{client_id}\x00{user_id}\x00{provider_id}"


_owner = owner_aad  # the old private name (cli/demo.py reads sealed rows with it)


class GatewayService(ATHService):
    """Gateway-mode ATH for the providers of one configuration."""

    REDEEMABLE_STATUS = "upstream_pending"
    #: The consent and callback steps call the upstream provider: always in a worker.
    STEPS_ON_LOOP = False

    def __init__(
        self,
        config: GatewayConfig,
        *,
        sealer: TokenSealer,
        store: Store | None = None,
        clock: Clock = system_clock,
        discover: bool = True,
    ) -> None:
        g = config.gateway
        settings = ATHSettings(
            public_url=g.public_url,
            app_id=g.gateway_id,
            app_name=g.name,
            provider_id="",
            database_url=g.database_url,
            data_dir=g.data_dir,
            dev_mode=g.dev_mode,
            token_ttl=g.token_ttl,
            secure_cookies=g.public_url.startswith("https"),
            redis_url=g.redis_url,
            redis_prefix=g.redis_prefix,
        )
        if store is None:
            url = g.database_url or default_sqlite_url(g.data_dir)
            store = Store(Database(url, timeouts=settings.database_timeouts))
        policy = ApprovalPolicy(**config.policy.model_dump())
        super().__init__(settings, policy=policy, store=store, clock=clock)
        self.config = config
        self.register_resources()
        self.sealer = sealer
        upstream_limits = OutboundLimits(max_concurrent=settings.outbound_max_concurrent)
        self.providers = {
            p.provider_id: UpstreamProvider(p, timeout=g.upstream_timeout, outbound=upstream_limits)
            for p in config.providers
        }
        self.route_maps = {p.provider_id: p.route_map() for p in config.providers}
        self._refresh_locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        if discover:
            for upstream in self.providers.values():
                upstream.discover()

    def register_resources(self) -> None:
        """Each provider's proxy prefix is a protected resource (RFC 9728, RFC 8707)."""
        config = getattr(self, "config", None)
        if config is None:  # called again once the provider config is known
            return
        for p in config.providers:
            self.resources.add(
                ProtectedResource(
                    self.proxy_resource(p.provider_id),
                    p.provider_id,
                    tuple(self.supported.get(p.provider_id, [])),
                    p.display_name,
                    "proxy",
                )
            )

    def proxy_resource(self, provider_id: str) -> str:
        return f"{self.settings.public_url}/ath/proxy/{provider_id}"

    # -- catalog --------------------------------------------------------------------------

    @property
    def supported(self) -> dict[str, list[str]]:
        return {p.provider_id: list(p.scopes) for p in self.config.providers}

    def scope_description(self, provider_id: str, scope: str) -> str:
        cfg = self.config.provider(provider_id)
        if cfg and scope in cfg.scopes:
            return cfg.scopes[scope].description or scope
        return scope

    def provider_display_name(self, provider_id: str) -> str:
        cfg = self.config.provider(provider_id)
        return cfg.display_name if cfg else provider_id

    def provider_config(self, provider_id: str) -> ProviderConfig:
        cfg = self.config.provider(provider_id)
        if cfg is None:
            raise ATHError(ErrorCode.NOT_FOUND, "no such provider", {"provider_id": provider_id})
        return cfg

    def catalog(self) -> GatewayDiscoveryDocument:
        """``GET /.well-known/ath.json`` (§2)."""
        return GatewayDiscoveryDocument(
            ath_version="0.1",
            gateway_id=self.config.gateway.gateway_id,
            agent_registration_endpoint=f"{self.settings.public_url}/ath/agents/register",
            supported_providers=[
                ProviderInfo(
                    provider_id=p.provider_id,
                    display_name=p.display_name,
                    categories=p.categories,
                    available_scopes=list(p.scopes),
                    auth_mode="OAUTH2",
                    agent_approval_required=p.agent_approval_required,
                )
                for p in self.config.providers
            ],
        )

    # -- the OAuth bridge -----------------------------------------------------------------

    def _grant_consent(
        self, session: SessionRow, user_id: str | None, chosen: list[str], now: float
    ) -> str:
        """Consent recorded; send the browser to the provider with PKCE and upstream scopes."""
        cfg = self.provider_config(session.provider_id)
        url = self.providers[cfg.provider_id].authorization_url(
            state=session.oauth_state,
            code_verifier=session.code_verifier,
            redirect_uri=self.settings.callback_url,
            scopes=cfg.upstream_scopes_for(chosen),
        )
        if not self.store.transition_session(
            session.session_id,
            "pending",
            self._consent_audit(session, None, chosen, now),
            status=self.REDEEMABLE_STATUS,
            consented_scopes=chosen,
        ):
            raise ATHError(ErrorCode.SESSION_ALREADY_USED, "already decided")
        return url

    def _redeem_code(self, session: SessionRow, code: str) -> RedeemedCode:
        """Exchange the provider's code (with the session's PKCE verifier), identify the user."""
        upstream = self.providers[session.provider_id]
        try:
            tokens = upstream.exchange_code(
                code=code,
                code_verifier=session.code_verifier,
                redirect_uri=self.settings.callback_url,
            )
            user_id = upstream.identify(tokens)
        except ATHError as exc:
            now = self.clock()
            self.store.transition_session(
                session.session_id,
                self.REDEEMABLE_STATUS,
                audit_row(
                    now,
                    "upstream.exchange",
                    "failed",
                    agent_id=session.agent_id,
                    provider_id=session.provider_id,
                    reason=exc.message,
                ),
                status="failed",
            )
            raise
        return RedeemedCode(
            user_id=user_id,
            upstream=self._sealed_row(session.client_id, user_id, session.provider_id, tokens),
        )

    def _sealed_row(
        self, client_id: str, user_id: str, provider_id: str, tokens: UpstreamTokens
    ) -> UpstreamTokenRow:
        aad = owner_aad(client_id, user_id, provider_id)
        return UpstreamTokenRow(
            client_id=client_id,
            user_id=user_id,
            provider_id=provider_id,
            access_token=self.sealer.seal(tokens.access_token, aad),
            refresh_token=self.sealer.seal(tokens.refresh_token, aad)
            if tokens.refresh_token
            else None,
            token_type=tokens.token_type,
            scope=tokens.scope,
            expires_at=to_datetime(tokens.expires_at) if tokens.expires_at else None,
            updated_at=to_datetime(self.clock()),
        )

    # -- the user's own channel: accounts are "<provider_id>:<sub>" (gateway/users.py) ------

    def user_grants(self, user_id: str, provider_id: str | None = None) -> list[UserGrant]:
        provider, _, sub = user_id.partition(":")
        return super().user_grants(sub, provider) if sub else []

    def revoke_for_user(self, user_id: str, client_id: str, provider_id: str | None = None) -> int:
        provider, _, sub = user_id.partition(":")
        return super().revoke_for_user(sub, client_id, provider) if sub else 0

    # -- proxy support --------------------------------------------------------------------

    def required_scope(self, provider_id: str, method: str, path: str) -> str:
        """The ATH scope the scope→route map demands; unmapped requests are refused (§7)."""
        rmap = self.route_maps.get(provider_id)
        scope = rmap.required_scope(method, path) if rmap else None
        if scope is None:
            raise ATHError(
                ErrorCode.ROUTE_NOT_MAPPED,
                "no scope rule of this provider covers this request",
                {"method": method, "path": path},
            )
        return scope

    def admit_proxy_call(
        self, token: str | None, agent_header: str | None, provider_id: str, method: str, path: str
    ) -> str:
        """All §7 checks of one proxied call, in order; returns the upstream access token.

        Token, agent header and provider first, then the scope→route map, then the scope, and
        only then the user's upstream token (refreshed if stale). One call, one thread hop.
        """
        generation = self.token_checks.cache.generation
        info = self.validate(
            token,
            agent_header=agent_header,
            provider_id=provider_id,
            resource=self.proxy_resource(provider_id),
        )
        require_scopes_of(info, [self.required_scope(provider_id, method, path)])
        upstream, until = self._upstream_token(info, force_refresh=False)
        if token:
            self.token_checks.remember_upstream(token, upstream, until, generation)
        return upstream

    def admit_in_memory(
        self, token: str | None, agent_header: str | None, provider_id: str, method: str, path: str
    ) -> str | None:
        """:meth:`admit_proxy_call` from the token cache alone (no I/O), else None."""
        info = self.validate_in_memory(
            token,
            agent_header=agent_header,
            provider_id=provider_id,
            resource=self.proxy_resource(provider_id),
        )
        if info is None or token is None:
            return None
        require_scopes_of(info, [self.required_scope(provider_id, method, path)])
        leeway = self.config.gateway.refresh_leeway
        return self.token_checks.cached_upstream(token, self.clock(), leeway)

    def admit_handshake_call(
        self, info: TokenInfo, provider_id: str, method: str, path: str
    ) -> str:
        """A proxied call with a handshake token (already validated by the handshake service).

        The session's user signed in at ``provider_id`` (account ``"<provider>:<sub>"``); the call
        must name that provider, pass the route map and the session's scopes, and then goes out
        with the user's own sign-in grant.
        """
        provider, _, sub = info.user_id.partition(":")
        if provider != provider_id or not sub:
            raise ATHError(
                ErrorCode.PROVIDER_MISMATCH,
                "this handshake session's user signed in at another provider",
                {"requested_provider": provider_id},
            )
        require_scopes_of(info, [self.required_scope(provider_id, method, path)])
        grant = TokenInfo(
            client_id=USER_GRANT_CLIENT,
            agent_id=info.agent_id,
            user_id=sub,
            provider_id=provider_id,
            scopes=info.scopes,
            expires_at=info.expires_at,
        )
        return self.upstream_access_token(grant)

    def sign_in_user(self, provider_id: str, code: str, verifier: str, redirect_uri: str) -> str:
        """Finish a user's sign-in at a provider: keep the grant (sealed), return the ``sub``."""
        upstream = self.providers[self.provider_config(provider_id).provider_id]
        tokens = upstream.exchange_code(
            code=code, code_verifier=verifier, redirect_uri=redirect_uri
        )
        sub = upstream.identify(tokens)
        self.store.save_upstream_token(
            self._sealed_row(USER_GRANT_CLIENT, sub, provider_id, tokens)
        )
        self.store.add_audit(
            audit_row(self.clock(), "user.sign_in", "ok", user_id=sub, provider_id=provider_id)
        )
        return sub

    def _lock_for(self, key: tuple[str, str, str]) -> threading.Lock:
        with self._locks_guard:
            return self._refresh_locks.setdefault(key, threading.Lock())

    def upstream_access_token(self, info: TokenInfo, *, force_refresh: bool = False) -> str:
        """The user's upstream access token, refreshed first when it has (nearly) expired."""
        return self._upstream_token(info, force_refresh=force_refresh)[0]

    @staticmethod
    def _expiry(expires_at: datetime | None) -> float:
        return float("inf") if expires_at is None else as_utc(expires_at).timestamp()

    def _upstream_token(self, info: TokenInfo, *, force_refresh: bool) -> tuple[str, float]:
        """The upstream access token and its expiry (epoch seconds)."""
        key = (info.client_id, info.user_id, info.provider_id)
        aad = owner_aad(*key)
        row = self.store.get_upstream_token(*key)
        if row is None:
            raise self._reauth("the provider's grant for this user is gone")
        leeway = timedelta(seconds=self.config.gateway.refresh_leeway)
        if not force_refresh and not self._stale(row.expires_at, leeway):
            return self._open(row.access_token, aad), self._expiry(row.expires_at)
        with self._lock_for(key):
            row = self.store.get_upstream_token(*key)  # another thread may have refreshed
            if row is None:
                raise self._reauth("the provider's grant for this user is gone")
            if not force_refresh and not self._stale(row.expires_at, leeway):
                return self._open(row.access_token, aad), self._expiry(row.expires_at)
            if not row.refresh_token:
                raise self._reauth("the provider's access token expired and cannot be refreshed")
            now = self.clock()
            try:
                fresh = self.providers[info.provider_id].refresh(self._open(row.refresh_token, aad))
            except ATHError as exc:
                if exc.details.get("upstream_error") is None:
                    raise ATHError(
                        ErrorCode.UPSTREAM_UNAVAILABLE, exc.message, exc.details
                    ) from exc
                self.store.delete_upstream_token(*key)
                self.store.add_audit(self._refresh_audit(info, now, "failed", exc.message))
                raise self._reauth(
                    "the provider refused to refresh the user's grant; the user must consent again"
                ) from exc
            saved = self._sealed_row(*key, fresh)
            self.store.save_upstream_token(saved)
            self.store.add_audit(self._refresh_audit(info, now, "refreshed", None))
            return fresh.access_token, self._expiry(saved.expires_at)

    def _stale(self, expires_at: datetime | None, leeway: timedelta) -> bool:
        return expires_at is not None and as_utc(expires_at) - leeway <= to_datetime(self.clock())

    def _open(self, sealed: str, aad: str) -> str:
        try:
            return self.sealer.open(sealed, aad)
        except SealError as exc:
            raise ATHError(
                ErrorCode.INTERNAL_ERROR, "stored upstream token cannot be opened (sealing key?)"
            ) from exc

    @staticmethod
    def _reauth(message: str) -> ATHError:
        return ATHError(ErrorCode.REAUTHORIZATION_REQUIRED, message)

    @staticmethod
    def _refresh_audit(info: TokenInfo, now: float, outcome: str, reason: str | None) -> AuditRow:
        return audit_row(
            now,
            "upstream.refresh",
            outcome,
            agent_id=info.agent_id,
            user_id=info.user_id,
            provider_id=info.provider_id,
            reason=reason,
        )

    # -- §8 revocation, with the upstream grant -------------------------------------------

    def revoke(self, req: RevokeRequest) -> None:
        row = self.store.get_token(hash_secret(req.token))
        super().revoke(req)
        if row is None or row.client_id != req.client_id:
            return
        self.release_upstream(row.client_id, row.user_id, row.provider_id)

    def release_upstream(self, client_id: str, user_id: str, provider_id: str) -> None:
        """When the last ATH token of user+agent+provider is gone, revoke or forget upstream."""
        cfg = self.config.provider(provider_id)
        if cfg is None or cfg.on_last_revoke == "keep":
            return
        now = to_datetime(self.clock())
        if self.store.count_live_tokens(client_id, user_id, provider_id, now) > 0:
            return
        row = self.store.get_upstream_token(client_id, user_id, provider_id)
        if row is None:
            return
        if cfg.on_last_revoke == "revoke":
            aad = owner_aad(client_id, user_id, provider_id)
            token, hint = (
                (row.refresh_token, "refresh_token")
                if row.refresh_token
                else (row.access_token, "access_token")
            )
            try:
                self.providers[provider_id].revoke(self._open(token, aad), hint)
            except ATHError as exc:  # the local grant is forgotten either way
                self.store.add_audit(
                    audit_row(
                        self.clock(),
                        "upstream.revoke",
                        "failed",
                        user_id=user_id,
                        provider_id=provider_id,
                        reason=exc.message,
                    )
                )
        self.store.delete_upstream_token(client_id, user_id, provider_id)

"""An agent in a few lines: identity + vault + the ATH flows, per end user.

    agent = ATHAgent.load()                          # identity from `athkit agent init`
    pending = agent.connect("http://127.0.0.1:8000", scopes=["products:read"])
    print("open", pending.authorization_url)         # the user consents in a browser
    agent.wait_for_authorization(pending)            # polls /ath/token until they did
    agent.call("ath-shop", "GET", "/products").json()

Everything secret goes to the vault: the client registration per service (§4), pending
consents (§5), grants (§6). :meth:`ATHAgent.call` refreshes a refreshable grant before it
expires and says when the user must authorize again (ATH's own tokens carry no refresh token).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import httpx

from athkit.client.discovery import DiscoveredProvider, discover, origin_of
from athkit.client.errors import (
    ClientStateError,
    DraftVersionWarning,
    SessionNotReadyError,
    TokenExpiredError,
    TokenInvalidError,
    TokenRevokedError,
    UserDeniedError,
)
from athkit.client.profile import DEFAULT_GRACE, AgentProfile
from athkit.client.sync import ATHClient
from athkit.client.vault import (
    DEFAULT_USER,
    ClientRecord,
    GrantRecord,
    PendingAuthorization,
    Vault,
    default_vault,
    ensure_fresh,
    oauth_refresher,
)
from athkit.crypto import AgentKey
from athkit.protocol.errors import ATHError, ErrorCode

DEFAULT_WAIT = 300.0
POLL_INTERVAL = 1.0


class AgentNotInitialized(ClientStateError):
    """The vault holds no agent identity: run ``athkit agent init`` first."""


class NotConnected(ClientStateError):
    """No grant for that provider for this user: connect first."""


def init_agent(
    vault: Vault,
    name: str,
    developer: Mapping[str, Any],
    *,
    agent_id: str,
    capabilities: Iterable[str] = (),
    redirect_uris: Iterable[str] = (),
    kind: str = "P-256",
    replace: bool = False,
) -> AgentProfile:
    """Create the agent's key pair and profile in ``vault`` (refuses to overwrite one)."""
    if vault.profile() is not None and not replace:
        raise ClientStateError("this vault already holds an agent identity (use --force)")
    profile = AgentProfile.create(
        name,
        developer,
        agent_id=agent_id,
        capabilities=capabilities,
        redirect_uris=redirect_uris,
        kind=kind,
    )
    vault.save_profile(profile.to_dict())
    return profile


class ATHAgent:
    """One agent identity acting for end users at ATH services (sync)."""

    def __init__(
        self,
        vault: Vault,
        *,
        dev_mode: bool = False,
        timeout: float = 10.0,
        purpose: str | None = None,
    ) -> None:
        self.vault = vault
        self.dev_mode = dev_mode
        self.timeout = timeout
        self.purpose = purpose

    @classmethod
    def load(cls, vault: Vault | None = None, **options: Any) -> ATHAgent:
        """The agent whose identity ``athkit agent init`` put in the (default) vault."""
        agent = cls(vault if vault is not None else default_vault(), **options)
        agent.profile  # noqa: B018 - fail early when the vault holds no identity
        return agent

    # -- identity -----------------------------------------------------------------------

    @property
    def profile(self) -> AgentProfile:
        data = self.vault.profile()
        if data is None:
            raise AgentNotInitialized("no agent identity in the vault: run `athkit agent init`")
        return AgentProfile.from_dict(data)

    @property
    def agent_id(self) -> str:
        return self.profile.agent_id

    def rotate_key(self, grace: float = DEFAULT_GRACE) -> AgentKey:
        """A new signing key; the old one keeps verifying for ``grace`` seconds."""
        new: list[AgentKey] = []

        def change(data: dict[str, Any] | None) -> dict[str, Any]:
            if data is None:
                raise AgentNotInitialized("no agent identity in the vault")
            profile = AgentProfile.from_dict(data)
            new.append(profile.rotate(grace=grace))
            return profile.to_dict()

        self.vault.update_profile(change)
        return new[0]

    # -- discovery and registration -------------------------------------------------------

    def discover(self, service: str) -> list[DiscoveredProvider]:
        """The providers at ``service`` (its ath-app.json, else its gateway ath.json)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DraftVersionWarning)
            found = discover(url=service, allow=[origin_of(service)], dev_mode=self.dev_mode)
        return found.providers

    def _client(self, base_url: str, api_base: str | None = None) -> ATHClient:
        profile = self.profile
        record = self.vault.client(base_url)
        return ATHClient(
            base_url,
            profile.agent_id,
            profile.key,
            client_id=record.client_id if record else None,
            client_secret=record.client_secret if record else None,
            api_base=api_base,
            timeout=self.timeout,
        )

    def _register(self, provider: DiscoveredProvider, scopes: list[str]) -> ClientRecord:
        profile = self.profile
        with self._client(provider.base_url) as client:
            reg = client.register(
                developer=profile.developer,
                providers=[{"provider_id": provider.provider_id, "scopes": scopes}],
                purpose=self.purpose,
            )
        record = ClientRecord(
            service=provider.base_url,
            client_id=reg.client_id,
            client_secret=reg.client_secret,
            agent_id=profile.agent_id,
            agent_status=reg.agent_status.value,
            approved={p.provider_id: list(p.approved_scopes) for p in reg.approved_providers},
        )
        self.vault.save_client(record)
        return record

    def _refresh_status(self, record: ClientRecord) -> ClientRecord:
        """Re-read a not-yet-approved registration (``GET /ath/agents/{client_id}``, §4)."""
        with self._client(record.service) as client:
            status = client.agent_status()
        record.agent_status = status.agent_status.value
        record.approved = {
            p.provider_id: list(p.approved_scopes) for p in status.approved_providers
        }
        self.vault.save_client(record)
        return record

    # -- Phase B: connect ---------------------------------------------------------------

    def connect(
        self,
        service: str,
        *,
        provider: str | None = None,
        scopes: Iterable[str] | None = None,
        user: str = DEFAULT_USER,
    ) -> PendingAuthorization:
        """Discover ``service``, register if needed, start an authorization for ``user``.

        Returns the pending consent: send the user to ``authorization_url``, then call
        :meth:`wait_for_authorization` (or :meth:`poll_authorization`).
        """
        providers = self.discover(service)
        chosen = _choose(providers, provider, service)
        wanted = list(scopes) if scopes else list(chosen.scopes)
        # ATH 0.1 has no way to widen a registration later (a second one is 409), so the
        # first registration asks for every scope the provider offers; the service approves
        # what its policy allows and the user still consents to ``wanted`` only.
        record = self.vault.client(chosen.base_url) or self._register(
            chosen, list(dict.fromkeys([*wanted, *chosen.scopes]))
        )
        if record.agent_status != "approved":
            record = self._refresh_status(record)  # the operator may have decided since
        if record.agent_status != "approved":
            raise ATHError(
                ErrorCode.AGENT_UNAPPROVED,
                f"the service has not approved this agent yet (status {record.agent_status})",
                {"service": record.service},
            )
        approved = record.approved.get(chosen.provider_id)
        asked = [s for s in wanted if approved is None or s in approved]
        if not asked:
            raise ATHError(
                ErrorCode.SCOPE_NOT_APPROVED,
                f"the service approved none of {wanted} for this agent",
                {"approved": approved or []},
            )
        with self._client(chosen.base_url) as client:
            auth = client.authorize(chosen.provider_id, asked)
        pending = PendingAuthorization(
            service=chosen.base_url,
            provider_id=chosen.provider_id,
            scopes=asked,
            ath_session_id=auth.ath_session_id,
            state=auth.state,
            authorization_url=auth.authorization_url,
            api_base=chosen.api_base,
        )
        self.vault.save_pending(pending, user=user)
        return pending

    def poll_authorization(
        self, pending: PendingAuthorization, *, user: str = DEFAULT_USER
    ) -> GrantRecord | None:
        """One token exchange attempt: the grant once the user consented, else ``None``.

        Raises ``UserDeniedError`` when the user said no (the pending entry is dropped).
        """
        with self._client(pending.service) as client:
            try:
                token = client.exchange_token(pending.ath_session_id)
            except SessionNotReadyError:
                return None
            except UserDeniedError:
                self.vault.drop_pending(pending.ath_session_id, user=user)
                raise
        grant = GrantRecord(
            service=pending.service,
            provider_id=token.provider_id,
            scopes=list(token.effective_scopes),
            access_token=token.access_token,
            expires_at=time.time() + token.expires_in,
            agent_id=token.agent_id,
            api_base=pending.api_base,
            client_id=client.client_id,
        )
        replaced = self.vault.find_grant(grant.provider_id, service=grant.service, user=user)
        self.vault.save_grant(grant, user=user)
        if replaced is not None and replaced.access_token != grant.access_token:
            self._revoke_quietly(replaced)
        self.vault.drop_pending(pending.ath_session_id, user=user)
        return grant

    def wait_for_authorization(
        self,
        pending: PendingAuthorization,
        *,
        user: str = DEFAULT_USER,
        timeout: float = DEFAULT_WAIT,
        interval: float = POLL_INTERVAL,
        on_wait: Callable[[float], None] | None = None,
    ) -> GrantRecord:
        """Poll until the user consented (the grant), denied (raises) or ``timeout`` passed."""
        deadline = time.monotonic() + min(timeout, pending.lifetime)
        while True:
            grant = self.poll_authorization(pending, user=user)
            if grant is not None:
                return grant
            left = deadline - time.monotonic()
            if left <= 0:
                raise ATHError(
                    ErrorCode.SESSION_NOT_READY,
                    "the user has not finished the authorization yet",
                    {"authorization_url": pending.authorization_url},
                )
            if on_wait is not None:
                on_wait(left)
            time.sleep(min(interval, left))

    # -- using grants -------------------------------------------------------------------

    def grants(self, user: str = DEFAULT_USER) -> list[GrantRecord]:
        return self.vault.grants(user)

    def grant(
        self, provider: str, *, service: str | None = None, user: str = DEFAULT_USER
    ) -> GrantRecord:
        """The live grant for ``provider`` (refreshed first if it is about to expire)."""
        grant = self.vault.find_grant(provider, service=service, user=user)
        if grant is None:
            raise NotConnected(f"not connected to {provider!r} for user {user!r}: connect first")
        record = self.vault.client(grant.service)
        refresher = oauth_refresher(record.client_secret if record else None, timeout=self.timeout)
        return ensure_fresh(self.vault, grant, refresher, user=user)

    def call(
        self,
        provider: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        service: str | None = None,
        user: str = DEFAULT_USER,
    ) -> httpx.Response:
        """``METHOD {api_base}{path}`` with the user's token for ``provider`` (§7).

        A refused token (revoked, expired, invalid) is dropped from the vault before the
        typed error is raised, so the next call asks for a new authorization.
        """
        grant = self.grant(provider, service=service, user=user)
        with self._client(grant.service, api_base=grant.api_base or grant.service) as client:
            client.set_token(grant.access_token, grant.provider_id)
            try:
                return client.request(
                    method, path, json=json, params=params, provider_id=grant.provider_id
                )
            except (TokenRevokedError, TokenExpiredError, TokenInvalidError):
                self.vault.delete_grant(grant, user=user)
                raise

    def _revoke_quietly(self, grant: GrantRecord) -> None:
        """Revoke a superseded token (one live token per user, service and provider)."""
        try:
            with self._client(grant.service) as client:
                client.revoke(grant.access_token)
        except (ATHError, ClientStateError):
            pass  # it expires on its own; the vault no longer holds it

    def revoke(
        self, provider: str, *, service: str | None = None, user: str = DEFAULT_USER
    ) -> GrantRecord:
        """Revoke the grant at its service (§8) and remove it from the vault."""
        grant = self.vault.find_grant(provider, service=service, user=user)
        if grant is None:
            raise NotConnected(f"no grant for {provider!r} for user {user!r}")
        with self._client(grant.service) as client:
            client.revoke(grant.access_token)
        self.vault.delete_grant(grant, user=user)
        return grant


def _choose(
    providers: list[DiscoveredProvider], provider: str | None, service: str
) -> DiscoveredProvider:
    if provider is not None:
        for p in providers:
            if p.provider_id == provider:
                return p
        if len(providers) == 1 and providers[0].kind == "service":
            # A service's ath-app.json may name only its app_id; the provider id the agent
            # registers with is then the one the user gave (§2 leaves it to configuration).
            return replace(providers[0], provider_id=provider)
        names = ", ".join(p.provider_id for p in providers) or "none"
        raise ATHError(
            ErrorCode.PROVIDER_NOT_APPROVED,
            f"{service} offers no provider {provider!r} (it offers: {names})",
        )
    if len(providers) != 1:
        names = ", ".join(p.provider_id for p in providers) or "none"
        raise ClientStateError(f"{service} offers several providers ({names}): name one")
    return providers[0]

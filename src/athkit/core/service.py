"""The ATH implementer for one service (native mode): Phases A and B, token, revoke, checks.

Every public method either returns a plain result or raises :class:`ATHError`; every state
change is one repository call (one transaction) and writes its audit record inside it.

:class:`ATHService` is the façade the web layer calls; each ATH phase lives in its own module:
``registration`` (§4 Phase A), ``sessions`` (§5 authorize), ``consent`` (§5 consent and
browser binding), ``callback`` (§5 callback), ``token_lifecycle`` (§6–§8 tokens),
``user_grants`` (§8 the user's channel). The old names stay importable from here.
"""

from __future__ import annotations

import ssl
from datetime import timedelta

from athkit.core.attestation import AttestationVerifier
from athkit.core.audit_writer import AuditBatchWriter, attestation_failed_row
from athkit.core.callback import AuthorizationCallback, CallbackOutcome, RedeemedCode
from athkit.core.clock import Clock, system_clock, to_datetime
from athkit.core.consent import BrowserBinding, ConsentContext, ConsentScope
from athkit.core.identity import IdentityFetcher
from athkit.core.outbound import OutboundLimits
from athkit.core.policy import ApprovalPolicy
from athkit.core.resources import ProtectedResource, ResourceRegistry
from athkit.core.sessions import MIN_STATE_LENGTH, s256
from athkit.core.settings import ATHSettings
from athkit.core.shared_state import SharedState, shared_state
from athkit.core.token_cache import attach_token_cache
from athkit.core.token_lifecycle import TokenLifecycle
from athkit.core.user_grants import UserGrant, UserGrants
from athkit.protocol.errors import ATHError
from athkit.protocol.messages import ServiceAuth, ServiceDiscoveryDocument
from athkit.store.db import Database, default_sqlite_url
from athkit.store.purge import PeriodicPurge
from athkit.store.repositories import Store

__all__ = [
    "MIN_STATE_LENGTH",
    "ATHService",
    "BrowserBinding",
    "CallbackOutcome",
    "ConsentContext",
    "ConsentScope",
    "RedeemedCode",
    "SharedState",
    "UserGrant",
    "s256",
    "shared_state",
]


def outbound_tls(settings: ATHSettings) -> ssl.SSLContext | bool:
    """TLS verification for outbound document fetches: the system's trust store, plus the
    operator's ``outbound_ca_file`` when set."""
    if settings.outbound_ca_file is None:
        return True
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cafile=str(settings.outbound_ca_file))
    return ctx


class ATHService(AuthorizationCallback, TokenLifecycle, UserGrants):
    """Native-mode ATH for one service."""

    #: Whether this kind of service's steps may run on the loop (the gateway's call upstream
    #: providers in the middle of a step: never).
    STEPS_ON_LOOP = True

    def __init__(
        self,
        settings: ATHSettings,
        *,
        policy: ApprovalPolicy | None = None,
        store: Store | None = None,
        clock: Clock = system_clock,
        fetcher: IdentityFetcher | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy or ApprovalPolicy()
        self.clock = clock
        if store is None:
            url = settings.database_url or default_sqlite_url(settings.data_dir)
            store = Store(Database(url, timeouts=settings.database_timeouts))
        self.store = store
        #: Protocol steps run inline on the event loop when they need not wait
        #: (store/on_loop.py): a SQLite file, nothing shared over the network.
        self.steps_on_loop = (
            self.STEPS_ON_LOOP
            and settings.steps_on_loop
            and store.db.steps_on_loop
            and not settings.redis_url
        )
        self.outbound = OutboundLimits(max_concurrent=settings.outbound_max_concurrent)
        self.fetcher = fetcher or IdentityFetcher(
            outbound=self.outbound,
            dev_mode=settings.dev_mode,
            cache_seconds=settings.identity_cache_seconds,
            max_bytes=settings.identity_max_bytes,
            timeout=settings.identity_timeout,
            clock=clock,
            verify=outbound_tls(settings),
        )
        #: Per-call audit rows (attestation_failed here; proxy_request in the gateway).
        self.call_audit = AuditBatchWriter(self.store.add_audit_many)
        self.resources = ResourceRegistry()
        self.register_resources()
        self.shared = shared_state(settings, self.store)
        self.token_checks = attach_token_cache(settings, self.store, clock)
        self.verifier = AttestationVerifier(
            base_url=settings.public_url,
            fetcher=self.fetcher,
            replay=self.shared.replay,
            clock=clock,
            skew=settings.clock_skew,
            max_lifetime=settings.attestation_max_lifetime,
            on_failure=self._attestation_failed,
        )
        self.purge: PeriodicPurge | None = None
        if settings.purge_interval > 0:
            self.purge = PeriodicPurge(
                self.store.db,
                interval=settings.purge_interval,
                grace=timedelta(seconds=settings.purge_grace),
                now=lambda: to_datetime(self.clock()),
            ).start()

    def _attestation_failed(self, endpoint: str, claimed: str | None, err: ATHError) -> None:
        """``attestation_failed``: queued for the batch writer (anonymous callers can send
        these at will: no synchronous database write per refusal)."""
        self.call_audit.submit(attestation_failed_row(self.clock(), endpoint, claimed, err))

    def close(self) -> None:
        if self.purge is not None:
            self.purge.stop()
        self.call_audit.close()
        self.fetcher.close()
        if self.store.revocations is not None:
            self.store.revocations.close()
        self.store.db.dispose()

    def register_resources(self) -> None:
        """Native mode: the API base is the service's protected resource (RFC 9728)."""
        s = self.settings
        scopes = tuple(s.scope_names)
        self.resources.add(ProtectedResource(s.api_resource, s.provider_id, scopes, s.app_name))
        # The service as a whole (the root RFC 9728 document): a token for it covers every
        # resource below it.
        self.resources.add(
            ProtectedResource(s.public_url, s.provider_id, scopes, s.app_name, "service")
        )

    # -- §2 discovery ---------------------------------------------------------------------

    def discovery_document(self) -> ServiceDiscoveryDocument:
        s = self.settings
        return ServiceDiscoveryDocument(
            ath_version="0.1",
            app_id=s.app_id,
            name=s.app_name,
            provider_id=s.provider_id or None,
            auth=ServiceAuth(
                authorization_endpoint=f"{s.public_url}/ath/authorize",
                token_endpoint=s.token_endpoint,
                registration_endpoint=f"{s.public_url}/ath/agents/register",
                scopes_supported=s.scope_names,
                agent_attestation_required=True,
            ),
            api_base=f"{s.public_url}{s.api_base_path}",
        )

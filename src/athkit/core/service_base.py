"""What every part of :class:`~athkit.core.service.ATHService` shares: its settings and tools.

Each ATH phase is one mixin module (registration, sessions, consent, callback, token
lifecycle, user grants) over this base; ``core/service.py`` composes them and builds the tools.
"""

from __future__ import annotations

from athkit.core.attestation import AttestationVerifier
from athkit.core.clock import Clock
from athkit.core.identity import IdentityFetcher
from athkit.core.policy import ApprovalPolicy
from athkit.core.resources import ResourceRegistry
from athkit.core.settings import ATHSettings
from athkit.core.shared_state import SharedState
from athkit.core.token_cache import TokenChecks
from athkit.store.repositories import Store


class ServiceBase:
    """The attributes every phase of native-mode ATH reads (set by ``ATHService.__init__``)."""

    settings: ATHSettings
    policy: ApprovalPolicy
    clock: Clock
    store: Store
    fetcher: IdentityFetcher
    shared: SharedState
    verifier: AttestationVerifier
    resources: ResourceRegistry
    token_checks: TokenChecks

    def canonical_provider(self, provider_id: str) -> str:
        """The service's ``provider_id`` for its ``app_id`` (the id ``ath-app.json`` names
        first and the SDKs hand on), any other id unchanged (PROTOCOL-NOTES.md, §2)."""
        s = self.settings
        if s.provider_id and provider_id == s.app_id and s.app_id != s.provider_id:
            return s.provider_id
        return provider_id

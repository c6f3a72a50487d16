"""The server side of the 9-step handshake for one service: :class:`HandshakeService`."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from athkit.core.handshake.confirmation import Confirmation
from athkit.core.handshake.hello import Hello
from athkit.core.handshake.policy import HandshakePolicy
from athkit.core.handshake.tokens import HandshakeTokens
from athkit.core.handshake.user_keys import UserKeys
from athkit.core.handshake.webhook import WebhookSender
from athkit.core.handshake_keys import ServerIdentity, load_sealer
from athkit.core.netguard import check_url
from athkit.crypto.did import DIDError, DIDResolver
from athkit.netguard_http import guarded_transport
from athkit.protocol.errors import ErrorCode
from athkit.store.handshake import HandshakeStore

if TYPE_CHECKING:  # pragma: no cover - avoids an import cycle at runtime
    from athkit.core.service import ATHService


class HandshakeService(Hello, Confirmation, HandshakeTokens, UserKeys):
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
            WebhookSender(
                self.policy.webhook_url, self.identity, self.policy.webhook_timeout, self.clock
            )
            if self.policy.webhook_url
            else None
        )

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def _client(self) -> httpx.Client:
        with self._http_lock:
            if self._http is None:
                t = self.settings.identity_timeout
                self._http = httpx.Client(
                    timeout=httpx.Timeout(t, connect=min(t, 3.0)),
                    transport=self.service.outbound.transport(
                        deadline=t, inner=guarded_transport(dev_mode=self.settings.dev_mode)
                    ),
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

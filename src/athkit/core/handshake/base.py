"""What every step of the handshake shares: the service's tools, the row, audit and refusals."""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Any

from athkit.core.audit import audit_row
from athkit.core.clock import as_utc
from athkit.core.handshake.policy import MAX_SKEW, HandshakePolicy
from athkit.core.handshake_keys import ServerIdentity
from athkit.core.handshake_restrictions import Restrictions
from athkit.core.settings import ATHSettings
from athkit.crypto.canonical import b64url_encode
from athkit.crypto.did import DIDError, DIDResolver
from athkit.crypto.sealing import TokenSealer
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.handshake import HandshakeStore
from athkit.store.models import AuditRow, HandshakeRow

if TYPE_CHECKING:  # pragma: no cover - avoids an import cycle at runtime
    from athkit.core.handshake.webhook import WebhookSender
    from athkit.core.service import ATHService


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(18)


def _nonce() -> str:
    return b64url_encode(secrets.token_bytes(32))


def _nonce_key(kind: str, value: str) -> str:
    return hashlib.sha256(f"ath-hs\0{kind}\0{value}".encode()).hexdigest()


def _epoch(dt: Any) -> int:
    return int(as_utc(dt).timestamp())


class HandshakeBase:
    """What every step of :class:`~athkit.core.handshake.service.HandshakeService` shares."""

    service: ATHService
    policy: HandshakePolicy
    settings: ATHSettings
    store: HandshakeStore
    identity: ServerIdentity
    sealer: TokenSealer
    resolver: DIDResolver
    scopes_supported: list[str]
    scopes_allowed: set[str]
    restrictions: Restrictions
    webhook: WebhookSender | None

    def clock(self) -> float:
        return self.service.clock()

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

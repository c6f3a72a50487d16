"""Handshake access tokens: every check at every use, restrictions included (§10)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from athkit.core.clock import to_datetime
from athkit.core.handshake.completion import Completion
from athkit.core.handshake_restrictions import Restrictions, rate_limited
from athkit.core.tokens import TokenInfo, require_scopes_of
from athkit.protocol.errors import ATHError, ErrorCode


@dataclass(frozen=True)
class HandshakeTokenInfo(TokenInfo):
    """A :class:`TokenInfo` for a handshake access token, with its session."""

    session_id: str = ""
    user_did: str = ""
    restrictions: Mapping[str, Any] = field(default_factory=dict)


class HandshakeTokens(Completion):
    """The session's token, checked on each API call."""

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

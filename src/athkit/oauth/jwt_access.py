"""JWT access tokens (RFC 9068), an option for resource servers that verify locally.

Signed ES256 with the service's key (``kid`` = its RFC 7638 thumbprint); the JWKS is at
``/oauth/jwks.json`` and named by ``jwks_uri`` in the RFC 8414 metadata. athkit still stores a
hash of every token it issues, so its own checks see revocation at once; a resource server
that only verifies the signature sees it at ``exp`` (keep ``token_ttl`` short), or asks the
RFC 7662 introspection endpoint.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from joserfc import jwt
from joserfc.jwk import ECKey

from athkit.core.secrets import new_secret
from athkit.core.settings import ATHSettings
from athkit.store.models import TokenRow

if TYPE_CHECKING:
    from athkit.core.service import ATHService

KEY_FILE = "oauth-jwt-signing-key.json"


class JWTAccessTokens:
    """Mints RFC 9068 §2 tokens: header ``typ: at+jwt``; claims iss, exp, aud, sub,
    client_id, iat, jti, scope (plus athkit's agent and provider ids)."""

    def __init__(self, key: ECKey, issuer: str) -> None:
        self.key = key
        self.issuer = issuer
        self.kid = key.thumbprint()

    @classmethod
    def for_settings(cls, settings: ATHSettings) -> JWTAccessTokens:
        """The key from ``data_dir`` (created with mode 0600 on first use)."""
        path = Path(settings.data_dir).expanduser() / KEY_FILE
        if path.exists():
            key = ECKey.import_key(json.loads(path.read_text()))
        else:
            key = ECKey.generate_key("P-256", private=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(json.dumps(key.as_dict(private=True)))
        return cls(key, settings.issuer)

    def jwks(self) -> dict[str, Any]:
        public = self.key.as_dict(private=False)
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "ES256"}]}

    def mint(self, row: TokenRow, svc: ATHService) -> str:
        now = int(time.time())
        from athkit.oauth.clients import external_client_id

        agent = svc.store.get_agent(row.client_id)
        claims = {
            "iss": self.issuer,
            "sub": row.user_id,
            "aud": row.audience or svc.settings.api_resource,
            "client_id": external_client_id(agent) if agent else row.client_id,
            "iat": now,
            "exp": int(row.expires_at.timestamp()),
            "jti": new_secret("", 18),
            "scope": " ".join(row.scopes),
            "ath_agent_id": row.agent_id,
            "ath_provider_id": row.provider_id,
        }
        header = {"alg": "ES256", "typ": "at+jwt", "kid": self.kid}
        return jwt.encode(header, claims, self.key, algorithms=["ES256"])

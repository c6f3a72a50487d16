"""The OAuth 2.1 authorization server of one ATH service or gateway: the /oauth/* surface.

Framework-free: each method takes plain values (query parameters, form fields, the
Authorization header) and returns plain values or raises :class:`OAuthError` /
:class:`ATHError`; the HTTP adapter is :mod:`athkit.web.oauth_routes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from athkit.core.oauth_grants import AccessTokenMinter, opaque_minter
from athkit.core.resources import ProtectedResource
from athkit.oauth.authorize import authorization_request
from athkit.oauth.clients import ClientDirectory
from athkit.oauth.errors import OAuthError
from athkit.oauth.introspection import introspection_request
from athkit.oauth.metadata import authorization_server_metadata
from athkit.oauth.registration import register_client
from athkit.oauth.resource_metadata import protected_resource_metadata
from athkit.oauth.revocation import revocation_request
from athkit.oauth.token import token_request

if TYPE_CHECKING:
    from athkit.core.service import ATHService


class OAuthServer:
    """RFC 8414 / 9728 / 7591 / 6749 / 7009 / 7662 for ``svc``, all through its Phase A and B."""

    def __init__(self, svc: ATHService) -> None:
        self.svc = svc
        self.clients = ClientDirectory(svc)
        self.minter: AccessTokenMinter = opaque_minter
        self.jwks: dict[str, Any] | None = None
        if svc.settings.access_token_format == "jwt":
            from athkit.oauth.jwt_access import JWTAccessTokens

            jwt = JWTAccessTokens.for_settings(svc.settings)
            self.minter = jwt.mint
            self.jwks = jwt.jwks()

    def metadata(self) -> dict[str, Any]:
        scopes = sorted({s for r in self.svc.resources.all() for s in r.scopes})
        return authorization_server_metadata(self.svc.settings, scopes)

    def resource_metadata(self, resource: ProtectedResource) -> dict[str, Any]:
        return protected_resource_metadata(resource, self.svc.settings.issuer)

    def register(self, body: dict[str, Any], client_ip: str | None = None) -> dict[str, Any]:
        """RFC 7591 registration; anonymous, so limited per client address."""
        limit = self.svc.settings.registration_rate_limit
        hit = self.svc.shared.rate.hit(
            f"oauth-register:{client_ip or '-'}", limit, 60.0, self.svc.clock()
        )
        if not hit.allowed:
            raise OAuthError(
                "temporarily_unavailable",
                "too many registrations from this address; retry later",
                429,
                headers={"Retry-After": str(max(1, int(hit.retry_after)))},
            )
        return register_client(self.svc, body)

    def authorize(self, params: Mapping[str, str]) -> str:
        return authorization_request(self.svc, self.clients, params)

    def token(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        return token_request(self.svc, self.clients, form, authorization, self.minter)

    def revoke(self, form: Mapping[str, str], authorization: str | None) -> None:
        revocation_request(self.svc, self.clients, form, authorization)

    def introspect(self, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
        return introspection_request(self.svc, self.clients, form, authorization)

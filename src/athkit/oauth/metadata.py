"""Authorization server metadata (RFC 8414 §2), served at
``/.well-known/oauth-authorization-server``.

The endpoints are athkit's /oauth/* surface; ``client_id_metadata_document_supported`` tells
MCP clients they may use an https URL as client_id (draft-ietf-oauth-client-id-metadata-document),
and ``authorization_response_iss_parameter_supported`` announces RFC 9207.
"""

from __future__ import annotations

from typing import Any

from athkit.core.settings import ATHSettings

#: Paths of the /oauth/* endpoints, relative to the issuer.
AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"
REGISTER_PATH = "/oauth/register"
REVOKE_PATH = "/oauth/revoke"
INTROSPECT_PATH = "/oauth/introspect"
JWKS_PATH = "/oauth/jwks.json"
AS_METADATA_PATH = "/.well-known/oauth-authorization-server"

TOKEN_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]


def endpoint(settings: ATHSettings, path: str) -> str:
    return settings.issuer + path


def authorization_server_metadata(settings: ATHSettings, scopes: list[str]) -> dict[str, Any]:
    """The RFC 8414 document of this service or gateway."""
    auth_methods = list(TOKEN_AUTH_METHODS)
    doc: dict[str, Any] = {
        "issuer": settings.issuer,
        "authorization_endpoint": endpoint(settings, AUTHORIZE_PATH),
        "token_endpoint": endpoint(settings, TOKEN_PATH),
        "registration_endpoint": endpoint(settings, REGISTER_PATH),
        "revocation_endpoint": endpoint(settings, REVOKE_PATH),
        "introspection_endpoint": endpoint(settings, INTROSPECT_PATH),
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "EdDSA"],
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": True,
        "ath_discovery": f"{settings.public_url}/.well-known/ath-app.json",
    }
    if settings.access_token_format == "jwt":
        doc["jwks_uri"] = endpoint(settings, JWKS_PATH)
    return doc

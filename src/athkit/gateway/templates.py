"""Built-in provider templates: endpoints, scopes with descriptions, a conservative route map.

``athkit gateway add-provider github`` (or the console's "start from a template") writes one
of these as a ``[[providers]]`` table for an operator to review: fill in ``client_id``, set
the secret's environment variable, and widen the route map only on purpose. Every route maps
to the narrowest scope that covers it; anything not listed is refused by the proxy.
"""

from __future__ import annotations

from typing import Any

import tomli_w

_GITHUB: dict[str, Any] = {
    "provider_id": "github",
    "display_name": "GitHub",
    "categories": ["code"],
    "authorization_endpoint": "https://github.com/login/oauth/authorize",
    "token_endpoint": "https://github.com/login/oauth/access_token",
    "userinfo_endpoint": "https://api.github.com/user",
    # GitHub's /user carries the numeric account id as "id", not an OIDC "sub".
    "user_id_claim": "id",
    "client_id": "REPLACE-with-your-OAuth-app-client-id",
    "client_secret_env": "GITHUB_CLIENT_SECRET",
    "token_endpoint_auth_method": "client_secret_post",
    "upstream_scopes": [],
    "api_base": "https://api.github.com",
    # GitHub has no RFC 7009 endpoint: forget the token when the last ATH grant goes.
    "on_last_revoke": "forget",
    "scopes": {
        "github:profile": {"description": "Read your GitHub profile", "upstream": ["read:user"]},
        "github:repos.read": {
            "description": "Read your repositories, issues and pull requests (public and private)",
            "upstream": ["repo"],
        },
        "github:issues.write": {
            "description": "Open and comment on issues in your repositories",
            "upstream": ["repo"],
        },
    },
    "routes": [
        {"method": "GET", "path": "/user", "scope": "github:profile"},
        {"method": "GET", "path": "/user/repos", "scope": "github:repos.read"},
        {"method": "GET", "path": "/repos/{owner}/{repo}", "scope": "github:repos.read"},
        {"method": "GET", "path": "/repos/{owner}/{repo}/issues", "scope": "github:repos.read"},
        {"method": "GET", "path": "/repos/{owner}/{repo}/pulls", "scope": "github:repos.read"},
        {"method": "POST", "path": "/repos/{owner}/{repo}/issues", "scope": "github:issues.write"},
        {
            "method": "POST",
            "path": "/repos/{owner}/{repo}/issues/{number}/comments",
            "scope": "github:issues.write",
        },
    ],
}

_GOOGLE: dict[str, Any] = {
    "provider_id": "google",
    "display_name": "Google",
    "categories": ["email", "calendar", "files"],
    "issuer": "https://accounts.google.com",
    "client_id": "REPLACE-with-your-client-id.apps.googleusercontent.com",
    "client_secret_env": "GOOGLE_CLIENT_SECRET",
    "upstream_scopes": ["openid", "email"],
    "api_base": "https://www.googleapis.com",
    "scopes": {
        "gmail:read": {
            "description": "Read your Gmail messages and labels",
            "upstream": ["https://www.googleapis.com/auth/gmail.readonly"],
        },
        "gmail:send": {
            "description": "Send email from your Gmail account",
            "upstream": ["https://www.googleapis.com/auth/gmail.send"],
        },
        "calendar:read": {
            "description": "See your Google Calendar events",
            "upstream": ["https://www.googleapis.com/auth/calendar.readonly"],
        },
        "drive:read": {
            "description": "See and download your Google Drive files",
            "upstream": ["https://www.googleapis.com/auth/drive.readonly"],
        },
    },
    "routes": [
        {"method": "GET", "path": "/gmail/v1/users/me/messages", "scope": "gmail:read"},
        {"method": "GET", "path": "/gmail/v1/users/me/messages/{id}", "scope": "gmail:read"},
        {"method": "GET", "path": "/gmail/v1/users/me/labels", "scope": "gmail:read"},
        {"method": "POST", "path": "/gmail/v1/users/me/messages/send", "scope": "gmail:send"},
        {
            "method": "GET",
            "path": "/calendar/v3/calendars/{calendar}/events",
            "scope": "calendar:read",
        },
        {"method": "GET", "path": "/drive/v3/files", "scope": "drive:read"},
        {"method": "GET", "path": "/drive/v3/files/{id}", "scope": "drive:read"},
    ],
}

_SLACK: dict[str, Any] = {
    "provider_id": "slack",
    "display_name": "Slack",
    "categories": ["chat"],
    # The user-token flow (oauth.v2.user.access): the token acts as the signed-in member.
    "authorization_endpoint": "https://slack.com/oauth/v2_user/authorize",
    "token_endpoint": "https://slack.com/api/oauth.v2.user.access",
    "userinfo_endpoint": "https://slack.com/api/auth.test",
    "user_id_claim": "user_id",
    "revocation_endpoint": None,
    "client_id": "REPLACE-with-your-Slack-app-client-id",
    "client_secret_env": "SLACK_CLIENT_SECRET",
    "upstream_scopes": [],
    "api_base": "https://slack.com/api",
    "on_last_revoke": "forget",
    "scopes": {
        "slack:channels.read": {
            "description": "See the public channels in your workspace",
            "upstream": ["channels:read"],
        },
        "slack:history.read": {
            "description": "Read messages in public channels you are in",
            "upstream": ["channels:history"],
        },
        "slack:post": {
            "description": "Post messages as you",
            "upstream": ["chat:write"],
        },
    },
    "routes": [
        {"method": "GET", "path": "/conversations.list", "scope": "slack:channels.read"},
        {"method": "GET", "path": "/conversations.history", "scope": "slack:history.read"},
        {"method": "POST", "path": "/chat.postMessage", "scope": "slack:post"},
    ],
}

_MICROSOFT: dict[str, Any] = {
    "provider_id": "microsoft",
    "display_name": "Microsoft 365",
    "categories": ["email", "calendar", "files"],
    # The "common" endpoint (any work, school or personal account). Its discovery document
    # names a templated issuer, so the endpoints are given explicitly.
    "authorization_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    "token_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
    "jwks_uri": "https://login.microsoftonline.com/common/discovery/v2.0/keys",
    "client_id": "REPLACE-with-your-application-client-id",
    "client_secret_env": "MICROSOFT_CLIENT_SECRET",
    "upstream_scopes": ["openid", "offline_access", "User.Read"],
    "api_base": "https://graph.microsoft.com/v1.0",
    "on_last_revoke": "forget",
    "scopes": {
        "m365:profile": {"description": "Read your profile", "upstream": ["User.Read"]},
        "mail:read": {"description": "Read your Outlook mail", "upstream": ["Mail.Read"]},
        "mail:send": {"description": "Send mail as you", "upstream": ["Mail.Send"]},
        "calendar:read": {"description": "Read your calendar", "upstream": ["Calendars.Read"]},
        "files:read": {"description": "Read your OneDrive files", "upstream": ["Files.Read"]},
    },
    "routes": [
        {"method": "GET", "path": "/me", "scope": "m365:profile"},
        {"method": "GET", "path": "/me/messages", "scope": "mail:read"},
        {"method": "GET", "path": "/me/messages/{id}", "scope": "mail:read"},
        {"method": "POST", "path": "/me/sendMail", "scope": "mail:send"},
        {"method": "GET", "path": "/me/events", "scope": "calendar:read"},
        {"method": "GET", "path": "/me/drive/root/children", "scope": "files:read"},
    ],
}

TEMPLATES: dict[str, dict[str, Any]] = {
    "github": _GITHUB,
    "google": _GOOGLE,
    "slack": _SLACK,
    "microsoft": _MICROSOFT,
}


def template(name: str) -> dict[str, Any]:
    """A fresh copy of one template's provider table (without keys whose value is None)."""
    data = TEMPLATES[name]
    return {k: v for k, v in data.items() if v is not None}


def template_toml(name: str) -> str:
    """The template as a ``[[providers]]`` TOML table, ready to append to a gateway file."""
    head = (
        f"# {TEMPLATES[name]['display_name']} (athkit template '{name}'): review before use.\n"
        "# Register {public_url}/ath/callback and {public_url}/ath/user/callback as redirect\n"
        "# URIs at the provider, put the client id below and the secret in the named env var.\n"
    )
    return head + tomli_w.dumps({"providers": [template(name)]})

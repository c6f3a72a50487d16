"""Who the user is at a gateway: "sign in with the provider" (OIDC, PKCE), for the user pages.

A gateway has no accounts of its own. Its user pages (the handshake's key linking and
out-of-band confirmation page) ask the user to sign in at one of the configured providers; the
gateway learns the user's ``sub`` (account ``"<provider_id>:<sub>"``) and keeps the grant the
provider gave, sealed like every upstream token, keyed to the user rather than to one agent. A
handshake session confirmed by that user then reaches the provider's API through the proxy with
that grant, within the scopes the user confirmed (docs/handshake.md, "Gateway deployments").

Sign-in state and the signed-in session are sealed cookies (AES-256-GCM with the gateway's
keyring, associated data naming their purpose), HTTP-only and SameSite=Lax.
"""

from __future__ import annotations

import hmac
import json
from html import escape
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from athkit.core.secrets import new_secret
from athkit.core.workers import run_in_worker
from athkit.crypto.sealing import SealError
from athkit.gateway.service import USER_GRANT_CLIENT, GatewayService
from athkit.protocol.errors import ATHError, ErrorCode

SIGNIN_COOKIE = "ath_signin"
USER_COOKIE = "ath_user"
SIGNIN_TTL = 600
USER_SESSION_TTL = 8 * 3600
SIGNIN_PATH = "/ath/user/signin"
CALLBACK_PATH = "/ath/user/callback"


def _safe_next(target: str) -> str:
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/ath/confirmations/page"
    return target


def _query(provider_id: str, target: str) -> str:
    return urlencode({"provider": provider_id, "next": target})


class GatewayUsers:
    """Sign-in with a provider and the signed-in user's sealed session cookie."""

    def __init__(self, svc: GatewayService) -> None:
        self.svc = svc

    def _seal(self, payload: dict[str, object], purpose: str) -> str:
        return self.svc.sealer.seal(json.dumps(payload), purpose)

    def _open(self, value: str | None, purpose: str) -> dict[str, object] | None:
        if not value:
            return None
        try:
            data = json.loads(self.svc.sealer.open(value, purpose))
        except (SealError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("e"), int | float):
            return None
        return data if data["e"] > self.svc.clock() else None

    def current_user(self, request: Request) -> str | None:
        """The signed-in account (``"<provider_id>:<sub>"``), or None."""
        data = self._open(request.cookies.get(USER_COOKIE), "ath-user-session")
        account = data.get("a") if data else None
        return account if isinstance(account, str) else None

    def _cookie_secure(self) -> bool:
        return self.svc.settings.cookie_secure

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        svc = self.svc
        callback_url = f"{svc.settings.public_url}{CALLBACK_PATH}"

        @router.get(SIGNIN_PATH)
        async def signin(request: Request) -> Response:
            target = _safe_next(request.query_params.get("next", ""))
            provider_id = request.query_params.get("provider")
            if provider_id is None and len(svc.config.providers) > 1:
                links = "".join(
                    f'<li><a href="{SIGNIN_PATH}?{escape(_query(p.provider_id, target))}">'
                    f"{escape(p.display_name)}</a></li>"
                    for p in svc.config.providers
                )
                return HTMLResponse(f"<h1>Sign in</h1><p>Sign in with:</p><ul>{links}</ul>")
            cfg = svc.provider_config(provider_id or svc.config.providers[0].provider_id)
            state, verifier = new_secret("", 32), new_secret("", 48)
            scopes = cfg.upstream_scopes_for(list(cfg.scopes))
            url = svc.providers[cfg.provider_id].authorization_url(
                state=state, code_verifier=verifier, redirect_uri=callback_url, scopes=scopes
            )
            resp = RedirectResponse(url, status_code=303)
            cookie = self._seal(
                {
                    "s": state,
                    "v": verifier,
                    "p": cfg.provider_id,
                    "n": target,
                    "e": svc.clock() + SIGNIN_TTL,
                },
                "ath-user-signin",
            )
            resp.set_cookie(
                SIGNIN_COOKIE,
                cookie,
                max_age=SIGNIN_TTL,
                path="/ath/user",
                httponly=True,
                samesite="lax",
                secure=self._cookie_secure(),
            )
            return resp

        @router.get(CALLBACK_PATH)
        async def callback(request: Request) -> Response:
            pending = self._open(request.cookies.get(SIGNIN_COOKIE), "ath-user-signin")
            state = request.query_params.get("state", "")
            expected = str(pending.get("s", "")) if pending else ""
            if not pending or not state or not hmac.compare_digest(state, expected):
                raise ATHError(
                    ErrorCode.STATE_MISMATCH, "this sign-in did not start in this browser"
                )
            if request.query_params.get("error"):
                raise ATHError(ErrorCode.USER_DENIED, "the sign-in was cancelled at the provider")
            provider_id, verifier = str(pending["p"]), str(pending["v"])
            code = request.query_params.get("code") or ""
            sub = await run_in_worker(
                svc.sign_in_user, provider_id, code, verifier, callback_url
            )
            resp = RedirectResponse(_safe_next(str(pending.get("n", ""))), status_code=303)
            session = self._seal(
                {"a": f"{provider_id}:{sub}", "e": svc.clock() + USER_SESSION_TTL},
                "ath-user-session",
            )
            resp.set_cookie(
                USER_COOKIE,
                session,
                max_age=USER_SESSION_TTL,
                path="/ath",
                httponly=True,
                samesite="lax",
                secure=self._cookie_secure(),
            )
            resp.delete_cookie(SIGNIN_COOKIE, path="/ath/user")
            return resp

        return router


__all__ = ["USER_GRANT_CLIENT", "GatewayUsers", "SIGNIN_PATH"]

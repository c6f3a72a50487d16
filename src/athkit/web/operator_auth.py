"""Operator sign-in for the console: ``/ath/operator/signin`` and ``/ath/operator/signout``.

The session cookie holds a random token (the database keeps its hash): HttpOnly,
SameSite=Strict, and Secure with the ``__Host-`` prefix whenever the public URL is https. The
sign-in form carries the console's CSRF token (no login CSRF) and is rate limited per address
and per name (:func:`athkit.core.operators.signin_allowed`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import RedirectResponse, Response

from athkit.core.operators import SESSION_TTL, OperatorAccounts
from athkit.core.workers import run_in_worker
from athkit.protocol.errors import ATHError
from athkit.web.console import (
    OPERATOR_SIGNIN_KEY,
    checked_form,
    install_signin_redirects,
    render_page,
)

SIGNIN_PATH = "/ath/operator/signin"
SIGNOUT_PATH = "/ath/operator/signout"
DEFAULT_NEXT = "/ath/console/agents"


def _safe_next(target: str) -> str:
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/ath/") or "\\" in target:
        return DEFAULT_NEXT
    return target


class OperatorSessions:
    """Who the operator is (from the session cookie) and the sign-in routes."""

    def __init__(self, accounts: OperatorAccounts, *, secure: bool) -> None:
        """``secure``: the site is served over https (Secure, ``__Host-`` cookie)."""
        self.accounts = accounts
        self.secure = secure
        self.cookie = "__Host-ath_operator" if self.secure else "ath_operator"

    async def __call__(self, request: Request) -> str | None:
        """The ``is_operator`` check of the console: the signed-in operator's name, or None."""
        token = request.cookies.get(self.cookie)
        if not token:
            return None
        return await run_in_worker(self.accounts.operator_for, token)

    def mount(self, app: FastAPI) -> None:
        setattr(app.state, OPERATOR_SIGNIN_KEY, SIGNIN_PATH)
        app.include_router(self.router())
        install_signin_redirects(app)

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)

        def form_page(
            request: Request, error: str | None, status: int = 200, nxt: str | None = None
        ) -> Response:
            nxt = _safe_next(nxt or request.query_params.get("next", DEFAULT_NEXT))
            resp = render_page(request, "operator_signin.html", {"error": error, "next": nxt})
            resp.status_code = status
            return resp

        @router.get(SIGNIN_PATH)
        async def signin_page(request: Request) -> Response:
            return form_page(request, None)

        @router.post(SIGNIN_PATH)
        async def signin(request: Request) -> Response:
            form = await checked_form(request)
            client = request.client.host if request.client else "unknown"
            try:
                token = await run_in_worker(
                    self.accounts.sign_in,
                    str(form.get("name") or "")[:128],
                    str(form.get("password") or "")[:1024],
                    str(form.get("code") or "")[:16] or None,
                    client,
                )
            except ATHError as exc:
                return form_page(request, exc.message, exc.status, str(form.get("next") or ""))
            resp = RedirectResponse(_safe_next(str(form.get("next") or "")), status_code=303)
            resp.set_cookie(
                self.cookie,
                token,
                max_age=SESSION_TTL,
                path="/",
                httponly=True,
                samesite="strict",
                secure=self.secure,
            )
            return resp

        @router.post(SIGNOUT_PATH)
        async def signout(request: Request) -> Response:
            await checked_form(request)
            await run_in_worker(self.accounts.sign_out, request.cookies.get(self.cookie))
            resp = RedirectResponse(SIGNIN_PATH, status_code=303)
            resp.delete_cookie(self.cookie, path="/", secure=self.secure, httponly=True)
            return resp

        return router

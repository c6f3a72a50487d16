"""The native authorization endpoint, consent page and callback (PROTOCOL.md §5, RFC 6749 §4.1).

``GET /ath/oauth/authorize`` checks the request against its ATH session, asks the host app who
the signed-in user is (redirecting to its login page if nobody is), binds this browser to the
session with an HTTP-only cookie, and shows the consent page. ``POST`` records the decision and
issues a one-time code (PKCE-bound) to ``/ath/callback``, which checks browser binding and
``state``, redeems the code, and sends the browser to the agent's ``user_redirect_uri`` or to a
"done" page.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from athkit.asgi.app_service import service_of
from athkit.asgi.pages import PAGE_HEADERS, CurrentUser, resolve_user, templates
from athkit.core.consent import BrowserBinding, ConsentContext
from athkit.core.workers import run_step
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.models import SessionRow

__all__ = ["PAGE_HEADERS", "CurrentUser", "build_consent_router", "resolve_user"]


def build_consent_router(current_user: CurrentUser | None) -> APIRouter:
    """Consent routes. ``current_user=None`` (gateway mode): the user is identified later by
    the upstream provider, so the page asks for no sign-in here."""
    router = APIRouter(include_in_schema=False)

    async def user_of(request: Request) -> str | None:
        return None if current_user is None else await resolve_user(current_user, request)

    @router.get("/ath/oauth/authorize")
    async def authorize_page(request: Request) -> Response:
        svc = service_of(request)
        params = dict(request.query_params)
        user = await user_of(request)
        signed_in = user is not None or current_user is None
        cookies = request.cookies

        def open_page() -> tuple[SessionRow, BrowserBinding | None, ConsentContext | None]:
            """One trip to the worker pool: the session, then (signed in) binding and page."""
            session = svc.session_for_oauth_request(params)
            if not signed_in:
                return session, None, None
            binding = svc.bind_browser(session, cookies.get(svc.binding_cookie_name(session)))
            return session, binding, svc.consent_context(session)

        session, binding, ctx = await run_step(svc.steps_on_loop, open_page)
        if binding is None or ctx is None:
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            target = f"{svc.settings.login_url}?{urlencode({'next': here})}"
            return RedirectResponse(target, status_code=303)
        headers = dict(PAGE_HEADERS)
        redirect = session.user_redirect_uri
        if redirect and redirect != svc.settings.callback_url:
            # Browsers apply form-action to the redirects after the submit: allow the one
            # registered redirect the decision ends at (an agent's or an OAuth client's).
            parts = urlsplit(redirect)
            origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"
            headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
                "form-action 'self'", f"form-action 'self' {origin}"
            )
        resp = templates.TemplateResponse(
            request,
            "consent.html",
            {
                "ctx": ctx,
                "user": user,
                "csrf": binding.csrf_token,
                "app_name": svc.settings.app_name,
                "provider_name": svc.provider_display_name(session.provider_id),
            },
            headers=headers,
        )
        resp.set_cookie(
            binding.cookie_name,
            binding.cookie_value,
            max_age=svc.settings.session_ttl,
            path="/ath",
            httponly=True,
            secure=svc.settings.cookie_secure,
            samesite="lax",
        )
        return resp

    @router.post("/ath/oauth/authorize")
    async def submit(request: Request) -> Response:
        svc = service_of(request)
        form = await request.form(max_files=0, max_fields=100)
        user = await user_of(request)
        if user is None and current_user is not None:
            raise ATHError(ErrorCode.LOGIN_REQUIRED, "sign in to decide on this authorization")
        state = str(form.get("state") or "")
        target = await run_step(
            svc.steps_on_loop,
            lambda: svc.submit_consent(
                oauth_state=state,
                cookies=request.cookies,
                csrf_token=str(form.get("csrf") or ""),
                user_id=user,
                approve=form.get("decision") == "approve",
                scopes=[str(s) for s in form.getlist("scope")],
            ),
        )
        return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})

    @router.get("/ath/callback")
    async def callback(request: Request) -> Response:
        svc = service_of(request)
        q = request.query_params
        state = q.get("state")
        if not state:
            # The SDKs' final redirect to our own callback: nothing left to do here (§6).
            return templates.TemplateResponse(
                request,
                "done.html",
                {"approved": True, "agent_name": None, "scopes": []},
                headers=PAGE_HEADERS,
            )
        outcome = await run_step(
            svc.steps_on_loop,
            lambda: svc.callback(
                state=state, code=q.get("code"), error=q.get("error"), cookies=request.cookies
            ),
        )
        if outcome.redirect_to:
            resp: Response = RedirectResponse(outcome.redirect_to, status_code=303)
        else:
            resp = templates.TemplateResponse(
                request,
                "done.html",
                {
                    "approved": outcome.approved,
                    "agent_name": outcome.agent_name,
                    "scopes": outcome.scopes,
                },
                headers=PAGE_HEADERS,
            )
        resp.delete_cookie(outcome.binding_cookie, path="/ath")
        return resp

    return router

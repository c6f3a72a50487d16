"""Pages for people: "my agents" for users, the operator console (approvals, audit), metrics.

Users revoke an agent's access through their own signed-in channel (PROTOCOL.md §8); operators
decide on pending agents (approve with chosen scopes, deny with a reason, suspend, reactivate,
§4) and read, filter and export the audit log (§11). Forms use a double-submit CSRF token (an
HTTP-only, SameSite=Strict cookie mirrored in a hidden field); every page is sent with
:data:`~athkit.oauth.consent.PAGE_HEADERS` (no caching, no framing, a strict CSP) and rendered by
autoescaping templates. Native services, the gateway and the registry mount these same routes.
"""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response, StreamingResponse

from athkit.core import audit_events as ev
from athkit.core.agent_decisions import decide
from athkit.core.audit_export import iter_csv, iter_json
from athkit.core.metrics import exposition
from athkit.core.secrets import new_secret
from athkit.core.workers import run_in_worker
from athkit.oauth.consent import PAGE_HEADERS, CurrentUser, resolve_user
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.audit_query import AuditFilter, audit_all, audit_page
from athkit.web.errors import templates
from athkit.web.routes import service_of

#: Says whether the request comes from an operator: the operator's name, or True (unnamed).
IsOperator = Callable[[Request], "bool | str | None | Awaitable[bool | str | None]"]
CSRF_COOKIE = "ath_console_csrf"
#: App-state keys holding the sign-in page paths browsers are sent to (when the app has them).
USER_SIGNIN_KEY = "athkit_user_signin"
OPERATOR_SIGNIN_KEY = "athkit_operator_signin"
AUDIT_PAGE = 100
EXPORT_MAX_ROWS = 100_000


async def operator_name(check: IsOperator | None, request: Request) -> str | None:
    """The operator behind ``request`` (``"console"`` when the check only says yes), or None."""
    if check is None:
        return None
    result = check(request)
    if inspect.isawaitable(result):
        result = await result
    if isinstance(result, str):
        return result or None
    return "console" if result else None


class SignInRequired(ATHError):
    """A browser asked for a page without being signed in: send it to the sign-in page."""

    def __init__(self, code: ErrorCode, message: str, location: str) -> None:
        super().__init__(code, message)
        self.location = location


def _signin_or(request: Request, state_key: str, code: ErrorCode, message: str) -> ATHError:
    """Browsers (GET, HTML) go to the app's sign-in page when it has one; others get JSON."""
    signin = getattr(request.app.state, state_key, None)
    html = request.method == "GET" and "text/html" in request.headers.get("accept", "")
    if isinstance(signin, str) and html:
        return SignInRequired(code, message, f"{signin}?{urlencode({'next': request.url.path})}")
    return ATHError(code, message)


def install_signin_redirects(app: FastAPI) -> None:
    async def redirect(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return RedirectResponse(exc.location, status_code=303)

    app.add_exception_handler(SignInRequired, redirect)


def render_page(request: Request, name: str, context: dict[str, object]) -> Response:
    """A console page with its CSRF token (cookie + hidden field) and the page headers.

    The cookie covers the whole site: the registry's admin API (under ``/api``) checks it too."""
    token = request.cookies.get(CSRF_COOKIE) or new_secret("", 24)
    state = request.app.state
    extra = {
        "csrf": token,
        "nav_extra": getattr(state, "athkit_console_extra", []),
        "operator_signout": getattr(state, OPERATOR_SIGNIN_KEY, None) is not None,
    }
    resp = templates.TemplateResponse(request, name, {**context, **extra}, headers=PAGE_HEADERS)
    svc = getattr(request.app.state, "athkit", None)  # the registry has no ATH service
    secure = svc.settings.cookie_secure if svc is not None else request.url.scheme == "https"
    resp.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path="/", secure=secure)
    return resp


def csrf_header_ok(request: Request) -> bool:
    """For JSON admin calls: ``X-CSRF-Token`` equals the console's CSRF cookie."""
    sent = request.headers.get("x-csrf-token", "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return bool(sent and cookie) and hmac.compare_digest(sent, cookie)


async def checked_form(request: Request) -> FormData:
    """The posted form, once its CSRF token matches the cookie."""
    form = await request.form(max_files=0, max_fields=200)
    sent = str(form.get("csrf") or "")
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    if not sent or not cookie or not hmac.compare_digest(sent, cookie):
        raise ATHError(ErrorCode.STATE_MISMATCH, "form token is not valid; reload the page")
    return form


def _when(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ATHError(
            ErrorCode.INVALID_REQUEST, f"{field} must be an ISO date or date-time"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def audit_filter(params: dict[str, str]) -> AuditFilter:
    """Console and API filters from query parameters (empty values mean "any")."""
    return AuditFilter(
        agent_id=params.get("agent_id") or None,
        user_id=params.get("user_id") or None,
        provider_id=params.get("provider_id") or None,
        event=params.get("event") or None,
        since=_when(params.get("since"), "since"),
        until=_when(params.get("until"), "until"),
    )


def build_console_router(
    current_user: CurrentUser | None, is_operator: IsOperator | None, metrics_token: str | None
) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def signed_in(request: Request) -> str:
        user = None if current_user is None else await resolve_user(current_user, request)
        if user is None:
            raise _signin_or(request, USER_SIGNIN_KEY, ErrorCode.LOGIN_REQUIRED, "sign in first")
        return user

    async def operator(request: Request) -> str:
        name = await operator_name(is_operator, request)
        if name is None:
            code = ErrorCode.OPERATOR_ONLY
            raise _signin_or(request, OPERATOR_SIGNIN_KEY, code, "operators only")
        return name

    @router.get("/ath/my/agents")
    async def my_agents(request: Request) -> Response:
        user = await signed_in(request)
        grants = await run_in_worker(service_of(request).user_grants, user)
        return render_page(request, "my_agents.html", {"user": user, "grants": grants})

    @router.post("/ath/my/agents/revoke")
    async def my_agents_revoke(request: Request) -> Response:
        user = await signed_in(request)
        form = await checked_form(request)
        await run_in_worker(
            service_of(request).revoke_for_user, user, str(form.get("client_id") or "")
        )
        return RedirectResponse("/ath/my/agents", status_code=303)

    @router.get("/ath/console/agents")
    async def console_agents(request: Request) -> Response:
        await operator(request)
        svc = service_of(request)
        agents = await run_in_worker(svc.store.list_agents, request.query_params.get("status"))
        return render_page(
            request, "console_agents.html", {"agents": agents, "supported": svc.supported}
        )

    @router.post("/ath/console/agents/decision")
    async def console_decide(request: Request) -> Response:
        name = await operator(request)
        form = await checked_form(request)
        svc = service_of(request)
        decision = str(form.get("decision") or "")
        ticked = [str(v).split(" ", 1) for v in form.getlist("scope")]
        scopes = [(p[0], p[1]) for p in ticked if len(p) == 2] if decision == "approve" else None
        await run_in_worker(
            lambda: decide(
                svc,
                str(form.get("client_id") or ""),
                decision,
                operator=name,
                reason=str(form.get("reason") or ""),
                scopes=scopes if form.get("choose_scopes") else None,
            )
        )
        return RedirectResponse("/ath/console/agents", status_code=303)

    @router.get("/ath/console/audit")
    async def console_audit(request: Request) -> Response:
        await operator(request)
        svc = service_of(request)
        params = dict(request.query_params)
        flt = audit_filter(params)
        fmt = params.get("format")
        if fmt in ("csv", "json"):
            rows = audit_all(svc.store.db, flt, max_rows=EXPORT_MAX_ROWS)
            body = iter_csv(rows) if fmt == "csv" else iter_json(rows)
            media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
            headers = {
                **PAGE_HEADERS,
                "Content-Disposition": f'attachment; filename="athkit-audit.{fmt}"',
            }
            return StreamingResponse(body, media_type=media, headers=headers)
        before = params.get("before")
        if before is not None and not before.isdigit():
            raise ATHError(ErrorCode.INVALID_REQUEST, "before must be a row id")
        rows_page = await run_in_worker(
            lambda: audit_page(
                svc.store.db, flt, before=int(before) if before else None, limit=AUDIT_PAGE
            )
        )
        keep = {k: v for k, v in params.items() if k != "before" and v}
        more = (
            "?" + urlencode({**keep, "before": rows_page[-1].id})
            if len(rows_page) == AUDIT_PAGE
            else None
        )
        exports = {f: "?" + urlencode({**keep, "format": f}) for f in ("csv", "json")}
        return render_page(
            request,
            "console_audit.html",
            {
                "rows": rows_page,
                "filters": keep,
                "events": ev.GUIDANCE_EVENTS,
                "more": more,
                "exports": exports,
            },
        )

    @router.get("/ath/metrics")
    async def metrics(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        by_token = bool(metrics_token) and hmac.compare_digest(
            auth.encode(), f"Bearer {metrics_token}".encode()
        )
        if not by_token:
            await operator(request)
        return Response(exposition(), media_type="text/plain; version=0.0.4")

    return router

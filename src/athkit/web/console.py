"""Pages for people: "my agents" for users, the operator console (approvals, audit), metrics.

Users revoke an agent's access through their own signed-in channel (PROTOCOL.md §8); operators
decide on pending agents and suspend or deny agents (§4) and read the audit log (§11). Forms use
a double-submit CSRF token (an HTTP-only, SameSite=Strict cookie mirrored in a hidden field).
"""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from athkit.core.metrics import exposition
from athkit.core.secrets import new_secret
from athkit.core.workers import run_in_worker
from athkit.oauth.consent import PAGE_HEADERS, CurrentUser, resolve_user
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.web.errors import templates
from athkit.web.routes import service_of

IsOperator = Callable[[Request], "bool | Awaitable[bool]"]
CSRF_COOKIE = "ath_console_csrf"


async def _is_operator(check: IsOperator | None, request: Request) -> bool:
    if check is None:
        return False
    result = check(request)
    if inspect.isawaitable(result):
        result = await result
    return bool(result)


def _page(request: Request, name: str, context: dict[str, object]) -> Response:
    token = request.cookies.get(CSRF_COOKIE) or new_secret("", 24)
    resp = templates.TemplateResponse(
        request, name, {**context, "csrf": token}, headers=PAGE_HEADERS
    )
    secure = service_of(request).settings.cookie_secure
    resp.set_cookie(
        CSRF_COOKIE, token, httponly=True, samesite="strict", path="/ath", secure=secure
    )
    return resp


async def _check_csrf(request: Request) -> dict[str, str]:
    form = await request.form(max_files=0, max_fields=20)
    sent = str(form.get("csrf") or "")
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    if not sent or not cookie or not hmac.compare_digest(sent, cookie):
        raise ATHError(ErrorCode.STATE_MISMATCH, "form token is not valid; reload the page")
    return {k: str(v) for k, v in form.items()}


def build_console_router(
    current_user: CurrentUser | None, is_operator: IsOperator | None, metrics_token: str | None
) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def signed_in(request: Request) -> str:
        user = None if current_user is None else await resolve_user(current_user, request)
        if user is None:
            raise ATHError(ErrorCode.LOGIN_REQUIRED, "sign in first")
        return user

    async def operator(request: Request) -> None:
        if not await _is_operator(is_operator, request):
            raise ATHError(ErrorCode.OPERATOR_ONLY, "operators only")

    @router.get("/ath/my/agents")
    async def my_agents(request: Request) -> Response:
        user = await signed_in(request)
        grants = await run_in_worker(service_of(request).user_grants, user)
        return _page(request, "my_agents.html", {"user": user, "grants": grants})

    @router.post("/ath/my/agents/revoke")
    async def my_agents_revoke(request: Request) -> Response:
        user = await signed_in(request)
        form = await _check_csrf(request)
        await run_in_worker(
            service_of(request).revoke_for_user, user, form.get("client_id", "")
        )
        return RedirectResponse("/ath/my/agents", status_code=303)

    @router.get("/ath/console/agents")
    async def console_agents(request: Request) -> Response:
        await operator(request)
        svc = service_of(request)
        agents = await run_in_worker(svc.store.list_agents, request.query_params.get("status"))
        return _page(request, "console_agents.html", {"agents": agents})

    @router.post("/ath/console/agents/decision")
    async def console_decide(request: Request) -> Response:
        await operator(request)
        form = await _check_csrf(request)
        svc = service_of(request)
        status = {"approve": "approved", "deny": "denied", "suspend": "suspended"}.get(
            form.get("decision", "")
        )
        if status is None:
            raise ATHError(ErrorCode.INVALID_REQUEST, "decision must be approve, deny or suspend")
        await run_in_worker(
            lambda: svc.decide_agent(
                form.get("client_id", ""), status, actor="console", reason=form.get("reason")
            )
        )
        return RedirectResponse("/ath/console/agents", status_code=303)

    @router.get("/ath/console/audit")
    async def console_audit(request: Request) -> Response:
        await operator(request)
        svc = service_of(request)
        rows = await run_in_worker(
            lambda: svc.store.list_audit(agent_id=request.query_params.get("agent_id"), limit=200)
        )
        return _page(request, "console_audit.html", {"rows": rows})

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

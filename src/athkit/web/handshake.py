"""HTTP endpoints of the 9-step handshake (docs/handshake.md) and the user's pages.

Agent-facing JSON: ``POST /ath/handshake``, ``…/{id}/identity``, ``…/{id}/scope``,
``GET …/{id}/result?wait=``, ``POST …/{id}/complete``. User-facing: the confirmation list
(``GET /ath/confirmations``, signed-in user or ``X-ATH-User-Proof``), the signed answer
(``POST /ath/confirmations/{request_id}``), and two pages for the signed-in user: linking a
browser key (``/ath/user/keys``) and approving or denying (``/ath/confirmations/page``), both
signing with WebCrypto in the browser (``/ath/static/handshake.js``).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from athkit.core.handshake import (
    MAX_WAIT,
    CompleteBody,
    ConfirmationResponseBody,
    HandshakeRequestBody,
    HandshakeService,
    IdentityProofBody,
    KeyLinkBody,
    ScopeRequestBody,
)
from athkit.core.workers import run_in_worker
from athkit.oauth.consent import CurrentUser, resolve_user
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.web.body import read_json_object
from athkit.web.errors import templates
from athkit.web.openapi import json_body

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
STATIC = Path(__file__).parent / "static"

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; connect-src 'self'; "
        "style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}


def handshake_of(request: Request) -> HandshakeService:
    hs = getattr(request.app.state, "athkit_handshake", None)
    if not isinstance(hs, HandshakeService):
        raise ATHError(ErrorCode.NOT_FOUND, "the handshake is not enabled on this service")
    return hs


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _same_origin(request: Request, public_url: str) -> bool:
    """Browser POSTs must come from our own pages (a missing Origin is a non-browser client)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    p = urlsplit(public_url)
    return origin.rstrip("/") == f"{p.scheme}://{p.netloc}"


def build_handshake_router(current_user: CurrentUser | None) -> APIRouter:
    """The handshake routes. ``current_user=None`` (gateway): no pages; the CLI and the
    webhook answer confirmations."""
    router = APIRouter(tags=["ATH handshake"])

    async def user_of(request: Request) -> str | None:
        return None if current_user is None else await resolve_user(current_user, request)

    def login_redirect(request: Request, hs: HandshakeService) -> Response:
        here = request.url.path
        target = f"{hs.settings.login_url}?{urlencode({'next': here})}"
        return RedirectResponse(target, status_code=303)

    # -- discovery ----------------------------------------------------------------------------

    @router.get("/.well-known/ath-handshake.json")
    async def metadata(request: Request) -> Response:
        return JSONResponse(
            handshake_of(request).metadata(), headers={"Cache-Control": "public, max-age=300"}
        )

    @router.get("/.well-known/did.json", include_in_schema=False)
    async def did_document(request: Request) -> Response:
        hs = handshake_of(request)
        if not hs.identity.did.startswith("did:web:"):
            raise ATHError(ErrorCode.NOT_FOUND, "this server's DID is not a did:web")
        return JSONResponse(
            hs.identity.did_document(),
            media_type="application/did+json",
            headers={"Cache-Control": "public, max-age=300"},
        )

    # -- the agent's steps --------------------------------------------------------------------

    @router.post("/ath/handshake", status_code=201, openapi_extra=json_body(HandshakeRequestBody))
    async def step1(request: Request) -> Response:
        hs = handshake_of(request)
        data = await read_json_object(request, hs.settings.max_body_bytes)
        res = await run_in_worker(hs.start, data, _client_ip(request))
        return JSONResponse(res.body, status_code=res.status, headers=NO_STORE)

    @router.post(
        "/ath/handshake/{handshake_id}/identity", openapi_extra=json_body(IdentityProofBody)
    )
    async def step3(handshake_id: str, request: Request) -> Response:
        hs = handshake_of(request)
        data = await read_json_object(request, hs.settings.max_body_bytes)
        res = await run_in_worker(hs.identify, handshake_id, data)
        return JSONResponse(res.body, status_code=res.status, headers=NO_STORE)

    @router.post("/ath/handshake/{handshake_id}/scope", openapi_extra=json_body(ScopeRequestBody))
    async def step5(handshake_id: str, request: Request) -> Response:
        hs = handshake_of(request)
        data = await read_json_object(request, hs.settings.max_body_bytes)
        res = await run_in_worker(hs.request_scopes, handshake_id, data)
        return JSONResponse(res.body, status_code=res.status, headers=NO_STORE)

    @router.get("/ath/handshake/{handshake_id}/result")
    async def step8(handshake_id: str, request: Request, wait: int = 0) -> Response:
        hs = handshake_of(request)
        deadline = time.monotonic() + max(0, min(wait, MAX_WAIT))
        while True:
            res = await run_in_worker(hs.result, handshake_id)
            if res.status != 202 or time.monotonic() >= deadline:
                break
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.2)
        return JSONResponse(res.body, status_code=res.status, headers=NO_STORE)

    @router.post("/ath/handshake/{handshake_id}/complete", openapi_extra=json_body(CompleteBody))
    async def step9(handshake_id: str, request: Request) -> Response:
        hs = handshake_of(request)
        data = await read_json_object(request, hs.settings.max_body_bytes)
        res = await run_in_worker(hs.complete, handshake_id, data)
        return JSONResponse(res.body, status_code=res.status, headers=NO_STORE)

    # -- the user's side ----------------------------------------------------------------------

    @router.get("/ath/confirmations")
    async def list_confirmations(request: Request) -> Response:
        hs = handshake_of(request)
        proof = request.headers.get("x-ath-user-proof")
        if proof:
            did = await run_in_worker(hs.user_from_proof, proof, "GET", request.url.path)
            dids = [did]
        else:
            account = await user_of(request)
            if account is None:
                raise ATHError(ErrorCode.INVALID_SIGNATURE, "sign in or send X-ATH-User-Proof")
            dids = await run_in_worker(hs.user_dids_of, account)
        items = await run_in_worker(hs.pending_for, dids)
        return JSONResponse({"confirmations": items}, headers=NO_STORE)

    @router.post(
        "/ath/confirmations/{request_id}", openapi_extra=json_body(ConfirmationResponseBody)
    )
    async def answer(request_id: str, request: Request) -> Response:
        hs = handshake_of(request)
        data = await read_json_object(request, hs.settings.max_body_bytes)
        res = await run_in_worker(hs.confirm, request_id, data)
        return JSONResponse(res, headers=NO_STORE)

    @router.get("/ath/confirmations/page", include_in_schema=False)
    async def confirmations_page(request: Request) -> Response:
        hs = handshake_of(request)
        account = await user_of(request)
        if account is None:
            if current_user is None:
                raise ATHError(ErrorCode.NOT_FOUND, "no confirmation page on this server")
            return login_redirect(request, hs)
        dids = await run_in_worker(hs.user_dids_of, account)
        items = await run_in_worker(hs.pending_for, dids)
        for item in items:
            item["expires_text"] = time.strftime(
                "%Y-%m-%d %H:%M:%S UTC", time.gmtime(item["expires_at"])
            )
            item["scope_texts"] = [(s, hs.scope_description(s)) for s in item["requested_scopes"]]
        return templates.TemplateResponse(
            request,
            "handshake_confirmations.html",
            {
                "account": account,
                "dids": dids,
                "items": items,
                "app_name": hs.settings.app_name,
                "server_did": hs.identity.did,
            },
            headers=PAGE_HEADERS,
        )

    @router.get("/ath/user/keys", include_in_schema=False)
    async def keys_page(request: Request) -> Response:
        hs = handshake_of(request)
        account = await user_of(request)
        if account is None:
            if current_user is None:
                raise ATHError(ErrorCode.NOT_FOUND, "no key page on this server")
            return login_redirect(request, hs)
        dids = await run_in_worker(hs.user_dids_of, account)
        return templates.TemplateResponse(
            request,
            "handshake_keys.html",
            {
                "account": account,
                "dids": dids,
                "app_name": hs.settings.app_name,
                "server_did": hs.identity.did,
            },
            headers=PAGE_HEADERS,
        )

    @router.post("/ath/user/keys", openapi_extra=json_body(KeyLinkBody))
    async def link_key(request: Request) -> Response:
        hs = handshake_of(request)
        account = await user_of(request)
        if account is None:
            raise ATHError(ErrorCode.USER_DENIED, "sign in to link a key to your account")
        if not _same_origin(request, hs.settings.public_url):
            raise ATHError(ErrorCode.INVALID_REQUEST, "cross-origin request refused")
        data = await read_json_object(request, hs.settings.max_body_bytes)
        res = await run_in_worker(hs.link_user_key, account, data)
        return JSONResponse(res, status_code=201, headers=NO_STORE)

    @router.get("/ath/static/handshake.js", include_in_schema=False)
    async def script() -> Response:
        return Response(
            (STATIC / "handshake.js").read_bytes(),
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    return router


def mount_handshake(
    app: Any,
    service: Any,
    policy: Any = None,
    current_user: CurrentUser | None = None,
) -> HandshakeService:
    """Enable the handshake on ``app`` (native :class:`~athkit.native.ATH` or the gateway):
    its routes, the encrypted-channel middleware (outermost, so it sees the path the agent
    signed) and ``app.state.athkit_handshake`` for ``require_scopes``."""
    from athkit.web.handshake_channel import HandshakeChannelMiddleware

    hs = HandshakeService(service, policy)
    app.state.athkit_handshake = hs
    app.include_router(build_handshake_router(current_user))
    app.add_middleware(
        HandshakeChannelMiddleware, max_body_bytes=4 * service.settings.max_body_bytes
    )
    return hs

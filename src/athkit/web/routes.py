"""The ATH JSON endpoints of a native service (PROTOCOL.md §2, §4–§6, §8)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from athkit.asgi.app_service import service_of as service_of  # re-exported: its old home
from athkit.core.workers import run_in_worker, run_step
from athkit.oauth.client_auth import basic_credentials
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.messages import AuthorizeRequest, RegisterRequest, RevokeRequest, TokenRequest
from athkit.web.body import read_json
from athkit.web.openapi import json_body
from athkit.web.ratelimit import limit_agent

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def build_router(*, service_discovery: bool = True) -> APIRouter:
    """The ATH JSON endpoints; ``service_discovery`` adds ``/.well-known/ath-app.json``."""
    router = APIRouter(tags=["ATH"])

    if service_discovery:

        @router.get("/.well-known/ath-app.json")
        async def discovery(request: Request) -> Response:
            doc = service_of(request).discovery_document()
            return JSONResponse(
                doc.model_dump(exclude_none=True),
                headers={"Cache-Control": "public, max-age=300"},
            )

    @router.post("/ath/agents/register", status_code=201, openapi_extra=json_body(RegisterRequest))
    async def register(request: Request) -> Response:
        svc = service_of(request)
        req = await read_json(request, RegisterRequest, svc.settings.max_body_bytes)
        await limit_agent(request, "register", req.agent_id)
        await svc.prefetch_identity(req)  # on this loop: no thread hop for the fetch
        res = await run_step(svc.steps_on_loop, svc.register, req)
        return JSONResponse(res.model_dump(mode="json"), status_code=201, headers=NO_STORE)

    @router.get("/ath/agents/{client_id}")
    async def agent_status(client_id: str, request: Request) -> Response:
        svc = service_of(request)
        await limit_agent(request, "agent_status", client_id)
        creds = basic_credentials(request.headers.get("authorization"))
        attestation = request.headers.get("x-ath-attestation")
        if creds is not None:
            if creds[0] != client_id:
                raise ATHError(ErrorCode.INVALID_CLIENT, "client authentication failed")
            res = await run_in_worker(svc.agent_status, client_id, client_secret=creds[1])
        elif attestation:
            res = await run_in_worker(svc.agent_status, client_id, attestation=attestation)
        else:
            raise ATHError(ErrorCode.INVALID_CLIENT, "authenticate with client_secret_basic")
        return JSONResponse(res.model_dump(mode="json"), headers=NO_STORE)

    @router.post("/ath/authorize", openapi_extra=json_body(AuthorizeRequest))
    async def authorize(request: Request) -> Response:
        svc = service_of(request)
        req = await read_json(request, AuthorizeRequest, svc.settings.max_body_bytes)
        await limit_agent(request, "authorize", req.client_id)
        res = await run_step(svc.steps_on_loop, svc.authorize, req)
        return JSONResponse(res.model_dump(), headers=NO_STORE)

    @router.post("/ath/token", openapi_extra=json_body(TokenRequest))
    async def token(request: Request) -> Response:
        svc = service_of(request)
        req = await read_json(request, TokenRequest, svc.settings.max_body_bytes)
        await limit_agent(request, "token", req.client_id)
        res = await run_step(svc.steps_on_loop, svc.exchange, req)
        return JSONResponse(res.model_dump(), headers=NO_STORE)

    @router.post("/ath/revoke", openapi_extra=json_body(RevokeRequest))
    async def revoke(request: Request) -> Response:
        svc = service_of(request)
        req = await read_json(request, RevokeRequest, svc.settings.max_body_bytes)
        await limit_agent(request, "revoke", req.client_id)
        await run_in_worker(svc.revoke, req)
        return JSONResponse({"revoked": True}, headers=NO_STORE)

    return router

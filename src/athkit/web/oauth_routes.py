"""HTTP adapter of the OAuth 2.1 authorization server (:class:`athkit.oauth.server.OAuthServer`).

Failures on /oauth/* are OAuth error responses (``{"error", "error_description"}``, RFC 6749
§5.2); the ATH body stays on /ath/*. Metadata documents are public and cacheable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from athkit.core.workers import run_in_worker
from athkit.oauth.errors import OAuthError, from_ath
from athkit.oauth.metadata import (
    AS_METADATA_PATH,
    AUTHORIZE_PATH,
    INTROSPECT_PATH,
    JWKS_PATH,
    REGISTER_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
)
from athkit.oauth.resource_metadata import WELL_KNOWN_PRM
from athkit.oauth.server import OAuthServer
from athkit.protocol.errors import ATHError
from athkit.web.body import read_body, read_json_object
from athkit.web.errors import templates
from athkit.web.routes import service_of

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
PUBLIC = {"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"}
FORM = "application/x-www-form-urlencoded"


def oauth_server_of(request: Request) -> OAuthServer:
    server = getattr(request.app.state, "athkit_oauth", None)
    if not isinstance(server, OAuthServer):
        server = OAuthServer(service_of(request))
        request.app.state.athkit_oauth = server
    return server


def oauth_error_response(err: OAuthError) -> JSONResponse:
    return JSONResponse(
        err.to_dict(), status_code=err.status, headers={**NO_STORE, **(err.headers or {})}
    )


async def _guarded(call: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await call()
    except OAuthError as err:
        return oauth_error_response(err)
    except ATHError as exc:
        return oauth_error_response(from_ath(exc))


async def read_form(request: Request, max_bytes: int) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body; a parameter sent twice is an error
    (RFC 6749 §3.2)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != FORM:
        raise OAuthError("invalid_request", f"send the body as {FORM}")
    raw = await read_body(request, max_bytes)
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError("invalid_request", "the form body is not valid") from exc
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise OAuthError("invalid_request", f"parameter {key} is repeated")
        form[key] = value
    return form


def build_oauth_router() -> APIRouter:
    """Discovery (RFC 8414, RFC 9728) and the /oauth/* endpoints."""
    router = APIRouter(tags=["OAuth 2.1"])

    @router.get(AS_METADATA_PATH)
    async def as_metadata(request: Request) -> Response:
        return JSONResponse(oauth_server_of(request).metadata(), headers=PUBLIC)

    async def prm(request: Request, suffix: str) -> Response:
        server = oauth_server_of(request)
        resource = server.svc.resources.by_metadata_path(WELL_KNOWN_PRM + suffix)
        if resource is None:
            return JSONResponse(
                {"error": "not_found", "error_description": "no such protected resource"},
                status_code=404,
            )
        return JSONResponse(server.resource_metadata(resource), headers=PUBLIC)

    @router.get(WELL_KNOWN_PRM)
    async def prm_root(request: Request) -> Response:
        return await prm(request, "")

    @router.get(WELL_KNOWN_PRM + "/{path:path}")
    async def prm_path(path: str, request: Request) -> Response:
        return await prm(request, "/" + path)

    @router.post(REGISTER_PATH, status_code=201)
    async def register(request: Request) -> Response:
        server = oauth_server_of(request)

        async def run() -> Response:
            body = await read_json_object(request, server.svc.settings.max_body_bytes)
            ip = request.client.host if request.client else None
            res = await run_in_worker(server.register, body, ip)
            return JSONResponse(res, status_code=201, headers=NO_STORE)

        return await _guarded(run)

    @router.get(AUTHORIZE_PATH)
    async def authorize(request: Request) -> Response:
        server = oauth_server_of(request)
        items = request.query_params.multi_items()
        params: dict[str, str] = {}
        repeated = [k for i, (k, _) in enumerate(items) if k in dict(items[:i])]
        for key, value in items:
            params.setdefault(key, value)
        try:
            if repeated:
                raise OAuthError("invalid_request", f"parameter {repeated[0]} is repeated")
            target = await run_in_worker(server.authorize, params)
        except (OAuthError, ATHError) as exc:
            err = exc if isinstance(exc, OAuthError) else from_ath(exc)
            return _authorize_error_page(request, err)
        return RedirectResponse(target, status_code=303, headers=NO_STORE)

    def form_endpoint(
        call: Callable[[OAuthServer, dict[str, str], str | None], Any], *, empty: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            server = oauth_server_of(request)

            async def run() -> Response:
                form = await read_form(request, server.svc.settings.max_body_bytes)
                auth = request.headers.get("authorization")
                res = await run_in_worker(call, server, form, auth)
                return JSONResponse({} if empty else res, headers=NO_STORE)

            return await _guarded(run)

        return endpoint

    router.add_api_route(TOKEN_PATH, form_endpoint(lambda s, f, a: s.token(f, a)), methods=["POST"])
    router.add_api_route(
        REVOKE_PATH, form_endpoint(lambda s, f, a: s.revoke(f, a), empty=True), methods=["POST"]
    )
    router.add_api_route(
        INTROSPECT_PATH, form_endpoint(lambda s, f, a: s.introspect(f, a)), methods=["POST"]
    )

    @router.get(JWKS_PATH)
    async def jwks(request: Request) -> Response:
        server = oauth_server_of(request)
        if server.jwks is None:
            return JSONResponse({"keys": []}, headers=PUBLIC)
        return JSONResponse(server.jwks, headers=PUBLIC)

    return router


def _authorize_error_page(request: Request, err: OAuthError) -> Response:
    """RFC 6749 §4.1.2.1: a bad client or redirect URI is told to the user, not redirected."""
    if "text/html" in request.headers.get("accept", ""):
        return templates.TemplateResponse(
            request,
            "error.html",
            {"code": err.error, "message": err.description},
            status_code=err.status if err.status != 401 else 400,
            headers=NO_STORE,
        )
    return oauth_error_response(err)

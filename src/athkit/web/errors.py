"""Rendering every failure as the §9 JSON body (or a page for the user's browser).

Nothing here ever returns a stack trace: unexpected exceptions become ``INTERNAL_ERROR`` and are
logged server-side with a correlation id that the client also receives.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from athkit.asgi.pages import templates as templates  # re-exported: its old home
from athkit.core.secrets import new_secret
from athkit.oauth.resource_metadata import bearer_challenge
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.errors import as_unavailable
from athkit.web.openapi import describe_errors

log = logging.getLogger("athkit.web")

BROWSER_PREFIXES = ("/ath/oauth/", "/ath/callback")


def wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return request.url.path.startswith(BROWSER_PREFIXES) and "text/html" in accept


def _challenge(request: Request, err: ATHError) -> str | None:
    """``WWW-Authenticate`` for a protected route's 401/403 (RFC 6750 §3, RFC 9728 §5.1):
    the resource's metadata URL and the scopes needed, so MCP/OAuth clients can (re)authorize."""
    state = request.scope.get("state", {})
    resource = state.get("ath_resource")
    required = list(state.get("ath_required_scopes") or ())
    if err.code_str == ErrorCode.SCOPE_INSUFFICIENT.value:
        granted = list(err.details.get("granted") or [])
        return bearer_challenge(
            resource,
            error="insufficient_scope",
            description=err.message,
            scopes=[*granted, *required],
        )
    if err.status == 401:
        sent = request.headers.get("authorization", "").lower().startswith("bearer ")
        if resource is None:
            return 'Bearer realm="ath", error="invalid_token"'
        return bearer_challenge(
            resource,
            error="invalid_token" if sent else None,
            description=err.message if sent else None,
            scopes=required or resource.scopes,
        )
    return None


def error_response(request: Request, err: ATHError) -> Response:
    headers: dict[str, str] = {"Cache-Control": "no-store"}
    challenge = _challenge(request, err)
    if challenge is not None:
        headers["WWW-Authenticate"] = challenge
    if err.status in (429, 503) and "retry_after" in err.details:
        headers["Retry-After"] = str(max(1, math.ceil(float(err.details["retry_after"]))))
    if wants_html(request):
        return templates.TemplateResponse(
            request,
            "error.html",
            {"code": err.code_str, "message": err.message},
            status_code=err.status,
            headers=headers,
        )
    return JSONResponse(err.to_dict(), status_code=err.status, headers=headers)


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """Pydantic errors without the offending input (which may hold secrets)."""
    out = []
    for e in errors:
        out.append({"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))})
    return out[:20]


async def _ath_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ATHError)
    return error_response(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    err = ATHError(
        ErrorCode.VALIDATION_ERROR,
        "request is not valid",
        {"errors": validation_details(exc.errors())},
    )
    return error_response(request, err)


_HTTP_CODES = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, ErrorCode.INVALID_REQUEST)
    err = ATHError(code, str(exc.detail), status=exc.status_code)
    resp = error_response(request, err)
    for name, value in (exc.headers or {}).items():  # e.g. ``Allow`` on 405 (RFC 9110)
        resp.headers.setdefault(name, value)
    return resp


async def _unexpected(request: Request, exc: Exception) -> Response:
    unavailable = as_unavailable(exc)  # a database outage on any route: 503, never a 500
    if unavailable is not None:
        log.warning(
            "store unavailable (%s) on %s %s",
            unavailable.details.get("reason"),
            request.method,
            request.url.path,
        )
        return error_response(request, unavailable)
    incident = new_secret("inc_", 9)
    log.exception("unhandled error %s on %s %s", incident, request.method, request.url.path)
    err = ATHError(ErrorCode.INTERNAL_ERROR, "internal error", {"incident": incident})
    return error_response(request, err)


def install_error_handlers(app: FastAPI) -> None:
    """Render every failure as §9 JSON, and say so in the app's OpenAPI document."""
    describe_errors(app)
    app.add_exception_handler(ATHError, _ath_error)
    # Database errors answered here are not re-raised to the server (no trace in its log).
    app.add_exception_handler(SQLAlchemyError, _unexpected)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)

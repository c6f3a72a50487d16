"""Reading JSON bodies strictly: size limit, media type, syntax, then the pydantic model.

Each failure maps to its own ATH error: 413 ``PAYLOAD_TOO_LARGE``, 415
``UNSUPPORTED_MEDIA_TYPE``, 400 ``INVALID_REQUEST`` (not JSON / not an object), 422
``VALIDATION_ERROR`` (missing fields, wrong types).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from athkit.protocol.errors import ATHError, ErrorCode
from athkit.web.errors import validation_details

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > max_bytes:
                raise _too_large(max_bytes)
        except ValueError as exc:
            raise ATHError(ErrorCode.INVALID_REQUEST, "bad Content-Length") from exc
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
    return bytes(body)


def _too_large(limit: int) -> ATHError:
    return ATHError(ErrorCode.PAYLOAD_TOO_LARGE, "request body is too large", {"limit": limit})


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object: media type, size limit, syntax and top-level type checked."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise ATHError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json")
    raw = await read_body(request, max_bytes)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: nesting deep enough to exhaust the parser is bad input, not a crash.
        raise ATHError(ErrorCode.INVALID_REQUEST, "request body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ATHError(ErrorCode.INVALID_REQUEST, "request body must be a JSON object")
    return data


async def read_json(request: Request, model: type[M], max_bytes: int) -> M:
    """The body validated into ``model`` (422 ``VALIDATION_ERROR`` with the failing fields)."""
    data = await read_json_object(request, max_bytes)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ATHError(
            ErrorCode.VALIDATION_ERROR,
            "request body is not valid",
            {"errors": validation_details(exc.errors())},
        ) from exc

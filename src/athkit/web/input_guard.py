"""One guard for the input that pydantic bodies do not cover: path, query and our own forms.

JSON bodies are refused field by field by the protocol's string types
(:mod:`athkit.protocol.fields`). Everything a route reads from the URL, and the forms athkit's
own pages post (consent, console), pass through this ASGI middleware first: a control
character in the decoded path, a NUL or other C0 control (tab and line breaks aside) in a query
or form value answers 400 ``INVALID_REQUEST`` before any route, store or log sees it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from athkit.protocol.errors import ATHError, ErrorCode
from athkit.protocol.fields import has_control

#: Our own form posts are small; a larger urlencoded body to one of them is refused.
MAX_FORM_BYTES = 64 * 1024
#: Forms athkit reads itself live under here (the native proxy shape belongs to the host app).
OWN_FORMS = "/ath/"
NOT_OWN_FORMS = "/ath/proxy/"
_TEXT_WHITESPACE = str.maketrans("", "", "\t\n\r")


def _bad_text(value: str) -> bool:
    return has_control(value.translate(_TEXT_WHITESPACE))


def _bad_pairs(raw: bytes) -> bool:
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    return any(_bad_text(k) or _bad_text(v) for k, v in pairs)


class InputGuardMiddleware:
    """Refuses control characters in the path, the query string and athkit's own forms."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if has_control(path):
            await _refuse(scope, receive, send, "the URL path contains control characters")
            return
        query: bytes = scope.get("query_string", b"")
        if query and _bad_pairs(query):
            await _refuse(scope, receive, send, "a query parameter contains control characters")
            return
        if scope.get("method") == "POST" and _is_own_form(scope, path):
            body, too_large = await _read_all(receive)
            if too_large:
                err = ATHError(
                    ErrorCode.PAYLOAD_TOO_LARGE, "form is too large", {"limit": MAX_FORM_BYTES}
                )
                await JSONResponse(err.to_dict(), status_code=err.status)(scope, receive, send)
                return
            if _bad_pairs(body):
                await _refuse(scope, receive, send, "a form field contains control characters")
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)


def _is_own_form(scope: Scope, path: str) -> bool:
    if not path.startswith(OWN_FORMS) or path.startswith(NOT_OWN_FORMS):
        return False
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            ctype = value.split(b";", 1)[0].strip().lower()
            return bool(ctype == b"application/x-www-form-urlencoded")
    return False


async def _read_all(receive: Receive) -> tuple[bytes, bool]:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return bytes(body), False
        body.extend(message.get("body", b""))
        if len(body) > MAX_FORM_BYTES:
            return b"", True
        if not message.get("more_body", False):
            return bytes(body), False


def _replay(body: bytes, original: Receive) -> Receive:
    """The buffered body once, then the connection's own messages (e.g. its disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive


async def _refuse(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    err = ATHError(ErrorCode.INVALID_REQUEST, message)
    headers = {"Cache-Control": "no-store"}
    await JSONResponse(err.to_dict(), status_code=err.status, headers=headers)(
        scope, receive, send
    )

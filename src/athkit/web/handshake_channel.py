"""The server half of the step-9 encrypted channel, as ASGI middleware (docs/handshake.md).

A request with ``X-ATH-Session`` (or ``Content-Type: application/ath+encrypted``) must carry an
envelope ``{sid, seq, ts, iv, ct}``: the middleware authenticates and decrypts it with
``k_c2s`` (AAD binds session, seq, time, direction, method and path), refuses a replayed or
reordered ``seq`` atomically in the store, hands the plaintext JSON to the app, and encrypts
whatever the app answers (any status) with ``k_s2c`` under the same ``seq``. The original
response type travels in ``X-ATH-Content-Type``. ``require_scopes`` then checks that the bearer
token belongs to this very session. Refusals of the envelope itself are plain §9 JSON.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from athkit.core.workers import run_in_worker
from athkit.crypto.channel import CONTENT_TYPE
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.web.deps import CHANNEL_SESSION_KEY

_DROP = {b"content-length", b"content-type", b"content-encoding", b"etag"}


class HandshakeChannelMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int = 256 * 1024) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        sid = headers.get("x-ath-session")
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if sid is None and ctype != CONTENT_TYPE:
            await self.app(scope, receive, send)
            return
        hs = getattr(getattr(scope.get("app"), "state", None), "athkit_handshake", None)
        if hs is None:
            await self.app(scope, receive, send)
            return
        try:
            channel, seq, plaintext = await self._open(hs, scope, receive, sid, ctype)
        except ATHError as err:
            await _plain_error(err, scope, receive, send)
            return

        inner_headers = [
            (k, v) for k, v in scope["headers"] if k not in (b"content-length", b"content-type")
        ]
        if plaintext:
            inner_headers.append((b"content-type", b"application/json"))
        inner_headers.append((b"content-length", str(len(plaintext)).encode()))
        inner = dict(scope)
        inner["headers"] = inner_headers
        state = dict(scope.get("state") or {})
        state[CHANNEL_SESSION_KEY] = channel.session_id
        inner["state"] = state

        delivered = False

        async def inner_receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": plaintext, "more_body": False}
            return await receive()

        start: Message | None = None
        chunks: list[bytes] = []

        async def inner_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            assert start is not None
            original = Headers(raw=start.get("headers", []))
            body = b"".join(chunks)
            envelope = channel.seal_response(seq, body)
            out = json.dumps(envelope, separators=(",", ":")).encode()
            raw = [(k, v) for k, v in start.get("headers", []) if k.lower() not in _DROP]
            raw += [
                (b"content-type", CONTENT_TYPE.encode()),
                (b"content-length", str(len(out)).encode()),
                (b"x-ath-session", channel.session_id.encode()),
                (
                    b"x-ath-content-type",
                    original.get("content-type", "application/octet-stream").encode(),
                ),
            ]
            await send({"type": "http.response.start", "status": start["status"], "headers": raw})
            await send({"type": "http.response.body", "body": out, "more_body": False})

        await self.app(inner, inner_receive, inner_send)

    async def _open(
        self, hs: Any, scope: Scope, receive: Receive, sid: str | None, ctype: str
    ) -> Any:
        if not sid or ctype != CONTENT_TYPE:
            raise ATHError(
                ErrorCode.ENCRYPTION_ERROR,
                f"encrypted requests need X-ATH-Session and Content-Type {CONTENT_TYPE}",
            )
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ATHError(ErrorCode.INVALID_REQUEST, "client disconnected")
            body.extend(message.get("body", b""))
            if len(body) > self.max_body_bytes:
                raise ATHError(ErrorCode.PAYLOAD_TOO_LARGE, "request body is too large")
            if not message.get("more_body", False):
                break
        try:
            envelope = json.loads(bytes(body))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ATHError(ErrorCode.ENCRYPTION_ERROR, "envelope is not JSON") from exc
        if not isinstance(envelope, dict) or envelope.get("sid") != sid:
            raise ATHError(ErrorCode.ENCRYPTION_ERROR, "envelope sid differs from X-ATH-Session")
        return await run_in_worker(
            hs.open_request, sid, envelope, scope["method"], scope["path"]
        )


async def _plain_error(err: ATHError, scope: Scope, receive: Receive, send: Send) -> None:
    headers = {"Cache-Control": "no-store"}
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="ath", error="invalid_token"'
    resp = JSONResponse(err.to_dict(), status_code=err.status, headers=headers)
    await resp(scope, receive, send)

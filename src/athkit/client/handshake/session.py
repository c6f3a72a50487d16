"""The encrypted session after step 9: one sans-I/O :class:`SessionCore`, two thin drivers.

:class:`HandshakeSession` (blocking) and :class:`AsyncHandshakeSession` encrypt each call's body
and decrypt the answer through the same :class:`SessionCore`; calls are serialised (a lock) so
that ``seq`` reaches the service in order.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from athkit.client.errors import (
    EncryptionErrorError,
    MessageReplayedError,
    ProtocolViolation,
    ServiceUnreachableError,
    SessionKeyExpiredError,
    error_from_response,
    parse_error_body,
)
from athkit.client.handshake.messages import HandshakeResult
from athkit.crypto.channel import CONTENT_TYPE, ChannelError, SessionChannel, client_channel


class SessionCore:
    """Build encrypted requests and open encrypted responses for one session (no I/O)."""

    def __init__(
        self,
        result: HandshakeResult,
        api_base: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.result = result
        self.api_base = api_base.rstrip("/")
        self.channel: SessionChannel = client_channel(
            result.session_id, result.keys, result.session_expires_at, clock
        )
        self.token_expires_at = clock() + result.expires_in
        self.clock = clock

    @property
    def access_token(self) -> str:
        return self.result.access_token

    def url(self, path: str) -> str:
        if urlsplit(path).scheme or path.startswith("//"):
            raise ValueError(f"path must be relative to the service, got {path!r}")
        return self.api_base + "/" + path.lstrip("/")

    def build(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[str, dict[str, str], bytes, int]:
        """``(url, headers, body, seq)`` for an encrypted call; the AAD path is the URL path."""
        url = self.url(path)
        if content is None:
            content = b"" if json_body is None else json.dumps(json_body).encode("utf-8")
        try:
            envelope = self.channel.seal(method.upper(), urlsplit(url).path, content)
        except ChannelError as exc:
            raise SessionKeyExpiredError(exc.message, status=401) from exc
        merged = dict(headers or {})
        merged.update(
            {
                "Authorization": f"Bearer {self.result.access_token}",
                "X-ATH-Agent-ID": self.result.client_did,
                "X-ATH-Session": self.result.session_id,
                "Content-Type": CONTENT_TYPE,
                "Accept": "application/json",
            }
        )
        if json_body is not None or content:
            merged.setdefault("X-ATH-Content-Type", "application/json")
        body = json.dumps(envelope, separators=(",", ":")).encode("ascii")
        return url, merged, body, int(envelope["seq"])

    def open(
        self, status: int, headers: Mapping[str, str], body: bytes, seq: int
    ) -> tuple[bytes, str | None]:
        """Decrypt a response; ``(plaintext, original content type)``. Raises typed errors."""
        ctype = (headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype != CONTENT_TYPE:
            # a plain answer is only acceptable as an error refused before decryption
            if 200 <= status < 300:
                raise ProtocolViolation(
                    "service answered an encrypted call in plain text", {"http_status": status}
                )
            raise error_from_response(status, body)
        try:
            envelope = json.loads(body)
            plaintext = self.channel.open_response(envelope, seq)
        except ValueError as exc:
            if isinstance(exc, ChannelError):
                cls = (
                    MessageReplayedError
                    if exc.code == "MESSAGE_REPLAYED"
                    else (EncryptionErrorError)
                )
                raise cls(f"response refused: {exc.message}") from exc
            raise EncryptionErrorError("response envelope is not JSON") from exc
        inner = headers.get("x-ath-content-type")
        if not 200 <= status < 300 and parse_error_body(plaintext) is not None:
            raise error_from_response(status, plaintext)
        return plaintext, inner


def _response(
    status: int, headers: Mapping[str, str], plaintext: bytes, inner: str | None, req: httpx.Request
) -> httpx.Response:
    out = {
        k: v
        for k, v in headers.items()
        if k.lower()
        not in ("content-type", "content-length", "content-encoding", "x-ath-content-type")
    }
    out["content-type"] = inner or "application/json"
    return httpx.Response(status, headers=out, content=plaintext, request=req)


def _unreachable(method: str, url: str, exc: httpx.TransportError) -> ServiceUnreachableError:
    return ServiceUnreachableError(f"{method} {url} failed: {type(exc).__name__}")


class _SessionView:
    """What both session drivers show of the established session."""

    core: SessionCore

    @property
    def result(self) -> HandshakeResult:
        return self.core.result

    @property
    def session_id(self) -> str:
        return self.core.result.session_id

    @property
    def access_token(self) -> str:
        return self.core.access_token

    @property
    def scopes_granted(self) -> list[str]:
        return self.core.result.scopes_granted

    @property
    def restrictions(self) -> dict[str, Any]:
        return self.core.result.restrictions


class HandshakeSession(_SessionView):
    """An established session: :meth:`request` encrypts the body and decrypts the answer.

    Calls are serialised (a lock) so that ``seq`` reaches the service in order.
    """

    def __init__(self, http: httpx.Client, core: SessionCore) -> None:
        self._http = http
        self.core = core
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Call ``{api_base}{path}`` over the encrypted channel; ATH errors raise typed."""
        with self._lock:
            url, hdrs, body, seq = self.core.build(
                method, path, json_body=json, content=content, headers=headers
            )
            try:
                resp = self._http.request(
                    method.upper(), url, headers=hdrs, content=body, params=params
                )
            except httpx.TransportError as exc:
                raise _unreachable(method, url, exc) from exc
            plaintext, inner = self.core.open(resp.status_code, resp.headers, resp.content, seq)
        return _response(resp.status_code, resp.headers, plaintext, inner, resp.request)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)


class AsyncHandshakeSession(_SessionView):
    """The ``async`` twin of :class:`HandshakeSession`."""

    def __init__(self, http: httpx.AsyncClient, core: SessionCore) -> None:
        import anyio

        self._http = http
        self.core = core
        self._lock = anyio.Lock()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        async with self._lock:
            url, hdrs, body, seq = self.core.build(
                method, path, json_body=json, content=content, headers=headers
            )
            try:
                resp = await self._http.request(
                    method.upper(), url, headers=hdrs, content=body, params=params
                )
            except httpx.TransportError as exc:
                raise _unreachable(method, url, exc) from exc
            plaintext, inner = self.core.open(resp.status_code, resp.headers, resp.content, seq)
        return _response(resp.status_code, resp.headers, plaintext, inner, resp.request)

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, **kw)

"""Every outbound HTTP request a server makes: a total deadline, a size cap, a concurrency cap.

httpx's timeouts bound each read, so a server that drips one byte a second keeps a request alive
for as long as it likes, and every request in flight holds a thread. Here each request runs on
one shared event loop (one thread per process, however many requests are waiting), under a
deadline for the whole exchange (connect, headers and body), reading at most ``max_bytes``.
:class:`OutboundLimits` caps how many are in flight per service: one more is refused at once
with 503 ``SERVICE_UNAVAILABLE`` rather than queued, so waiting callers can never fill the
worker pool that token checks use.

Used, through :meth:`OutboundLimits.transport`, by the identity-document fetcher, the registry's
document fetcher and the gateway's calls to upstream OAuth providers (token exchange, refresh,
revocation, userinfo, JWKS, discovery). Sync callers get an ``httpx.BaseTransport``; async
callers an ``httpx.AsyncBaseTransport`` over the same rules. ``http=`` names the httpx-compatible
module a client library is built on (Authlib uses ``httpx2`` where it is installed).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from types import ModuleType
from typing import Any, TypeVar

import httpx

from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store import on_loop

T = TypeVar("T")

#: Seconds a refused caller is told to wait (``Retry-After``).
RETRY_AFTER = 2


class DeadlineExceeded(httpx.TimeoutException):
    """The whole exchange took longer than its deadline (not one slow read)."""


class ResponseTooLarge(httpx.DecodingError):
    """The response body is larger than the request's ``max_bytes``."""


def capacity_error(limit: int) -> ATHError:
    return ATHError(
        ErrorCode.SERVICE_UNAVAILABLE,
        "too many outbound fetches are in flight; try again shortly",
        {"reason": "outbound_capacity", "limit": limit, "retry_after": RETRY_AFTER},
    )


class _Loop:
    """One asyncio loop in a daemon thread, started on first use and shared by the process."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="athkit-outbound")
                thread.daemon = True
                thread.start()
                cls._loop = loop
            return cls._loop

    @classmethod
    def run(cls, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, cls.get())
        try:
            return future.result(timeout)
        except FutureTimeout:  # a safety net: the coroutine's own deadline fires first
            future.cancel()
            raise DeadlineExceeded("outbound request passed its deadline") from None


def _deadline_error(http: ModuleType, message: str, request: Any) -> Exception:
    if http is httpx:
        return DeadlineExceeded(message, request=request)
    return http.TimeoutException(message, request=request)  # type: ignore[no-any-return]


def _too_large_error(http: ModuleType, message: str, request: Any) -> Exception:
    if http is httpx:
        return ResponseTooLarge(message, request=request)
    return http.DecodingError(message, request=request)  # type: ignore[no-any-return]


async def _exchange(
    inner: Any, request: Any, deadline: float, max_bytes: int, http: ModuleType = httpx
) -> Any:
    """Send ``request`` and read its body, all within ``deadline`` seconds."""
    try:
        async with asyncio.timeout(deadline):
            response = await inner.handle_async_request(request)
            try:
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        message = f"response is larger than {max_bytes} bytes"
                        raise _too_large_error(http, message, request)
            finally:
                await response.aclose()
    except TimeoutError:
        message = f"outbound request took longer than {deadline:g} s"
        raise _deadline_error(http, message, request) from None
    return http.Response(
        response.status_code,
        headers=response.headers,
        content=bytes(body),
        extensions={k: v for k, v in response.extensions.items() if k != "network_stream"},
        request=request,
    )


def _async_copy(request: Any, content: bytes, http: ModuleType = httpx) -> Any:
    """The same request with an in-memory body any transport can send."""
    return http.Request(
        request.method,
        request.url,
        headers=request.headers,
        content=content,
        extensions=request.extensions,
    )


class OutboundLimits:
    """The deadline, size and concurrency rules of one service's outbound requests."""

    def __init__(self, *, max_concurrent: int = 16) -> None:
        self.max_concurrent = max_concurrent
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._in_flight = 0
        self._count_lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def acquire(self) -> None:
        """Take a slot or raise the 503 at once (never wait behind hung fetches)."""
        if not self._slots.acquire(blocking=False):
            raise capacity_error(self.max_concurrent)
        with self._count_lock:
            self._in_flight += 1

    def release(self) -> None:
        with self._count_lock:
            self._in_flight -= 1
        self._slots.release()

    def transport(
        self,
        *,
        deadline: float,
        max_bytes: int = 1024 * 1024,
        inner: httpx.AsyncBaseTransport | None = None,
        http: ModuleType = httpx,
        verify: ssl.SSLContext | bool = True,
    ) -> BoundedTransport:
        """A sync transport for ``httpx.Client`` (and Authlib's clients) under these rules;
        ``verify`` is the TLS trust of its connections (a client's own ``verify`` does not
        reach a transport it is given)."""
        inner = inner or http.AsyncHTTPTransport(verify=verify)
        return BoundedTransport(
            self, deadline=deadline, max_bytes=max_bytes, inner=inner, http=http
        )

    def async_transport(
        self,
        *,
        deadline: float,
        max_bytes: int = 1024 * 1024,
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> AsyncBoundedTransport:
        """The same rules for ``httpx.AsyncClient`` callers on their own event loop."""
        return AsyncBoundedTransport(self, deadline=deadline, max_bytes=max_bytes, inner=inner)


class BoundedTransport(httpx.BaseTransport):
    """Runs each request on the shared outbound loop; the calling thread waits at most
    ``deadline`` seconds and holds one of the service's outbound slots meanwhile."""

    def __init__(
        self,
        limits: OutboundLimits,
        *,
        deadline: float,
        max_bytes: int,
        inner: httpx.AsyncBaseTransport | None = None,
        http: ModuleType = httpx,
    ) -> None:
        self.limits = limits
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.http = http
        self._inner = inner or http.AsyncHTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        on_loop.refuse_wait()  # never from a step running on the event loop
        self.limits.acquire()
        try:
            copy = _async_copy(request, request.read(), self.http)
            coro = _exchange(self._inner, copy, self.deadline, self.max_bytes, self.http)
            response = _Loop.run(coro, self.deadline + 1.0)
        finally:
            self.limits.release()
        response.request = request
        return response  # type: ignore[no-any-return]

    def close(self) -> None:
        """Kept open: one transport serves many short-lived clients (Authlib opens one per
        call); :meth:`shutdown` closes its connection pool."""

    def shutdown(self) -> None:
        with contextlib.suppress(DeadlineExceeded, RuntimeError):
            _Loop.run(self._inner.aclose(), 5.0)


class AsyncBoundedTransport(httpx.AsyncBaseTransport):
    """:class:`BoundedTransport` for async callers (no thread hop; same slots and deadline)."""

    def __init__(
        self,
        limits: OutboundLimits,
        *,
        deadline: float,
        max_bytes: int,
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.limits = limits
        self.deadline = deadline
        self.max_bytes = max_bytes
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.limits.acquire()
        try:
            copy = _async_copy(request, await request.aread())
            response = await _exchange(self._inner, copy, self.deadline, self.max_bytes)
        finally:
            self.limits.release()
        response.request = request
        return response  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        await self._inner.aclose()

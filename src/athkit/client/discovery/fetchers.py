"""One hop of discovery I/O, blocking and async: the SSRF-checked GET within its limits.

Both fetchers resolve and check the host before connecting, check the connected peer again
(DNS rebinding), and read at most :attr:`FetchLimits.max_bytes` within
:attr:`FetchLimits.timeout`; only the send loop differs between them.
"""

from __future__ import annotations

import functools
import time

import httpx

from athkit import netguard
from athkit.client._core import PreparedRequest, RawResponse
from athkit.client.discovery.errors import (
    BlockedURLError,
    DiscoveryTimeoutError,
    DocumentTooLargeError,
)
from athkit.client.discovery.guard import FetchLimits
from athkit.client.errors import ATHError, ServiceUnreachableError


def _too_large(url: str, limits: FetchLimits) -> DocumentTooLargeError:
    return DocumentTooLargeError(
        f"document at {url} exceeds {limits.max_bytes} bytes",
        {"url": url, "max_bytes": limits.max_bytes},
        status=502,
    )


def _timed_out(url: str, limits: FetchLimits) -> DiscoveryTimeoutError:
    return DiscoveryTimeoutError(
        f"fetching {url} took longer than {limits.timeout:g} s",
        {"url": url, "timeout": limits.timeout},
        status=504,
    )


def _check_response_start(
    response: httpx.Response, url: str, dev_mode: bool, limits: FetchLimits
) -> None:
    """The connected peer must still be an allowed address (DNS rebinding); size up front."""
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer:
        try:
            netguard.check_address(str(peer[0]), dev_mode=dev_mode, url=url)
        except netguard.UnsafeURLError as exc:
            raise BlockedURLError(exc) from None
    length = response.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limits.max_bytes:
        raise _too_large(url, limits)


class _Body:
    """The bytes of one response, refused past the byte limit or the deadline."""

    def __init__(self, url: str, limits: FetchLimits) -> None:
        self.url, self.limits = url, limits
        self.deadline = time.monotonic() + limits.timeout
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.limits.max_bytes:
            raise _too_large(self.url, self.limits)
        if time.monotonic() > self.deadline:
            raise _timed_out(self.url, self.limits)


def _transport_error(exc: httpx.HTTPError, url: str, limits: FetchLimits) -> ATHError:
    """No answer: a timeout, or the service unreachable (connection, DNS, TLS)."""
    if isinstance(exc, httpx.TimeoutException):
        return _timed_out(url, limits)
    return ServiceUnreachableError(f"GET {url} failed: {type(exc).__name__}", {"url": url})


class _SyncFetcher:
    def __init__(self, dev_mode: bool, limits: FetchLimits) -> None:
        self.dev_mode, self.limits = dev_mode, limits
        self.http = httpx.Client(timeout=limits.timeout, follow_redirects=False, trust_env=False)

    def send(self, request: PreparedRequest) -> RawResponse:
        url, limits = request.url, self.limits
        try:
            netguard.resolve_checked(url, dev_mode=self.dev_mode)  # before any connection
        except netguard.UnsafeURLError as exc:
            raise BlockedURLError(exc) from None
        body = _Body(url, limits)
        try:
            with self.http.stream(request.method, url, headers=request.headers) as response:
                _check_response_start(response, url, self.dev_mode, limits)
                for chunk in response.iter_bytes():
                    body.add(chunk)
                return RawResponse(response.status_code, response.headers, bytes(body.data))
        except httpx.HTTPError as exc:
            raise _transport_error(exc, url, limits) from exc


class _AsyncFetcher:
    def __init__(self, dev_mode: bool, limits: FetchLimits) -> None:
        self.dev_mode, self.limits = dev_mode, limits
        self.http = httpx.AsyncClient(
            timeout=limits.timeout, follow_redirects=False, trust_env=False
        )

    async def send(self, request: PreparedRequest) -> RawResponse:
        import anyio.to_thread

        url, limits = request.url, self.limits
        check = functools.partial(netguard.resolve_checked, url, dev_mode=self.dev_mode)
        try:
            await anyio.to_thread.run_sync(check)  # before any connection
        except netguard.UnsafeURLError as exc:
            raise BlockedURLError(exc) from None
        body = _Body(url, limits)
        try:
            async with self.http.stream(request.method, url, headers=request.headers) as response:
                _check_response_start(response, url, self.dev_mode, limits)
                async for chunk in response.aiter_bytes():
                    body.add(chunk)
                return RawResponse(response.status_code, response.headers, bytes(body.data))
        except httpx.HTTPError as exc:
            raise _transport_error(exc, url, limits) from exc

"""Thin drivers of :meth:`HandshakeCore.flow`: :func:`run_handshake` and :func:`arun_handshake`.

Each answers the flow's steps with I/O (an httpx request, or a ``did:web`` resolution); the
request and the error of each step are built once, here, for both.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from athkit.client._core import RawResponse
from athkit.client.errors import InvalidSignatureError, ServiceUnreachableError
from athkit.client.handshake.core import HandshakeCore
from athkit.client.handshake.messages import (
    HandshakeFlow,
    HandshakeRequest,
    HandshakeResult,
    ResolveDID,
)
from athkit.crypto.credentials import SignedCredential
from athkit.crypto.did import DIDError, DIDResolver


def coerce_credential(credential: SignedCredential | Mapping[str, Any]) -> SignedCredential:
    """Accept a :class:`SignedCredential` or its ``{credential, signature}`` dict."""
    if isinstance(credential, SignedCredential):
        return credential
    return SignedCredential.from_dict(dict(credential))


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "127.0.0.1", "::1")


def default_resolver(base_url: str) -> DIDResolver:
    """did:key locally; did:web over HTTPS (http allowed only for a loopback service)."""
    return DIDResolver(dev_mode=_is_loopback(base_url))


def _raw(resp: httpx.Response) -> RawResponse:
    return RawResponse(resp.status_code, resp.headers, resp.content)


def _unresolvable(step: ResolveDID, exc: DIDError) -> InvalidSignatureError:
    return InvalidSignatureError(f"server_did cannot be resolved: {exc}", {"server_did": step.did})


def _request_args(step: HandshakeRequest) -> dict[str, Any]:
    return {
        "json": step.json,
        "headers": dict(step.headers),
        "timeout": step.timeout if step.timeout is not None else httpx.USE_CLIENT_DEFAULT,
    }


def _unreachable(step: HandshakeRequest, exc: httpx.TransportError) -> ServiceUnreachableError:
    return ServiceUnreachableError(f"{step.method} {step.url} failed: {type(exc).__name__}")


def run_handshake(
    http: httpx.Client, core: HandshakeCore, flow: HandshakeFlow, resolver: DIDResolver
) -> HandshakeResult:
    """Drive ``flow`` over a blocking httpx client."""
    step = next(flow)
    while True:
        answer: Any
        if isinstance(step, ResolveDID):
            try:
                answer = resolver.resolve(step.did)
            except DIDError as exc:
                raise _unresolvable(step, exc) from exc
        else:
            if step.delay > 0:
                time.sleep(step.delay)
            try:
                answer = _raw(http.request(step.method, step.url, **_request_args(step)))
            except httpx.TransportError as exc:
                raise _unreachable(step, exc) from exc
        try:
            step = flow.send(answer)
        except StopIteration as stop:
            result: HandshakeResult = stop.value
            return result


async def arun_handshake(
    http: httpx.AsyncClient, core: HandshakeCore, flow: HandshakeFlow, resolver: DIDResolver
) -> HandshakeResult:
    """Drive ``flow`` over an async httpx client (did:web resolution runs in a thread)."""
    import anyio

    step = next(flow)
    while True:
        answer: Any
        if isinstance(step, ResolveDID):
            try:
                answer = await anyio.to_thread.run_sync(resolver.resolve, step.did)
            except DIDError as exc:
                raise _unresolvable(step, exc) from exc
        else:
            if step.delay > 0:
                await anyio.sleep(step.delay)
            try:
                answer = _raw(await http.request(step.method, step.url, **_request_args(step)))
            except httpx.TransportError as exc:
                raise _unreachable(step, exc) from exc
        try:
            step = flow.send(answer)
        except StopIteration as stop:
            result: HandshakeResult = stop.value
            return result

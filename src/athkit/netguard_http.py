"""The SSRF guard at connect time: an httpx transport that connects only to checked addresses.

Checking a URL's host and then letting the HTTP client resolve it again is a DNS-rebinding
hole: the second answer may be ``127.0.0.1``. :class:`PinnedBackend` is an httpcore network
backend that resolves the host itself, refuses the connection unless every address passes
:func:`athkit.netguard.is_blocked_address`, and connects to one of exactly those addresses.
The URL, and so the ``Host`` header and the TLS server name (SNI, certificate check), stay the
host name. :func:`guarded_transport` wraps it in an ``httpx.AsyncHTTPTransport``, the ``inner``
of the bounded outbound transport (:mod:`athkit.core.outbound`), for every fetch made on
someone else's word (identity documents, registry documents, client metadata documents).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any

import anyio
import httpcore
import httpx

from athkit.netguard import is_blocked_address

#: ``resolver(host, port) -> addresses``; the default is the system resolver in a thread.
Resolver = Callable[[str, int], list[str]]


class BlockedAddressError(httpcore.ConnectError):
    """The host resolved to an address the guard refuses (mapped to ``httpx.ConnectError``)."""


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def checked_addresses(
    host: str, port: int, *, dev_mode: bool, resolver: Resolver = system_resolver
) -> list[str]:
    """Resolve ``host`` once; every address must be allowed (as :func:`netguard.check_url`)."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
        addresses = [str(literal)]
    except ValueError:
        try:
            addresses = resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve host {host!r}") from exc
    if not addresses:
        raise httpcore.ConnectError(f"cannot resolve host {host!r}")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if is_blocked_address(ip, allow_loopback=dev_mode):
            raise BlockedAddressError(f"{host!r} resolves to a non-public address ({ip})")
    return addresses


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the addresses :func:`checked_addresses` returned, never re-resolving."""

    def __init__(self, *, dev_mode: bool, resolver: Resolver = system_resolver) -> None:
        self.dev_mode = dev_mode
        self.resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await anyio.to_thread.run_sync(
            lambda: checked_addresses(
                host, port, dev_mode=self.dev_mode, resolver=self.resolver
            )
        )
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable through the guard")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connections go through :class:`PinnedBackend`."""

    def __init__(
        self,
        *,
        dev_mode: bool,
        verify: ssl.SSLContext | bool = True,
        resolver: Resolver = system_resolver,
    ) -> None:
        super().__init__(verify=verify)
        context = verify if isinstance(verify, ssl.SSLContext) else None
        if context is None:
            context = httpx.create_ssl_context(verify=verify)
        # The pool httpx built, rebuilt with the pinning backend (httpx has no parameter for it).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            network_backend=PinnedBackend(dev_mode=dev_mode, resolver=resolver),
        )


def guarded_transport(
    *, dev_mode: bool, verify: ssl.SSLContext | bool = True, resolver: Resolver = system_resolver
) -> httpx.AsyncHTTPTransport:
    """The inner transport for fetches of URLs given by others (see the module docstring)."""
    return GuardedTransport(dev_mode=dev_mode, verify=verify, resolver=resolver)

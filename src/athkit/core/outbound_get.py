"""One GET of a document on the running event loop: the async fetch of an identity document.

The blocking fetchers (:mod:`athkit.core.outbound`) run httpx on a shared loop in another
thread. A caller that is already on an event loop (a route, before its step runs in a worker)
needs neither the thread hops nor httpx's layers for one small GET: this module opens one
connection, sends one request and reads one answer with the ``httptools`` (llhttp) parser
uvicorn and the gateway's upstream client use, under the same rules:

* the SSRF guard resolves the host once (:func:`athkit.netguard.resolve_checked`: every address
  must be allowed) and the connection goes to one of exactly those addresses, while the
  ``Host`` header and the TLS server name stay the URL's (no DNS rebinding);
* one deadline bounds the whole exchange (connect, headers, body): a host that drips bytes
  cannot hold the caller longer (``DeadlineExceeded``); connecting alone gets at most 3 s;
* at most ``max_bytes`` of body are read (``ResponseTooLarge``); the caller holds one of the
  service's outbound slots meanwhile (:class:`~athkit.core.outbound.OutboundLimits`: 503 at once
  when none is free).

No redirects are followed, no cookies kept, the connection is closed after the answer. Failures
are :class:`FetchError` with the reason names the blocking path reports (``ConnectError``,
``ConnectTimeout``, ``DeadlineExceeded``, ``ResponseTooLarge``, ``RemoteProtocolError``).
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from typing import cast
from urllib.parse import urlsplit

import httptools

from athkit.core.outbound import OutboundLimits

CONNECT_TIMEOUT = 3.0


class FetchError(Exception):
    """The document could not be fetched; ``reason`` names why (as httpx's class names do)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Answer(asyncio.Protocol):
    """One response on one connection, read with the llhttp parser."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.body = bytearray()
        self.headers_done = False
        self.interim = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._end(FetchError("RemoteProtocolError"))

    def eof_received(self) -> bool | None:
        self._at_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._at_eof()

    def _at_eof(self) -> None:
        """An answer without a length ends at EOF; any other is cut short."""
        framed = b"content-length" in self.headers or b"transfer-encoding" in self.headers
        if self.headers_done and not framed:
            self._end(None)
        else:
            self._end(FetchError("RemoteProtocolError"))

    def _end(self, error: FetchError | None) -> None:
        if not self.done.done():
            if error is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(error)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer: the real one follows
            self.interim = True
            self.headers = {}
            return
        self.status = status
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.extend(body)
        if len(self.body) > self.max_bytes:
            self._end(FetchError("ResponseTooLarge"))

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self._end(None)


def _decoded(answer: _Answer, max_bytes: int) -> bytes:
    """The body without its content coding (gzip, deflate), bounded by ``max_bytes`` too."""
    coding = answer.headers.get(b"content-encoding", b"identity").strip().lower()
    body = bytes(answer.body)
    if coding in (b"", b"identity"):
        return body
    if coding not in (b"gzip", b"deflate"):
        raise FetchError("DecodingError")
    window = 16 + zlib.MAX_WBITS if coding == b"gzip" else zlib.MAX_WBITS
    try:
        d = zlib.decompressobj(window)
        out = d.decompress(body, max_bytes + 1)
    except zlib.error:
        if coding != b"deflate":
            raise FetchError("DecodingError") from None
        try:  # raw deflate, as some servers send it
            d = zlib.decompressobj(-zlib.MAX_WBITS)
            out = d.decompress(body, max_bytes + 1)
        except zlib.error:
            raise FetchError("DecodingError") from None
    if len(out) > max_bytes:
        raise FetchError("ResponseTooLarge")
    return out


async def get_document(
    url: str,
    addresses: list[str],
    *,
    limits: OutboundLimits,
    deadline: float,
    max_bytes: int,
    tls: ssl.SSLContext | None,
    headers: dict[str, str],
) -> tuple[int, bytes]:
    """GET ``url`` from one of ``addresses`` (already checked by the SSRF guard): the status
    and the decoded body. ``tls`` is the context for https URLs."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc.rsplit('@', 1)[-1]}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += ["Accept-Encoding: gzip, deflate", "Connection: close", "", ""]
    request = "\r\n".join(lines).encode("latin-1")
    loop = asyncio.get_running_loop()
    limits.acquire()  # 503 at once when every slot is taken
    transport: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(deadline):
            answer: _Answer | None = None
            for address in addresses:
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        transport, answer = await loop.create_connection(
                            lambda: _Answer(max_bytes),
                            address.split("%", 1)[0],
                            port,
                            ssl=tls if https else None,
                            server_hostname=host if https else None,
                        )
                    break
                except TimeoutError:
                    if address == addresses[-1]:
                        raise FetchError("ConnectTimeout") from None
                except OSError:  # refused, unreachable, TLS verification (ssl.SSLError)
                    if address == addresses[-1]:
                        raise FetchError("ConnectError") from None
            if transport is None or answer is None:
                raise FetchError("ConnectError")
            transport.write(request)
            await answer.done
    except TimeoutError:
        raise FetchError("DeadlineExceeded") from None
    finally:
        if transport is not None:
            transport.close()
        limits.release()
    return answer.status, _decoded(answer, max_bytes)

"""The proxy's upstream HTTP/1.1 client: pooled keep-alive connections, raw header bytes.

A small client for one job, the proxy's data path (``gateway/proxy.py``): send a request whose
headers the proxy already holds as bytes, and hand the answer's body on as it arrives. Each
connection is an asyncio protocol with an ``httptools`` (llhttp) response parser; body pieces
go from the socket callback to the waiting request in a list, and whatever has arrived by the
time the request runs again is handed on at once, so a large body crosses the proxy in few,
large pieces. Idle connections wait in a per-origin stack (most recently used first), with no
scan of the pool on a request (the reason httpx's pool fell under load); a connection the
server closed is dropped when it closes. Bounded: at most ``max_connections`` at once per
origin, and reading pauses once ``read_buffer`` bytes wait unsent.

Correctness rules: a request without a body that fails before any byte of an answer came back
on a reused connection is retried once on a new one (the server closed it while idle); an
answer to ``HEAD``, one that ends at EOF, or one cut short never returns its connection to the
pool; 1xx interim answers are skipped; TLS verifies the server (the system's trust store).
The read timeout bounds each silence (no headers, or no body piece, for that long); the
connection itself, its parser and its timer are ``gateway/upstream_conn.py``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from athkit.gateway.upstream_conn import Connection, UpstreamError

__all__ = ["SMALL_BODY", "Origin", "UpstreamClient", "UpstreamError", "UpstreamResponse"]

#: Request bodies and answers up to this size are sent or handed on in one piece.
SMALL_BODY = 64 * 1024


@dataclass(frozen=True)
class Origin:
    """Where requests go: scheme, host, port, and the ``Host`` header value."""

    scheme: str
    host: str
    port: int
    authority: bytes

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.netloc.encode("idna"))


@dataclass
class _Pool:
    """Idle connections of one origin, most recently used last, and the in-use count."""

    slots: asyncio.Semaphore
    idle: list[Connection] = field(default_factory=list)


class UpstreamResponse:
    """An answer whose headers have arrived; :meth:`chunks` hands on the body."""

    def __init__(self, client: UpstreamClient, origin: Origin, conn: Connection, head: bool):
        self._client = client
        self._origin = origin
        self._conn: Connection | None = conn
        self._head = head
        self.status = conn.status
        self.headers = conn.headers
        self.content_length = conn.declared_length if conn.declared_length >= 0 else None

    async def chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        """(piece, more) pairs until the body ends; the last has ``more`` False."""
        conn = self._conn
        if conn is None or self._head:
            yield b"", False
            return
        timeout = self._client.read_timeout
        while True:
            if conn.error is not None:
                raise conn.error
            if conn.pieces:
                pieces = conn.take()
                last = len(pieces) - 1
                for i, data in enumerate(pieces):
                    # More may arrive while a piece is handed on: only then is the end known.
                    done = i == last and conn.complete and not conn.pieces
                    yield data, not done
                    if done:
                        return
                continue
            if conn.complete:
                yield b"", False
                return
            await conn.wait(timeout)

    async def read(self) -> bytes:
        """The whole body (for small answers)."""
        parts = [piece async for piece, _ in self.chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self) -> None:
        """Return the connection to the pool if the answer ended cleanly, else close it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        reusable = (
            conn.complete
            and not self._head
            and not conn.closed
            and not conn.spoiled
            and conn.error is None
            and conn.keep_alive
        )
        self._client._give_back(self._origin, conn, reusable)


class UpstreamClient:
    """Pooled HTTP/1.1 to the proxy's upstreams; ``close()`` ends every connection."""

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_connections: int = 200,
        read_buffer: int = 256 * 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.read_buffer = read_buffer
        self._ssl = ssl_context
        self._pools: dict[Origin, _Pool] = {}

    def _pool(self, origin: Origin) -> _Pool:
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _Pool(asyncio.Semaphore(self.max_connections))
        return pool

    async def _connect(self, origin: Origin) -> Connection:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(self.read_buffer),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls else None,
                )
        except TimeoutError:
            raise UpstreamError("ConnectionTimeoutError") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS verification (ssl.SSLError)
            raise UpstreamError(type(exc).__name__) from exc
        return conn

    def _idle(self, origin: Origin) -> Connection | None:
        idle = self._pool(origin).idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    def _give_back(self, origin: Origin, conn: Connection, reusable: bool) -> None:
        pool = self._pool(origin)
        if reusable:
            conn.take()  # drops unread pieces and resumes reading if it was paused
            conn.begin()
            pool.idle.append(conn)
        else:
            conn.close()
        pool.slots.release()

    async def request(
        self,
        origin: Origin,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None = None,
        *,
        chunked: bool = False,
    ) -> UpstreamResponse:
        """Send ``method target`` with ``headers`` (as given, plus ``Host``), then the body:
        as it comes when ``headers`` carry its Content-Length, else chunked when ``chunked``.
        Returns once the answer's headers are in; call ``release()`` on it when done."""
        lines = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), b"host: ", origin.authority]
        for name, value in headers:
            lines += [b"\r\n", name, b": ", value]
        if chunked:
            lines.append(b"\r\ntransfer-encoding: chunked")
        lines.append(b"\r\n\r\n")
        head = b"".join(lines)
        pool = self._pool(origin)
        await pool.slots.acquire()
        conn: Connection | None = None
        try:
            conn = self._idle(origin)
            if conn is None:
                conn = await self._connect(origin)
            try:
                await self._exchange(conn, head, body, chunked)
            except UpstreamError:
                if not (conn.reused and body is None and not conn.received):
                    raise
                conn.close()  # closed by the server while idle: once more, on a new one
                conn = None
                conn = await self._connect(origin)
                await self._exchange(conn, head, None, False)
        except BaseException:
            pool.slots.release()
            if conn is not None:
                conn.close()
            raise
        return UpstreamResponse(self, origin, conn, head=method == "HEAD")

    async def _exchange(
        self, conn: Connection, head: bytes, body: AsyncIterator[bytes] | None, chunked: bool
    ) -> None:
        """Send the request; return once the answer's headers are in."""
        conn.expect_body = not head.startswith(b"HEAD ")
        conn.write(head)
        if body is not None:
            await self._send_body(conn, body, chunked)
        while not conn.headers_done:
            if conn.error is not None:
                raise conn.error
            await conn.wait(self.read_timeout)

    async def _send_body(
        self, conn: Connection, body: AsyncIterator[bytes], chunked: bool
    ) -> None:
        async for piece in body:
            if conn.headers_done or conn.closed:  # answered (or gone) before the body ended
                conn.spoiled = True  # the rest is not sent: never reuse this connection
                return
            if chunked:
                conn.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            else:
                conn.write(piece)
            await conn.drain(self.read_timeout)
        if chunked and not conn.closed:
            conn.write(b"0\r\n\r\n")

    async def close(self) -> None:
        for pool in self._pools.values():
            for conn in pool.idle:
                conn.close()
            pool.idle.clear()
        self._pools.clear()

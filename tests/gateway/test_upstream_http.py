"""The proxy's upstream HTTP/1.1 client against real sockets with scripted answers.

Each test starts a raw TCP server on 127.0.0.1 that reads requests and writes exactly the
bytes the test gives, so framing cases a framework would smooth over (HEAD, 1xx, EOF-ended
bodies, answers cut short, servers closing idle connections) are exercised as they come.
Both event loops the gateway may run on are covered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest
import uvloop

from athkit.gateway.upstream_http import Origin, UpstreamClient, UpstreamError

Script = Callable[["Peer", bytes], Awaitable[None]]


@dataclass
class Peer:
    """One accepted connection of the scripted server."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    number: int

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()


@dataclass
class Server:
    origin: Origin
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """Head and body of one request (Content-Length or chunked), as raw bytes."""
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    body = b""
    if b"content-length:" in lower:
        n = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
        body = await reader.readexactly(n)
    elif b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += data[:-2]
    return head + body


async def serve(script: Script) -> tuple[Server, asyncio.Server]:
    state = Server(Origin.of("http://127.0.0.1:1"))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        peer = Peer(reader, writer, state.connections)
        try:
            while True:
                try:
                    request = await _read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                state.requests.append(request)
                await script(peer, request)
                if writer.is_closing():
                    return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state.origin = Origin.of(f"http://127.0.0.1:{port}")
    return state, server


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Iterator[Callable[[Awaitable[None]], None]]:
    def runner(coro: Awaitable[None]) -> None:
        if request.param == "uvloop":
            uvloop.run(coro)  # type: ignore[arg-type]
        else:
            asyncio.run(coro)  # type: ignore[arg-type]

    yield runner


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%b\r\n%b" % (len(body), extra, body)


async def body_of(client: UpstreamClient, origin: Origin, path: str) -> bytes:
    """A GET's whole body (no request headers)."""
    resp = await client.request(origin, "GET", path, [])
    try:
        return b"".join([p async for p, _ in resp.chunks()])
    finally:
        resp.release()


async def fetch(
    client: UpstreamClient, origin: Origin, method: str = "GET", **kw: object
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    resp = await client.request(origin, method, "/x?q=1", [(b"x-keep", b"yes")], **kw)  # type: ignore[arg-type]
    try:
        body = b"".join([piece async for piece, _ in resp.chunks()])
        return resp.status, resp.headers, body
    finally:
        resp.release()


def test_keep_alive_reuse_and_request_bytes(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        async def script(peer: Peer, request: bytes) -> None:
            await peer.write(ok(b"hello", b"X-Up: 1\r\n"))

        state, server = await serve(script)
        client = UpstreamClient()
        for _ in range(3):
            status, headers, body = await fetch(client, state.origin)
            assert (status, body) == (200, b"hello")
            assert (b"x-up", b"1") in headers  # names lower-cased, values as sent
        assert state.connections == 1  # one connection, reused
        first = state.requests[0]
        assert first.startswith(b"GET /x?q=1 HTTP/1.1\r\nhost: 127.0.0.1:")
        assert b"\r\nx-keep: yes\r\n" in first
        await client.close()
        server.close()

    run(main())


def test_chunked_and_eof_ended_bodies(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        async def script(peer: Peer, request: bytes) -> None:
            if peer.number == 1:
                await peer.write(
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                )
            else:  # HTTP/1.0 style: the body runs to the end of the connection
                await peer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil eof")
                peer.close()

        state, server = await serve(script)
        client = UpstreamClient()
        assert (await fetch(client, state.origin))[2] == b"hello world"
        await asyncio.sleep(0)
        client._pools[state.origin].idle.clear()  # force the second answer on a new connection
        assert (await fetch(client, state.origin))[2] == b"until eof"
        assert not client._pools[state.origin].idle  # an EOF-ended answer is never reused
        await client.close()
        server.close()

    run(main())


def test_content_length_bodies_counted_past_the_parser(
    run: Callable[[Awaitable[None]], None],
) -> None:
    """Body bytes after the headers are counted off Content-Length, not parsed: a body in many
    reads arrives whole, the connection is reused after it, and an answer that says
    ``connection: close``, comes as HTTP/1.0 or runs past its length never is."""
    big = bytes(range(256)) * 1200  # 307,200 bytes: several reads, and a paused socket

    async def script(peer: Peer, request: bytes) -> None:
        path = request.split(b" ")[1]
        body, head = big, b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n" % len(big)
        if path == b"/close":
            head += b"connection: close\r\n"
        elif path == b"/http10":
            head = b"HTTP/1.0 200 OK\r\ncontent-length: %d\r\n" % len(big)
        elif path == b"/extra":
            body, head = b"hello", b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n"
        await peer.write(head + b"\r\n")
        for i in range(0, len(body), 100_000):  # separate writes, each read on its own
            await asyncio.sleep(0.005)
            await peer.write(body[i : i + 100_000])
        if path == b"/extra":
            await asyncio.sleep(0.005)
            await peer.write(b"EXTRA")

    async def main() -> None:
        state, server = await serve(script)
        client = UpstreamClient(read_buffer=64 * 1024)
        for _ in range(2):
            assert await body_of(client, state.origin, "/a") == big
        assert state.connections == 1  # reused after a counted body
        for path in ("/close", "/http10"):
            assert await body_of(client, state.origin, path) == big
            assert await body_of(client, state.origin, "/a") == big  # on a new connection
        assert state.connections == 3
        resp = await client.request(state.origin, "GET", "/extra", [])
        assert b"".join([p async for p, _ in resp.chunks()]) == b"hello"
        await asyncio.sleep(0.05)  # the stray bytes arrive while the answer is still held
        resp.release()
        assert await body_of(client, state.origin, "/a") == big
        assert state.connections == 4  # the one that sent bytes nobody asked for was dropped
        await client.close()
        server.close()

    run(main())


def test_head_204_and_interim_answers(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        async def script(peer: Peer, request: bytes) -> None:
            if request.startswith(b"HEAD"):
                await peer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
            elif request.startswith(b"DELETE"):
                await peer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            else:
                await peer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + ok(b"x"))

        state, server = await serve(script)
        client = UpstreamClient(read_timeout=2)
        status, headers, body = await fetch(client, state.origin, "HEAD")
        assert (status, body) == (200, b"") and (b"content-length", b"1000") in headers
        assert (await fetch(client, state.origin, "DELETE"))[:3:2] == (204, b"")
        status, headers, body = await fetch(client, state.origin)
        assert (status, body) == (200, b"x") and all(k != b"link" for k, _ in headers)
        await client.close()
        server.close()

    run(main())


def test_stale_idle_connection_is_retried_once_for_bodyless_requests(
    run: Callable[[Awaitable[None]], None],
) -> None:
    async def main() -> None:
        async def script(peer: Peer, request: bytes) -> None:
            if peer.number == 1 and len(state.requests) == 2:
                peer.close()  # the second request on the first connection: closed, unanswered
                return
            await peer.write(ok(b"fine"))

        state, server = await serve(script)
        client = UpstreamClient()
        assert (await fetch(client, state.origin))[2] == b"fine"
        assert (await fetch(client, state.origin))[2] == b"fine"  # retried on a new connection
        assert state.connections == 2
        await client.close()
        server.close()

    run(main())


def test_cut_short_malformed_and_silent_answers_are_errors(
    run: Callable[[Awaitable[None]], None],
) -> None:
    async def main() -> None:
        async def script(peer: Peer, request: bytes) -> None:
            if b"cut" in request:
                await peer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
                peer.close()
            elif b"junk" in request:
                await peer.write(b"NOT HTTP AT ALL\r\n\r\n")
            # "silent": no answer at all

        state, server = await serve(script)
        client = UpstreamClient(read_timeout=0.3)

        def get(path: str) -> Awaitable[bytes]:
            return body_of(client, state.origin, path)

        with pytest.raises(UpstreamError, match="ServerDisconnectedError"):
            await get("/cut")
        with pytest.raises(UpstreamError, match="HttpParserError"):
            await get("/junk")
        with pytest.raises(UpstreamError, match="TimeoutError"):
            await get("/silent")
        refused = Origin.of("http://127.0.0.1:1")
        with pytest.raises(UpstreamError):
            await client.request(refused, "GET", "/", [])
        await client.close()
        server.close()

    run(main())


def test_request_bodies_by_length_and_chunked(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        async def script(peer: Peer, request: bytes) -> None:
            body = request.split(b"\r\n\r\n", 1)[1]
            await peer.write(ok(b"%d" % len(body)))

        state, server = await serve(script)
        client = UpstreamClient()
        big = bytes(range(256)) * 4096  # 1 MiB

        async def pieces() -> AsyncIterator[bytes]:
            for i in range(0, len(big), 100_000):
                yield big[i : i + 100_000]

        resp = await client.request(
            state.origin, "POST", "/up", [(b"content-length", b"%d" % len(big))], pieces()
        )
        assert await resp.read() == b"%d" % len(big)
        resp.release()
        resp = await client.request(state.origin, "POST", "/up", [], pieces(), chunked=True)
        assert await resp.read() == b"%d" % len(big)
        resp.release()
        assert b"transfer-encoding: chunked" in state.requests[1]
        assert state.connections == 1
        await client.close()
        server.close()

    run(main())


def test_an_answer_before_the_body_ends_spoils_the_connection(
    run: Callable[[Awaitable[None]], None],
) -> None:
    async def main() -> None:
        answered = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 413 Too Large\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            answered.set()
            await asyncio.sleep(0.5)
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        origin = Origin.of(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        client = UpstreamClient(read_timeout=2)

        async def slow() -> AsyncIterator[bytes]:
            yield b"a" * 10
            await answered.wait()
            await asyncio.sleep(0.05)
            yield b"b" * 10

        resp = await client.request(origin, "POST", "/", [(b"content-length", b"1000")], slow())
        assert resp.status == 413
        assert await resp.read() == b""
        resp.release()
        assert not client._pools[origin].idle  # half a request went out: never reused
        await client.close()
        server.close()

    run(main())


def test_a_connection_given_back_unread_reads_again(run: Callable[[Awaitable[None]], None]) -> None:
    async def main() -> None:
        async def script(peer: Peer, request: bytes) -> None:
            await peer.write(ok(b"x" * 40))  # one packet: past the read buffer, and complete

        state, server = await serve(script)
        client = UpstreamClient(read_buffer=16, read_timeout=2)
        resp = await client.request(state.origin, "GET", "/", [])
        await asyncio.sleep(0.05)  # the whole answer is in; reading was paused at 16 bytes
        resp.release()  # given back without reading the body
        assert (await fetch(client, state.origin))[2] == b"x" * 40
        assert state.connections == 1
        await client.close()
        server.close()

    run(main())


def test_the_read_timeout_is_per_wait_on_one_timer(run: Callable[[Awaitable[None]], None]) -> None:
    """The limit is the longest silence, not the whole answer: a body dripping in slower than
    the limit in all but faster than it piece by piece arrives whole, on a kept connection whose
    one armed timer outlives each request; a silence of the limit still fails (later, too)."""

    async def main() -> None:
        async def script(peer: Peer, request: bytes) -> None:
            if b"drip" in request:
                await peer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
                for piece in (b"a", b"b", b"c", b"d", b"e"):
                    await asyncio.sleep(0.12)
                    await peer.write(piece)
            elif b"stall" in request:
                await peer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nx")  # then silence
            else:
                await peer.write(ok(b"quick"))

        state, server = await serve(script)
        client = UpstreamClient(read_timeout=0.3)

        def get(path: str) -> Awaitable[bytes]:
            return body_of(client, state.origin, path)

        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await get("/drip") == b"abcde"  # 0.6 s in all, no silence of 0.3
        assert loop.time() - start > 0.5
        for _ in range(3):  # the same connection; the timer armed by /drip is still pending
            assert await get("/quick") == b"quick"
        await asyncio.sleep(0.35)  # that timer fires with no wait in progress: nothing happens
        assert await get("/quick") == b"quick"
        start = loop.time()
        with pytest.raises(UpstreamError, match="TimeoutError"):
            await get("/stall")
        assert 0.25 < loop.time() - start < 1.0
        assert state.connections == 1  # one connection served every answer before the stall
        await client.close()
        server.close()

    run(main())

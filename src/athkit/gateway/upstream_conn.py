"""One upstream HTTP/1.1 connection of the proxy's client (``gateway/upstream_http.py``): an
asyncio protocol with an ``httptools`` (llhttp) response parser, and the answer being read on it.

Body pieces go from the socket callback to the waiting request in a list; reading pauses once
``read_buffer`` bytes wait unsent. Once the headers of an answer with a ``Content-Length`` are
parsed, what arrives is counted off that length and passed on as it came, without the parser
(which would copy every body byte into a new object); a fresh parser takes the next answer.

The read timeout bounds each silence (no headers, or no body piece, for that long): a body
crosses in several waits, and a timer per wait (``asyncio.timeout``) cost more than the rest
of the wait, so one timer stays armed per connection and is re-armed lazily
(:meth:`Connection._await`).
"""

from __future__ import annotations

import asyncio
from typing import cast

import httptools

#: Body pieces that arrived together are joined below this total, and passed on one by one
#: above it.
JOIN_BELOW = 64 * 1024


class UpstreamError(Exception):
    """The upstream could not be reached, or its answer broke off or did not parse."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Connection(asyncio.Protocol):
    """One connection and the answer being read on it."""

    def __init__(self, read_buffer: int) -> None:
        self.read_buffer = read_buffer
        self.loop = asyncio.get_running_loop()  # made inside the loop, by create_connection
        self.transport: asyncio.Transport | None = None
        # The idle timer (see :meth:`_await`): at most one pending per connection.
        self._timer: asyncio.TimerHandle | None = None
        self._wait_started = 0.0
        self._wait_limit = 0.0
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.expect_body = True  # False for an answer to HEAD (it has no body, whatever it says)
        self.reused = False
        self.spoiled = False  # part of a request went unsent: never reused
        self.timed_out = False  # set by the idle timer for the wait it ended
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._write_paused = False
        self._reading_paused = False
        self.begin()

    def begin(self) -> None:
        """Ready for the next answer."""
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.received = False
        self.error: UpstreamError | None = None
        self.pieces: list[bytes] = []
        self.buffered = 0
        self._interim = False
        self._version = "1.1"
        self.declared_length = -1  # the answer's Content-Length when it alone frames the body
        # Body bytes still to come of a Content-Length answer, counted past the parser; -1 when
        # the parser frames the body (chunked, to EOF, none) or the answer is complete.
        self._body_left = -1

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.received = True
        if self._body_left > 0:
            self._counted_body(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail("HttpParserError")
            self.close()

    def eof_received(self) -> bool | None:
        self._ended()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._ended()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- httptools callbacks -----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue, 103): the real one follows
            self._interim = True
            self.headers = []
            return
        self.status = status
        self._version = self.parser.get_http_version()
        self.headers_done = True
        self.declared_length = self._declared_length()
        if self.expect_body and status not in (204, 304):
            self._body_left = self.declared_length
        self._wake()

    def _declared_length(self) -> int:
        """The answer's Content-Length when it alone frames the body, else -1."""
        length = -1
        for name, value in self.headers:
            if name == b"transfer-encoding":
                return -1
            if name == b"content-length":
                if length != -1 or not value.strip().isdigit():
                    return -1  # repeated or malformed: left to the parser, which refuses it
                length = int(value)
        return length

    def on_body(self, body: bytes) -> None:
        if self._body_left > 0:
            self._body_left -= len(body)
        self._add(body)
        self._wake()

    def _add(self, piece: bytes) -> None:
        """Keep a body piece for the request; pause reading once ``read_buffer`` bytes wait."""
        self.pieces.append(piece)
        self.buffered += len(piece)
        if self.buffered >= self.read_buffer and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self.complete = True
        self._body_left = -1
        self.keep_alive = self.parser.should_keep_alive()  # only valid inside this callback
        self._wake()

    # -- a Content-Length body, past the parser ----------------------------------------------

    def _counted_body(self, data: bytes) -> None:
        left = self._body_left
        if len(data) > left:  # the answer ends inside this read, and more follows it
            self.spoiled = True  # bytes nobody asked for: never reuse this connection
            data = data[:left]
        self._add(data)
        self._body_left = left - len(data)
        if self._body_left == 0:
            self._body_left = -1
            self.parser = httptools.HttpResponseParser(self)  # the old one stopped mid-body
            self.complete = True
            tokens = {
                t.strip().lower()
                for n, v in self.headers
                if n == b"connection"
                for t in v.split(b",")
            }
            self.keep_alive = self._version == "1.1" and b"close" not in tokens
        self._wake()

    # -- for the request ---------------------------------------------------------------------

    def _ended(self) -> None:
        """EOF or close: the end of an answer that runs to EOF, else an answer cut short."""
        if self.complete or self.error is not None:
            return
        names = {n for n, _ in self.headers}
        if (
            self.headers_done
            and b"content-length" not in names
            and b"transfer-encoding" not in names
        ):
            self.complete = True
            self.closed = True  # never reused: the server ended the connection with it
            self._wake()
        else:
            self._fail("ServerDisconnectedError")

    def _fail(self, reason: str) -> None:
        if self.error is None and not self.complete:
            self.error = UpstreamError(reason)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until something new arrived (headers, body, the end) or ``timeout`` passed."""
        self._waiter = self.loop.create_future()
        try:
            await self._await(self._waiter, timeout)
        finally:
            self._waiter = None

    async def _await(self, future: asyncio.Future[None], timeout: float) -> None:
        """``future``, or an ``UpstreamError("TimeoutError")`` once ``timeout`` passed.

        A body crosses in several waits; a timer per wait (``asyncio.timeout``) cost more than
        the rest of the wait. Instead one timer stays armed per connection: when it fires it
        fails the wait in progress if that wait is ``timeout`` old, else re-arms for the rest
        (and, with no wait in progress, lapses until the next wait arms it again)."""
        self._wait_started = now = self.loop.time()
        self._wait_limit = timeout
        self.timed_out = False
        if self._timer is None:
            self._timer = self.loop.call_at(now + timeout, self._on_timer)
        elif self._timer.when() > now + timeout:  # a shorter limit than the armed one
            self._timer.cancel()
            self._timer = self.loop.call_at(now + timeout, self._on_timer)
        await future
        if self.timed_out:
            self.timed_out = False
            raise UpstreamError("TimeoutError")

    def _on_timer(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done() or self.closed:
            return
        due = self._wait_started + self._wait_limit
        if self.loop.time() < due:
            self._timer = self.loop.call_at(due, self._on_timer)
            return
        self.timed_out = True
        waiter.set_result(None)

    def take(self) -> list[bytes]:
        """Every body byte that arrived since the last call: small pieces joined into one,
        large ones as they came (a copy of a large piece costs more than passing it on
        alone)."""
        pieces = self.pieces
        if len(pieces) > 1 and self.buffered < JOIN_BELOW:
            pieces = [b"".join(pieces)]
        self.pieces = []
        self.buffered = 0
        if self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = False
            self.transport.resume_reading()
        return pieces

    async def drain(self, timeout: float) -> None:
        """Wait while the socket's write buffer is full (or until an answer or close)."""
        if not self._write_paused or self.closed or self.headers_done:
            return
        self._drained = self.loop.create_future()
        self._waiter = self._drained  # an early answer or a failure ends the wait too
        try:
            await self._await(self._drained, timeout)
        finally:
            self._drained = None
            self._waiter = None

    def write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise UpstreamError("ServerDisconnectedError")
        self.transport.write(data)

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()

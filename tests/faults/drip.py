"""Real HTTP servers on 127.0.0.1 that answer one byte a second (slow-loris identity hosts)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
    + b" " * 4096
)


class DrippingServers:
    """``count`` listening ports; every connection gets its answer one byte per ``interval``."""

    def __init__(self, count: int, interval: float = 1.0) -> None:
        self.count = count
        self.interval = interval
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._servers: list[asyncio.base_events.Server] = []
        self.ports: list[int] = []
        self.connections = 0

    def __enter__(self) -> DrippingServers:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        for _ in range(self.count):
            server = await asyncio.start_server(self._drip, "127.0.0.1", 0)
            self._servers.append(server)
            self.ports.append(server.sockets[0].getsockname()[1])

    async def _stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in asyncio.all_tasks(self.loop):
            if task is not asyncio.current_task():
                task.cancel()

    async def _drip(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(OSError, ConnectionError, asyncio.CancelledError):
            await reader.read(65536)
            for i in range(len(RESPONSE)):
                writer.write(RESPONSE[i : i + 1])
                await writer.drain()
                await asyncio.sleep(self.interval)
        writer.transport.abort()

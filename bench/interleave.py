"""Sequential GETs that alternate between two URLs on one keep-alive connection each: the added
latency of one route over another, measured microseconds apart instead of in wrk runs seconds
apart (on a shared VM the drift between two runs is larger than a scope check).

Run as its own process, so the client never shares a GIL with the server it times:

  python bench/interleave.py PAIRS URL_A URL_B [Header: value ...]

prints one JSON object: each URL's p50 (µs), and the median of the per-pair differences A - B.
The client is a raw socket speaking HTTP/1.1 (requests built once, answers framed by
Content-Length), so its own cost per request is a few µs and the same for both URLs.
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


class _Conn:
    def __init__(self, url: str, headers: list[str]) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port or 80))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", *headers, "", ""]
        self.request = "\r\n".join(lines).encode("latin-1")
        self.buf = b""

    def get(self) -> int:
        """One request; its status."""
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += self._recv()
        self.buf = rest[length:]
        return int(head.split(b" ", 2)[1])

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise RuntimeError("the server closed the connection")
        return data


def measure(pairs: int, url_a: str, url_b: str, headers: list[str]) -> dict[str, float]:
    a, b = _Conn(url_a, headers), _Conn(url_b, headers)
    clock = time.perf_counter
    for _ in range(200):  # warm both paths
        a.get()
        b.get()
    da: list[float] = []
    db: list[float] = []
    for i in range(pairs):
        first, second, out_1, out_2 = (a, b, da, db) if i % 2 == 0 else (b, a, db, da)
        t0 = clock()
        s1 = first.get()
        t1 = clock()
        s2 = second.get()
        t2 = clock()
        if s1 != 200 or s2 != 200:
            raise RuntimeError(f"answers {s1}/{s2}, not 200")
        out_1.append(t1 - t0)
        out_2.append(t2 - t1)
    return {
        "a_p50_us": statistics.median(da) * 1e6,
        "b_p50_us": statistics.median(db) * 1e6,
        "added_us": statistics.median(x - y for x, y in zip(da, db, strict=True)) * 1e6,
    }


def interleaved(pairs: int, url_a: str, url_b: str, headers: dict[str, str]) -> dict[str, float]:
    """:func:`measure` in a child process (see the module docstring)."""
    args = [f"{k}: {v}" for k, v in headers.items()]
    out = subprocess.run(  # noqa: S603 - this interpreter and this file
        [sys.executable, str(Path(__file__)), str(pairs), url_a, url_b, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:])))

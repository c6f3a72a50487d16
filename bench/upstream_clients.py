"""Which async HTTP client for the gateway's upstream leg? Measured, not guessed.

  python bench/upstream_clients.py [--quick]

A raw ASGI upstream (uvicorn + httptools, its own process) answers a small JSON body or 1 MB;
this process runs ``concurrency`` tasks issuing GETs over one pooled client, streaming each
body chunk by chunk as the proxy does, for httpx.AsyncClient, aiohttp.ClientSession and the
gateway's own client (``athkit.gateway.upstream_http``), alternating, on uvloop as the gateway
runs. Prints requests/s per client and concurrency.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import aiohttp
import httpx
import uvloop
from common import header, parser

from athkit.gateway.upstream_http import Origin, UpstreamClient
from athkit.web.serving import free_port

UPSTREAM = r"""
import sys, uvicorn
SMALL = b'{"sub":"alice","scope":"api:read","client_id":"x"}'
BIG = bytes(range(256)) * 4096
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = BIG if scope["path"] == "/big" else SMALL
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, http="httptools", loop="uvloop")
"""


async def run_httpx(url: str, concurrency: int, seconds: float) -> float:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits) as client:

        async def one() -> None:
            req = client.build_request("GET", url)
            resp = await client.send(req, stream=True)
            async for _ in resp.aiter_raw():
                pass
            await resp.aclose()

        return await _drive(one, concurrency, seconds)


async def run_aiohttp(url: str, concurrency: int, seconds: float) -> float:
    conn = aiohttp.TCPConnector(limit=200, ttl_dns_cache=300)
    async with aiohttp.ClientSession(connector=conn, auto_decompress=False) as session:

        async def one() -> None:
            async with session.get(url) as resp:
                async for _ in resp.content.iter_any():
                    pass

        return await _drive(one, concurrency, seconds)


async def run_athkit(url: str, concurrency: int, seconds: float) -> float:
    client = UpstreamClient()
    origin = Origin.of(url)
    path = "/" + url.split("/", 3)[3]
    try:

        async def one() -> None:
            resp = await client.request(origin, "GET", path, [])
            try:
                async for _ in resp.chunks():
                    pass
            finally:
                resp.release()

        return await _drive(one, concurrency, seconds)
    finally:
        await client.close()


CLIENTS = {"httpx": run_httpx, "aiohttp": run_aiohttp, "athkit": run_athkit}


async def _drive(one: object, concurrency: int, seconds: float) -> float:
    for _ in range(20):
        await one()  # type: ignore[operator]
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await one()  # type: ignore[operator]
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    header("athkit bench: upstream HTTP clients for the proxy", args)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(port)])  # noqa: S603
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(base + "/")
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        seconds, rounds = (1.0, 1) if args.quick else (3.0, 3)
        print(f"{'client':<8} {'body':<6} {'tasks':>5} {'req/s':>9}")
        for path in ("/small", "/big"):
            for conc in (1, 10, 50):
                results: dict[str, list[float]] = {name: [] for name in CLIENTS}
                for rnd in range(rounds):
                    order = list(CLIENTS) if rnd % 2 == 0 else list(CLIENTS)[::-1]
                    for name in order:
                        fn = CLIENTS[name]
                        results[name].append(uvloop.run(fn(base + path, conc, seconds)))
                for name, vals in results.items():
                    best = sorted(vals)[len(vals) // 2]
                    print(f"{name:<8} {path[1:]:<6} {conc:>5} {best:>9,.0f}", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()

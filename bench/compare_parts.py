"""The ATH Shop parts of ``bench/compare.py``: protected vs open, token checks, flows, revocation.

Not a package (see ``common.py``). ``python bench/compare_parts.py serve-shop PORT DIR PASSWORD``
is the shop process the concurrent flows run against.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from common import (
    SHOP_PASSWORD,
    Env,
    api_headers,
    environment,
    no_gc,
    run_flow,
)
from flowload import FLOW_CLIENT, IdentityHost, run_users
from interleave import interleaved
from loadgen import wrk
from sqlalchemy import event
from token_check import OPEN, PROTECTED, REQUIRED, add_open_route

from athkit.client import ATHClient
from athkit.demo.agent import DEVELOPER, create_agent_identity_app
from athkit.demo.browser import HTTPBrowser
from athkit.demo.shop import DEMO_USER, create_shop_app
from athkit.web.serving import BackgroundServer, free_port

DOCS = Path(__file__).resolve().parent.parent / "docs" / "forward-auth.md"
REDIS_URL = "redis://127.0.0.1:6379/0"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
#: Processes the concurrent users are spread over (``flowload.py``).
FLOW_PROCS = int(os.environ.get("ATHKIT_BENCH_FLOW_PROCS", "2"))


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def nginx_snippet() -> str:
    """The nginx forward-auth snippet of docs/forward-auth.md (the one the CI test runs)."""
    text = DOCS.read_text()
    m = re.search(r"<!-- nginx-forward-auth -->\s*```nginx\n(.*?)```", text, re.S)
    if not m:
        raise RuntimeError(f"no nginx-forward-auth snippet in {DOCS}")
    return m.group(1)


def forward_auth_block(listen_port: int, athkit_port: int, api_port: int, secret: str) -> str:
    """The docs snippet with this run's ports (athkit 8080, the API 9000, nginx 8443 there)."""
    return (
        nginx_snippet()
        .replace("127.0.0.1:8080", f"127.0.0.1:{athkit_port}")
        .replace("127.0.0.1:9000", f"127.0.0.1:{api_port}")
        .replace("127.0.0.1:8443", f"127.0.0.1:{listen_port}")
        .replace("CHANGE-ME-forward-auth-secret", secret)
    )


def shop_inprocess(quick: bool) -> dict[str, float]:
    """Protected vs open over wrk, in-process token checks/s and commits per flow (one shop)."""
    figures: dict[str, float] = {}
    with environment(add_open_route) as env:
        flow = run_flow(env)
        headers = api_headers(flow)
        urls = {"protected": env.shop_url + PROTECTED, "open": env.shop_url + OPEN}
        for u in urls.values():
            r = httpx.get(u, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"{u}: {r.status_code} {r.text[:200]}")
            wrk(u, headers, connections=10, seconds=1)
        rounds, seconds = (3, 1) if quick else (6, 3)
        # The added p50 (tens of µs) is smaller than the drift of a shared VM between two runs
        # a few seconds apart: at one connection, twice the rounds of half the length, paired.
        plan = [(rnd, 1, max(1, seconds // 2)) for rnd in range(2 * rounds)]
        plan += [(rnd, 50, seconds) for rnd in range(rounds)]
        res: dict[tuple[str, int], list[tuple[float, float]]] = {}
        for rnd, conns, length in sorted(plan):
            order = list(urls) if rnd % 2 == 0 else list(urls)[::-1]
            for name in order:
                w = wrk(urls[name], headers, connections=conns, seconds=length)
                if w.errors:
                    print(f"  !! {name} c{conns}: {w.errors} errors")
                res.setdefault((name, conns), []).append((w.rps, w.p50))
        for (name, conns), vals in sorted(res.items()):
            print(
                f"  {name:<9} c{conns:<3} {med([v[0] for v in vals]):>8,.0f} req/s"
                f"  p50 {med([v[1] for v in vals]) * 1e6:>7.0f} µs"
            )
        pairs1 = zip(res[("protected", 1)], res[("open", 1)], strict=True)
        figures["protected_added_wrk_p50_us"] = med([(a[1] - b[1]) * 1e6 for a, b in pairs1])
        # The tracked figure: requests alternating protected/open microseconds apart, one
        # connection each, in a client process of its own (bench/interleave.py).
        seq = interleaved(3000 if quick else 10000, urls["protected"], urls["open"], headers)
        print(
            f"  sequential, alternating: protected p50 {seq['a_p50_us']:.0f} µs,"
            f" open {seq['b_p50_us']:.0f} µs, added (median of pairs) {seq['added_us']:.1f} µs"
        )
        figures["protected_added_p50_us"] = seq["added_us"]
        pairs50 = zip(res[("protected", 50)], res[("open", 50)], strict=True)
        figures["protected_c50_ratio"] = med([a[0] / b[0] for a, b in pairs50])
        pairs_seq = zip(res[("protected", 1)], res[("open", 1)], strict=True)
        figures["protected_c1_ratio"] = med([a[0] / b[0] for a, b in pairs_seq])
        figures["protected_added_inprocess_us"] = _asgi_added_us(env, headers)
        figures["token_checks_per_s"] = _token_checks(env, flow.access_token, flow.agent.agent_id)
        figures["commits_per_flow"], figures["sql_per_flow"] = _count_commits(env)
    return figures


def _asgi_added_us(env: Env, headers: dict[str, str], batches: int = 12, calls: int = 400) -> float:
    """What ``require_scopes`` adds to a call, without sockets: the shop app called as ASGI
    in this process, protected and open batches alternating; median of the paired gaps (µs)."""
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"host", env.shop_url.split("//", 1)[1].encode()))

    def scope(path: str) -> dict[str, object]:
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": raw,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 80),
        }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: set[int] = set()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    async def batch(path: str) -> float:
        t0 = time.perf_counter()
        for _ in range(calls):
            await env.shop_app(scope(path), receive, send)
        return (time.perf_counter() - t0) / calls * 1e6

    async def run() -> float:
        await batch(PROTECTED)
        await batch(OPEN)
        gaps = []
        for i in range(batches):
            order = (PROTECTED, OPEN) if i % 2 == 0 else (OPEN, PROTECTED)
            took = {path: await batch(path) for path in order}
            gaps.append(took[PROTECTED] - took[OPEN])
        return med(gaps)

    added = asyncio.run(run())
    if statuses != {200}:
        raise RuntimeError(f"in-process calls answered {statuses}")
    print(f"  in process (ASGI, no sockets): require_scopes adds {added:.1f} µs per call")
    return added


def _token_checks(env: Env, token: str, agent_id: str) -> float:
    svc = env.service
    for _ in range(300):
        svc.validate(token, agent_header=agent_id, provider_id="ath-shop", required=REQUIRED)
    best = 0.0
    for _ in range(3):
        n = 0
        with no_gc():
            start = time.perf_counter()
            deadline = start + 0.5
            while time.perf_counter() < deadline:
                for _ in range(200):
                    svc.validate(
                        token, agent_header=agent_id, provider_id="ath-shop", required=REQUIRED
                    )
                n += 200
            rate = n / (time.perf_counter() - start)
        best = max(best, rate)
    print(f"  ATHService.validate, warm token: {best:,.0f} checks/s (best of 3 half-seconds)")
    return best


def _count_commits(env: Env) -> tuple[float, float]:
    counts: Counter[str] = Counter()
    engine = env.service.store.db.engine

    def on_sql(*_a: object) -> None:
        counts["sql"] += 1

    def on_commit(*_a: object) -> None:
        counts["commit"] += 1

    browser = env.browser()
    try:
        run_flow(env, browser=browser)  # sign in outside the count
        event.listen(engine, "before_cursor_execute", on_sql)
        event.listen(engine, "commit", on_commit)
        try:
            for _ in range(3):
                run_flow(env, browser=browser)
        finally:
            event.remove(engine, "before_cursor_execute", on_sql)
            event.remove(engine, "commit", on_commit)
    finally:
        browser.close()
    print(f"  per signed-in flow: {counts['commit'] / 3:g} commits, {counts['sql'] / 3:g} SQL")
    return counts["commit"] / 3, counts["sql"] / 3


def flows_concurrent(
    tmp: Path, quick: bool, users: int = 10, procs: int = FLOW_PROCS
) -> dict[str, float]:
    """Signed-in flows/s: ``users`` concurrent users (over ``procs`` processes, see
    ``flowload.py``) against ATH Shop in its own process (SQLite)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(  # noqa: S603 - this interpreter and this file
        [sys.executable, __file__, "serve-shop", str(port), str(tmp / "shop"), SHOP_PASSWORD],
        stdin=subprocess.DEVNULL,
    )
    host: IdentityHost | None = None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/", timeout=2)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("shop did not start") from None
                time.sleep(0.05)
        host = IdentityHost(tmp / "identity")
        seconds = 5.0 if quick else 15.0
        cpu0: list[float] = []

        def started() -> None:
            print("  timed section starts", flush=True)
            cpu0.append(cpu_seconds(proc.pid))

        res = run_users(
            url, host, SHOP_PASSWORD, users=users, procs=procs, seconds=seconds, on_start=started
        )
        shop_cpu = cpu_seconds(proc.pid) - cpu0[0]
        rate = res.flows / res.wall
        per = 1e3 / res.flows
        print(
            f"  {res.flows} flows in {res.wall:.1f} s by {users} users in {procs} processes:"
            f" {rate:.1f} flows/s"
        )
        print(
            f"  CPU per flow: shop {shop_cpu * per:.1f} ms, users {res.users_cpu * per:.1f} ms"
            f" (users' client: {FLOW_CLIENT}; identity documents: {host.server_name});"
            f" load average {os.getloadavg()[0]:.2f}"
        )
        return {
            "flows_per_s": rate,
            "flows_shop_cpu_ms": shop_cpu * per,
            "flows_users_cpu_ms": res.users_cpu * per,
        }
    finally:
        if host is not None:
            host.stop()
        proc.terminate()
        proc.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def revocation_propagation(tmp: Path, trials: int = 100) -> dict[str, float]:
    """Revoke on node A, poll node B until it refuses; max over ``trials`` fresh tokens."""
    import psycopg

    name = f"athkit_bench_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    pg_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    prefix = f"athkit-bench:{secrets.token_hex(6)}:"
    id_app = create_agent_identity_app()
    id_server = BackgroundServer(id_app).start()
    servers: list[BackgroundServer] = []
    try:
        port_a, port_b = free_port(), free_port()
        public = f"http://127.0.0.1:{port_a}"
        for node, port in (("a", port_a), ("b", port_b)):
            app = create_shop_app(
                public_url=public,
                data_dir=tmp / node,
                database_url=pg_url,
                redis_url=REDIS_URL,
                redis_prefix=prefix,
                dev_mode=True,
                password=SHOP_PASSWORD,
            )
            servers.append(BackgroundServer(app, port=port).start())
        node_b = f"http://127.0.0.1:{port_b}"
        env = Env(public, None, None, id_app, id_server, tmp)  # type: ignore[arg-type]
        agent = env.new_agent("revoker")
        times: list[float] = []  # from the revocation's answer to node B's first refusal
        from_send: list[float] = []  # the same, counted from sending the revocation
        never_after = True
        with ATHClient(public, agent.agent_id, agent.key) as client:
            client.register(
                developer=DEVELOPER,
                providers=[{"provider_id": "ath-shop", "scopes": ["products:read"]}],
            )
            browser = HTTPBrowser(DEMO_USER, SHOP_PASSWORD)
            http_b = httpx.Client(timeout=10)
            try:
                for _ in range(trials):
                    auth = client.authorize("ath-shop", ["products:read"])
                    browser.open_consent(auth.authorization_url)
                    if browser.decide(approve=True).status_code != 200:
                        raise RuntimeError("consent failed")
                    token = client.exchange_token(auth.ath_session_id).access_token
                    h = {"Authorization": f"Bearer {token}", "X-ATH-Agent-ID": agent.agent_id}
                    for _ in range(3):  # node B has seen (and may cache) the live token
                        if http_b.get(f"{node_b}/api/products", headers=h).status_code != 200:
                            raise RuntimeError("live token refused on node B")
                    t0 = time.perf_counter()
                    client.revoke(token)
                    t1 = time.perf_counter()  # node A has committed and answered
                    while http_b.get(f"{node_b}/api/products", headers=h).status_code == 200:
                        if time.perf_counter() - t0 > 5:
                            raise RuntimeError("node B still accepts a revoked token after 5 s")
                    done = time.perf_counter()
                    times.append(done - t1)
                    from_send.append(done - t0)
                    for _ in range(5):
                        if http_b.get(f"{node_b}/api/products", headers=h).status_code == 200:
                            never_after = False
            finally:
                browser.close()
                http_b.close()
        print(
            f"  {trials} trials; from node A's answer to the revocation until node B refuses: "
            f"p50 {med(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms; counted from "
            f"sending it: p50 {med(from_send) * 1e3:.1f} ms, max {max(from_send) * 1e3:.1f} ms; "
            f"accepted again afterwards: {'never' if never_after else 'YES (bug)'}"
        )
        return {
            "revocation_propagation_max_ms": max(times) * 1e3 if never_after else float("inf"),
            "revocation_propagation_p50_ms": med(times) * 1e3,
            "revocation_from_send_max_ms": max(from_send) * 1e3,
        }
    finally:
        for s in servers:
            s.stop()
        id_server.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _serve_shop(port: str, data_dir: str, password: str) -> None:
    import uvicorn

    url = f"http://127.0.0.1:{port}"
    app = create_shop_app(public_url=url, data_dir=data_dir, dev_mode=True, password=password)
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning", access_log=False)


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "serve-shop":
    _serve_shop(*sys.argv[2:])

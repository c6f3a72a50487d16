"""Cost of the §7 token check (``require_scopes``), in-process and over HTTP.

  .venv/bin/python bench/token_check.py [--quick] [--profile]

(a) ``ATHService.validate`` called in a loop on a warm token (obtained through the real flow on
    a real server): validations/s, per-call p50/p99, and the same for its parts (hash the token,
    load the row, apply the checks).
(b) Sequential GET over one keep-alive ``httpx.Client``: ``/api/products`` (behind
    ``Depends(require_scopes("products:read"))``) vs ``/bench/products-open``, the same body
    with no dependency, added to the shop app here. The tracked figure is the p50 ratio
    protected/unprotected. Routes are measured in alternating rounds so drift hits both.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from common import (
    PROVIDER_ID,
    Env,
    api_headers,
    environment,
    header,
    ms,
    no_gc,
    parser,
    percentile,
    run_flow,
    table,
)
from fastapi import FastAPI

from athkit.core.secrets import hash_secret
from athkit.core.tokens import check_token
from athkit.demo.shop import PRODUCTS

PROTECTED = "/api/products"
OPEN = "/bench/products-open"
REQUIRED = ("products:read",)


def add_open_route(app: FastAPI) -> None:
    """The products handler's body on a route without the scope dependency."""

    @app.get(OPEN)
    async def products_open() -> dict[str, Any]:
        return {"products": PRODUCTS}


def time_calls(fn: Callable[[], object], *, seconds: float, max_calls: int) -> list[float]:
    """Per-call durations (s) of ``fn`` until ``seconds`` elapse or ``max_calls`` calls."""
    out: list[float] = []
    clock = time.perf_counter
    deadline = clock() + seconds
    with no_gc():
        while len(out) < max_calls:
            t0 = clock()
            fn()
            t1 = clock()
            out.append(t1 - t0)
            if t1 > deadline:
                break
    return out


def bench_inprocess(env: Env, token: str, agent_id: str, quick: bool) -> None:
    svc = env.service
    seconds = 1.0 if quick else 3.0
    max_calls = 200_000
    token_hash = hash_secret(token)
    row = svc.store.get_token(token_hash)
    now = datetime.now(UTC)

    def validate() -> object:
        return svc.validate(
            token, agent_header=agent_id, provider_id=PROVIDER_ID, required=REQUIRED
        )

    parts: list[tuple[str, Callable[[], object]]] = [
        ("ATHService.validate (whole)", validate),
        ("  hash_secret(token)", lambda: hash_secret(token)),
        ("  store.get_token(hash)", lambda: svc.store.get_token(token_hash)),
        (
            "  check_token(row, ...)",
            lambda: check_token(
                row, now=now, agent_header=agent_id, provider_id=PROVIDER_ID, required=REQUIRED
            ),
        ),
    ]
    for _ in range(300):  # warm-up: SQLAlchemy statement cache, pool connection
        validate()
    rows = []
    for name, fn in parts:
        durations = time_calls(
            fn, seconds=seconds if "whole" in name else seconds / 3, max_calls=max_calls
        )
        total = sum(durations)
        rows.append(
            [
                name,
                f"{len(durations)}",
                f"{len(durations) / total:,.0f}",
                f"{percentile(durations, 50) * 1e6:.1f}",
                f"{percentile(durations, 99) * 1e6:.1f}",
            ]
        )
    print("(a) in-process, warm token, one thread")
    print(table(["call", "n", "calls/s", "p50 µs", "p99 µs"], rows))
    print()


def profile_validate(env: Env, token: str, agent_id: str, n: int) -> None:
    svc = env.service
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        svc.validate(token, agent_header=agent_id, provider_id=PROVIDER_ID, required=REQUIRED)
    prof.disable()
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(18)
        print(f"cProfile of {n} validate calls, by {key}:")
        text = buf.getvalue()
        print(text[text.find("   ncalls") :].rstrip())
        print()


def bench_http(env: Env, headers: dict[str, str], quick: bool) -> None:
    rounds, per_round, warmup = (4, 150, 150) if quick else (10, 400, 400)
    time_cap = 5.0 if quick else 25.0
    http = env.agent_http
    urls = {PROTECTED: env.shop_url + PROTECTED, OPEN: env.shop_url + OPEN}
    body = {u: http.get(urls[u], headers=headers).content for u in urls}
    assert body[PROTECTED] == body[OPEN], "routes must answer the same bytes"
    for _ in range(warmup):
        for u in urls.values():
            r = http.get(u, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"{u}: HTTP {r.status_code} {r.text[:200]}")
    samples: dict[str, list[float]] = {PROTECTED: [], OPEN: []}
    busy: dict[str, float] = {PROTECTED: 0.0, OPEN: 0.0}
    clock = time.perf_counter
    deadline = clock() + time_cap
    for rnd in range(rounds):
        order = [PROTECTED, OPEN] if rnd % 2 == 0 else [OPEN, PROTECTED]
        for path in order:
            url, out = urls[path], samples[path]
            with no_gc():
                start = clock()
                for _ in range(per_round):
                    t0 = clock()
                    r = http.get(url, headers=headers)
                    out.append(clock() - t0)
                    if r.status_code != 200:
                        raise RuntimeError(f"{path}: HTTP {r.status_code}")
                busy[path] += clock() - start
        if clock() > deadline:
            break
    rows = []
    for path, label in ((PROTECTED, "protected (require_scopes)"), (OPEN, "unprotected")):
        d = samples[path]
        rows.append(
            [
                f"GET {path}  {label}",
                f"{len(d)}",
                f"{len(d) / busy[path]:,.0f}",
                ms(percentile(d, 50)),
                ms(percentile(d, 99)),
                ms(sum(d) / len(d)),
            ]
        )
    print("(b) HTTP, sequential, one keep-alive httpx.Client, same headers on both routes")
    print(table(["route", "n", "req/s", "p50 ms", "p99 ms", "mean ms"], rows))
    p50p, p50o = percentile(samples[PROTECTED], 50), percentile(samples[OPEN], 50)
    p99p, p99o = percentile(samples[PROTECTED], 99), percentile(samples[OPEN], 99)
    print()
    print(f"p50 ratio protected/unprotected: {p50p / p50o:.2f}   (tracked figure)")
    print(f"p99 ratio protected/unprotected: {p99p / p99o:.2f}")
    print(f"p50 added by the token check:    {(p50p - p50o) * 1000:.3f} ms")
    print()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--profile", action="store_true", help="also cProfile a validate loop")
    args = p.parse_args()
    header("athkit bench: token check (§7 require_scopes)", args)
    started = time.perf_counter()
    with environment(add_open_route) as env:
        flow = run_flow(env)
        if "products:read" not in flow.effective_scopes:
            raise RuntimeError(f"unexpected scopes {flow.effective_scopes}")
        print(
            f"token obtained via real flow in {flow.total * 1000:.1f} ms "
            f"(scopes {', '.join(flow.effective_scopes)}); shop at {env.shop_url}, "
            f"SQLite in {env.data_dir}"
        )
        print()
        bench_inprocess(env, flow.access_token, flow.agent.agent_id, args.quick)
        bench_http(env, api_headers(flow), args.quick)
        if args.profile:
            profile_validate(env, flow.access_token, flow.agent.agent_id, 5000)
    print(f"done in {time.perf_counter() - started:.1f} s; servers stopped, temp dir removed")


if __name__ == "__main__":
    main()

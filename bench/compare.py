"""The hot path side by side, in one run: gateway, nginx, forward-auth, token checks, flows.

  python bench/compare.py [--quick] [--only proxies|shop|flows|revocation ...]

Everything runs on 127.0.0.1 and is stopped afterwards: the upstream OpenID provider (node),
Example Mail (its own process), the athkit gateway (``athkit gateway serve``, its own process,
SQLite), nginx (Debian's, our own process and config in a temp dir), a do-nothing decider for
nginx ``auth_request`` (the floor), ATH Shop (its own process for flows, in-process for token
checks), two shop nodes on PostgreSQL + Redis for revocation propagation. Load comes from
Debian's wrk; routes alternate within each round; ratios are medians over rounds.

Routes (small ``GET /v1/me`` and 1 MB ``GET /v1/download``; 1, 10 and 50 connections):
direct (the API with the provider's token), gateway (``/ath/proxy/mail/...`` with the ATH
token), nginx (plain ``proxy_pass``), nginx_noop (``auth_request`` to an endpoint that only
answers 200), forward_auth (nginx ``auth_request`` to athkit's decision endpoint, docs/
forward-auth.md). Then ATH Shop's protected route vs the same route open, in-process token
checks/s, signed-in flows/s at 10 concurrent users, commits per flow, and how long a revocation
on one node takes to be refused on the other (100 trials). The last lines are ``FIGURE`` lines.

The flows' users run in two processes (``ATHKIT_BENCH_FLOW_PROCS``) as asyncio tasks on a lean
HTTP client (``bench/flowclient.py``: the same requests as the SDK's, ``ATHKIT_BENCH_FLOW_CLIENT
=sdk`` for ``ATHClient`` + ``HTTPBrowser`` in threads) and their identity documents are static
files behind nginx (``bench/flowload.py``), so the load generator is not the bottleneck;
``flows_shop_cpu_ms`` / ``flows_users_cpu_ms`` are the CPU each side spent per flow (robust to a
busy machine, unlike flows/s). ``--only PART`` runs some parts only.
"""

from __future__ import annotations

import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from common import header, parser
from compare_parts import (
    cpu_seconds,
    flows_concurrent,
    forward_auth_block,
    revocation_propagation,
    shop_inprocess,
)
from loadgen import NGINX_CONF, Nginx, WrkResult, noop_decider, wrk
from proxy import KEYS_ENV, SECRET_ENV, ath_token, launch_mail_api, upstream_token, wait_for

from athkit.crypto.sealing import new_key_spec
from athkit.demo.agent import create_agent_identity_app
from athkit.demo.mail_gateway import GatewayProcess, mail_gateway_config, to_toml
from athkit.demo.upstream import start_oidc_provider
from athkit.gateway.config import GatewayConfig
from athkit.web.serving import BackgroundServer, free_port

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
ONE_MB = 1024 * 1024
FA_ENV = "ATHKIT_BENCH_FORWARD_AUTH_SECRET"
SIZES = {"small": "/v1/me", "1mb": f"/v1/download?size={ONE_MB}"}
CONNS = (1, 10, 50)
#: The parts of a run, in order; ``--only PART`` runs a subset.
PARTS = ("proxies", "shop", "flows", "revocation")


#: Routes whose every request runs athkit's gateway process (its CPU per request is measured).
GATEWAY_ROUTES = ("gateway", "forward_auth")


def proxy_matrix(
    urls: dict[str, str],
    auth: dict[str, dict[str, str]],
    rounds: int,
    seconds: float,
    gateway_pid: int,
    cpu: dict[tuple[str, str, int], list[float]],
) -> dict[tuple[str, str, int], list[WrkResult]]:
    """wrk over every (route, size, connections), routes alternating inside each round; for the
    routes through athkit, the gateway process's CPU µs per request go into ``cpu``."""
    out: dict[tuple[str, str, int], list[WrkResult]] = {}
    routes = list(urls)
    for rnd in range(rounds):
        for size, path in SIZES.items():
            for conns in CONNS:
                order = routes if rnd % 2 == 0 else routes[::-1]
                for route in order:
                    if size == "1mb" and route == "nginx_noop":
                        continue
                    before = cpu_seconds(gateway_pid)
                    res = wrk(urls[route] + path, auth[route], connections=conns, seconds=seconds)
                    if route in GATEWAY_ROUTES and res.requests:
                        used = cpu_seconds(gateway_pid) - before
                        cpu.setdefault((route, size, conns), []).append(used / res.requests * 1e6)
                    if res.errors:
                        print(f"  !! {route} {size} c{conns}: {res.errors} errors", flush=True)
                    out.setdefault((route, size, conns), []).append(res)
        print(f"  proxy round {rnd + 1}/{rounds} done", flush=True)
    return out


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(
    m: dict[tuple[str, str, int], list[WrkResult]],
    cpu: dict[tuple[str, str, int], list[float]] | None = None,
) -> dict[str, float]:
    def rps(route: str, size: str, c: int) -> list[float]:
        return [r.rps for r in m.get((route, size, c), []) if not r.errors]

    def p50(route: str, size: str, c: int) -> list[float]:
        return [r.p50 for r in m.get((route, size, c), []) if not r.errors]

    print()
    print("route          size   conns      req/s   p50 ms   vs direct req/s")
    for (route, size, c), results in sorted(m.items()):
        base = med(rps("direct", size, c))
        r = med([x.rps for x in results])
        print(
            f"{route:<14} {size:<5} {c:>6} {r:>10,.0f} {med([x.p50 for x in results]) * 1e3:>8.3f}"
            f"   x{r / base:.2f}"
        )
    figures: dict[str, float] = {}

    def ratio_per_round(route: str, size: str, c: int, key: str) -> float:
        pairs = zip(m.get((route, size, c), []), m.get(("direct", size, c), []), strict=False)
        vals = [
            (getattr(a, key) / getattr(b, key)) for a, b in pairs if not a.errors and not b.errors
        ]
        return med(vals)

    def added_p50(route: str, size: str) -> float:
        pairs = zip(m.get((route, size, 1), []), m.get(("direct", size, 1), []), strict=False)
        return med([(a.p50 - b.p50) * 1e3 for a, b in pairs if not a.errors and not b.errors])

    for route in ("gateway", "nginx", "nginx_noop", "forward_auth"):
        figures[f"{route}_small_added_p50_ms"] = added_p50(route, "small")
        for c in CONNS:
            figures[f"{route}_small_c{c}_ratio"] = ratio_per_round(route, "small", c, "rps")
    for route in ("gateway", "nginx", "forward_auth"):
        figures[f"{route}_1mb_p50_ratio"] = ratio_per_round(route, "1mb", 1, "p50")
        figures[f"{route}_1mb_c50_ratio"] = ratio_per_round(route, "1mb", 50, "rps")
    figures["gateway_small_c50_vs_c1"] = med(rps("gateway", "small", 50)) / med(
        rps("gateway", "small", 1)
    )
    figures["direct_small_c50_rps"] = med(rps("direct", "small", 50))
    for (route, size, c), used in sorted((cpu or {}).items()):
        if c in (1, 50):  # athkit's own CPU per request: steadier than ratios on a noisy VM
            figures[f"{route}_{size}_c{c}_cpu_us"] = med(used)
    return figures


def profile_gateway(pid: int, url: str, headers: dict[str, str], tmp: Path) -> None:
    """py-spy on the gateway while wrk keeps 50 connections busy: where its CPU goes."""
    out = tmp / "gateway.pyspy"
    spy = subprocess.Popen(  # noqa: S603 - py-spy from the venv, fixed arguments
        [PY_SPY, "record", "--gil", "-p", str(pid), "-d", "8", "-r", "200", "-f", "raw"]
        + ["-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    wrk(url, headers, connections=50, seconds=9)
    spy.wait(timeout=60)
    inclusive: Counter[str] = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = {
            f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 2)[-1] + ")"
            for f in stack.split(";")
            if f
        }
        for f in frames:
            inclusive[f] += n
    print(f"py-spy --gil, gateway at 50 connections: {total} samples; inclusive share")
    for name, n in inclusive.most_common(60):
        print(f"  {100 * n / total:5.1f}%  {name}")


def run_proxies(tmp: Path, quick: bool, profile: bool = False) -> dict[str, float]:
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    gw_url = f"http://127.0.0.1:{port}"
    op = start_oidc_provider(
        [f"{gw_url}/ath/callback", "http://127.0.0.1:9/direct-callback"], access_token_ttl=3600
    )
    api = launch_mail_api(op)
    id_app = create_agent_identity_app()
    id_server = BackgroundServer(id_app).start()
    noop = BackgroundServer(noop_decider).start()
    config = tmp / "gateway.toml"
    cfg = mail_gateway_config(
        gw_url,
        issuer=op.issuer,
        resource=op.resource,
        client_id=op.client_id,
        secret_env=SECRET_ENV,
        data_dir=tmp / "gw",
        token_keys_env=KEYS_ENV,
    )
    fa_secret = secrets.token_urlsafe(24)
    if "forward_auth" in GatewayConfig.model_fields:  # this athkit has forward-auth
        cfg["forward_auth"] = {"secret_env": FA_ENV}
    config.write_text(to_toml(cfg))
    env = {SECRET_ENV: op.client_secret, KEYS_ENV: new_key_spec("b1"), FA_ENV: fa_secret}
    gateway = GatewayProcess.start(config, env, port=port, log_level="warning")
    nginx: Nginx | None = None
    try:
        wait_for(api, f"{op.resource}/v1/me")
        api_port = int(op.resource.rsplit(":", 1)[1])
        ports = {"plain_port": free_port(), "noop_auth_port": free_port()}
        fa_port = free_port()
        has_fa = httpx.get(f"{gw_url}/ath/forward-auth/mail").status_code != 404
        block = forward_auth_block(fa_port, port, api_port, fa_secret) if has_fa else ""
        conf = NGINX_CONF.format(
            tmp=tmp / "nginx",
            api_port=api_port,
            noop_port=noop.port,
            forward_auth=block,
            **ports,
        )
        probes = [f"http://127.0.0.1:{p}/" for p in ports.values()]
        nginx = Nginx.start(conf, tmp / "nginx", probes)
        ath, agent_id = ath_token(gw_url, id_app, id_server.url)
        upstream = {"Authorization": f"Bearer {upstream_token(op)}"}
        ath_headers = {"Authorization": f"Bearer {ath}", "X-ATH-Agent-ID": agent_id}
        urls = {
            "direct": op.resource,
            "gateway": f"{gw_url}/ath/proxy/mail",
            "nginx": f"http://127.0.0.1:{ports['plain_port']}",
            "nginx_noop": f"http://127.0.0.1:{ports['noop_auth_port']}",
        }
        auth = {"direct": upstream, "gateway": ath_headers, "nginx": upstream}
        auth["nginx_noop"] = upstream
        if has_fa:
            urls["forward_auth"] = f"http://127.0.0.1:{fa_port}"
            auth["forward_auth"] = ath_headers
        else:
            print("  (this athkit has no /ath/forward-auth: forward_auth route skipped)")
        for route, url in urls.items():
            r = httpx.get(url + "/v1/me", headers=auth[route])
            if r.status_code != 200:
                raise RuntimeError(f"{route}: HTTP {r.status_code} {r.text[:300]}")
        for route, url in urls.items():  # warm-up: connections, caches
            wrk(url + "/v1/me", auth[route], connections=10, seconds=1)
        if profile:
            profile_gateway(gateway.process.pid, urls["gateway"] + "/v1/me", auth["gateway"], tmp)
            return {}
        # Three rounds even when quick: a ratio is the median over rounds, and one 1-second
        # round on a shared VM can land on a slow moment of either route.
        rounds, seconds = (3, 1) if quick else (3, 4)
        cpu: dict[tuple[str, str, int], list[float]] = {}
        matrix = proxy_matrix(urls, auth, rounds, seconds, gateway.process.pid, cpu)
        mem = gateway.memory_kib()
        print(f"gateway process: VmRSS {mem['VmRSS'] / 1024:.0f} MB")
        return summarize(matrix, cpu)
    finally:
        if nginx is not None:
            nginx.stop()
        gateway.stop()
        noop.stop()
        id_server.stop()
        api.terminate()
        api.wait(timeout=10)
        op.stop()


ORDER = [
    "gateway_small_added_p50_ms",
    "gateway_small_c50_ratio",
    "gateway_1mb_p50_ratio",
    "gateway_1mb_c50_ratio",
    "forward_auth_small_added_p50_ms",
    "forward_auth_small_c50_ratio",
    "protected_added_p50_us",
    "protected_c50_ratio",
    "token_checks_per_s",
    "flows_per_s",
    "commits_per_flow",
    "revocation_propagation_max_ms",
]


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--profile", action="store_true", help="only py-spy the gateway at c50")
    p.add_argument(
        "--only",
        choices=PARTS,
        action="append",
        help="run only this part (repeatable); its FIGURE lines only",
    )
    args = p.parse_args()
    header("athkit bench: the hot path side by side", args)
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="athkit-profile-") as tmp_name:
            run_proxies(Path(tmp_name), True, profile=True)
        return
    started = time.perf_counter()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="athkit-compare-") as tmp_name:
        tmp = Path(tmp_name)
        parts = set(args.only or PARTS)
        if "proxies" in parts:
            print("== proxies (wrk) ==", flush=True)
            figures.update(run_proxies(tmp / "proxies", args.quick))
        if "shop" in parts:
            print("\n== ATH Shop: protected vs open (wrk), token checks, commits ==", flush=True)
            figures.update(shop_inprocess(args.quick))
        if "flows" in parts:
            print("\n== signed-in flows at 10 concurrent users (SQLite) ==", flush=True)
            figures.update(flows_concurrent(tmp / "flows", args.quick))
        if "revocation" in parts:
            print("\n== revocation propagation (two nodes, PostgreSQL + Redis) ==", flush=True)
            figures.update(revocation_propagation(tmp / "nodes", trials=100))
    print(f"\ndone in {time.perf_counter() - started:.1f} s; everything stopped, temp dir removed")
    rest = sorted(k for k in figures if k not in ORDER)
    for name in rest + ORDER:
        if args.only and name not in figures:
            continue
        value = figures.get(name, float("nan"))
        print(f"FIGURE {name} {value:.4g}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

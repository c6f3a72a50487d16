"""Gateway proxy overhead: the same GET through the ATH gateway and straight to the API.

  .venv/bin/python bench/proxy.py [--quick]

Processes, all on 127.0.0.1: the upstream OpenID provider (node oidc-provider, installed on
first use), Example Mail (``python -m athkit.demo.mail_api``, its own process) and the gateway
(``athkit gateway serve --log-level warning``, its own process, SQLite in a temp dir). This
process is the client only: one keep-alive ``httpx.Client``, requests one after another.

* through the gateway: ``GET /ath/proxy/mail/v1/me`` with the ATH token (token, agent, route and
  scope checks, the sealed upstream token opened, the request forwarded, the answer streamed);
* direct: ``GET /v1/me`` at Example Mail with the provider's access token (same user, same JWT
  checks at the API).

Then the same for a 1 MB body (``/v1/download?size=1048576``, read whole). The tracked figure is
the overhead ratio: mean latency through the gateway / mean latency direct (= direct req/s /
gateway req/s, as requests run one at a time).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from common import header, ms, no_gc, parser, percentile, table

from athkit.client import AgentKey, ATHClient
from athkit.crypto.sealing import new_key_spec
from athkit.demo.agent import DEVELOPER, create_agent_identity_app, publish
from athkit.demo.browser import HTTPBrowser, complete_upstream_login
from athkit.demo.mail_gateway import GatewayProcess, mail_gateway_config, to_toml
from athkit.demo.upstream import OIDCProvider, start_oidc_provider
from athkit.web.serving import BackgroundServer, free_port

SECRET_ENV = "ATHKIT_BENCH_MAIL_SECRET"
KEYS_ENV = "ATHKIT_BENCH_GATEWAY_KEYS"
DIRECT_REDIRECT = "http://127.0.0.1:9/direct-callback"  # never contacted
ONE_MB = 1024 * 1024


def launch_mail_api(op: OIDCProvider) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "athkit.demo.mail_api"]
    command += ["--issuer", op.issuer, "--resource", op.resource]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL)


def wait_for(proc: subprocess.Popen[bytes], url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{url} did not answer") from None
            time.sleep(0.05)


def ath_token(gw_url: str, id_app: object, id_url: str) -> tuple[str, str]:
    """One full ATH flow through the gateway; returns (ATH access token, agent_id)."""
    key = AgentKey.generate("P-256", kid="default")
    agent_id = publish(id_app, id_url, key)  # type: ignore[arg-type]
    with ATHClient(gw_url, agent_id, key) as client:
        client.register(
            developer=DEVELOPER, providers=[{"provider_id": "mail", "scopes": ["mail:read"]}]
        )
        auth = client.authorize("mail", ["mail:read"])
        browser = HTTPBrowser("alice", "unused")
        try:
            browser.open_consent(auth.authorization_url)
            to_provider = browser.decide(approve=True)
            back = complete_upstream_login(browser.http, to_provider.headers["location"], "alice")
            done = browser.http.get(back.headers["location"])
            assert done.status_code == 200, done.text
        finally:
            browser.close()
        token = client.exchange_token(auth.ath_session_id)
    return token.access_token, agent_id


def upstream_token(op: OIDCProvider) -> str:
    """The provider's access token for alice with api:read, by a plain PKCE code flow."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    params = {
        "response_type": "code",
        "client_id": op.client_id,
        "redirect_uri": DIRECT_REDIRECT,
        "scope": "openid api:read",
        "state": secrets.token_urlsafe(16),
        "code_challenge": challenge.decode(),
        "code_challenge_method": "S256",
    }
    with httpx.Client() as http:
        back = complete_upstream_login(http, f"{op.authorization_endpoint}?{urlencode(params)}")
    code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
    resp = httpx.post(
        op.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": DIRECT_REDIRECT,
            "code_verifier": verifier,
        },
        auth=(op.client_id, op.client_secret),
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


def measure(call: Callable[[], None], seconds: float, max_calls: int) -> tuple[list[float], float]:
    for _ in range(min(30, max_calls)):  # warm-up: connections, caches
        call()
    out: list[float] = []
    clock = time.perf_counter
    with no_gc():
        start = clock()
        deadline = start + seconds
        while len(out) < max_calls:
            t0 = clock()
            call()
            t1 = clock()
            out.append(t1 - t0)
            if t1 > deadline:
                break
        wall = clock() - start
    return out, wall


def getter(
    http: httpx.Client, url: str, headers: dict[str, str], size: int | None
) -> Callable[[], None]:
    def call() -> None:
        resp = http.get(url, headers=headers)
        if resp.status_code != 200 or (size is not None and len(resp.content) != size):
            raise RuntimeError(f"GET {url}: {resp.status_code} {resp.text[:200]}")

    return call


ROWS = (("GET /v1/me", "/v1/me", None), ("GET 1 MB", f"/v1/download?size={ONE_MB}", ONE_MB))


def compare(
    http: httpx.Client,
    gw_url: str,
    api_url: str,
    auth: dict[str, dict[str, str]],
    seconds: float,
    max_calls: int,
) -> tuple[list[list[str]], list[str]]:
    rows: list[list[str]] = []
    ratios: list[str] = []
    for label, path, size in ROWS:
        results = {}
        for route, url in (
            ("gateway", f"{gw_url}/ath/proxy/mail{path}"),
            ("direct", api_url + path),
        ):
            limit = max_calls if size is None else max_calls // 10
            lat, wall = measure(getter(http, url, auth[route], size), seconds, limit)
            results[route] = (lat, wall)
            rate = len(lat) / wall
            rows.append(
                [
                    f"{label} {route}",
                    f"{len(lat)}",
                    f"{rate:,.0f}",
                    ms(percentile(lat, 50)),
                    ms(percentile(lat, 99)),
                    f"{rate * size / ONE_MB:,.0f}" if size else "-",
                ]
            )
        (g_lat, g_wall), (d_lat, d_wall) = results["gateway"], results["direct"]
        mean_ratio = (g_wall / len(g_lat)) / (d_wall / len(d_lat))
        p50_ratio = percentile(g_lat, 50) / percentile(d_lat, 50)
        ratios.append(
            f"gateway overhead, {label}: x{mean_ratio:.2f} mean latency "
            f"(x{p50_ratio:.2f} at p50) vs direct"
        )
    return rows, ratios


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    header("athkit bench: gateway proxy overhead", args)
    seconds, max_calls = (1.0, 20_000) if args.quick else (7.0, 100_000)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="athkit-bench-proxy-") as tmp:
        port = free_port()
        gw_url = f"http://127.0.0.1:{port}"
        redirects = [f"{gw_url}/ath/callback", DIRECT_REDIRECT]
        op = start_oidc_provider(redirects, access_token_ttl=3600)
        api = launch_mail_api(op)  # starts while the gateway does
        id_app = create_agent_identity_app()
        id_server = BackgroundServer(id_app).start()
        config = Path(tmp) / "gateway.toml"
        cfg = mail_gateway_config(
            gw_url,
            issuer=op.issuer,
            resource=op.resource,
            client_id=op.client_id,
            secret_env=SECRET_ENV,
            data_dir=Path(tmp) / "gw",
            token_keys_env=KEYS_ENV,
        )
        config.write_text(to_toml(cfg))
        env = {SECRET_ENV: op.client_secret, KEYS_ENV: new_key_spec("b1")}
        gateway = GatewayProcess.start(config, env, port=port, log_level="warning")
        try:
            wait_for(api, f"{op.resource}/v1/me")
            print(f"gateway      {gw_url} (pid {gateway.process.pid}, SQLite, no access log)")
            print(f"Example Mail {op.resource} (pid {api.pid})")
            print(f"provider     {op.issuer} (node, pid {op.process.pid})")
            ath, agent_id = ath_token(gw_url, id_app, id_server.url)
            auth = {
                "gateway": {"Authorization": f"Bearer {ath}", "X-ATH-Agent-ID": agent_id},
                "direct": {"Authorization": f"Bearer {upstream_token(op)}"},
            }
            print(f"one request at a time, one keep-alive connection, <= {seconds:g} s per row")
            print()
            with httpx.Client(timeout=30) as http:
                rows, ratios = compare(http, gw_url, op.resource, auth, seconds, max_calls)
            print(table(["request", "n", "req/s", "p50 ms", "p99 ms", "MB/s"], rows))
            print()
            print("\n".join(ratios))
            mem = gateway.memory_kib()
            print(
                f"gateway process after the run: VmRSS {mem['VmRSS'] / 1024:.0f} MB, "
                f"peak {mem['VmHWM'] / 1024:.0f} MB"
            )
        finally:
            gateway.stop()
            id_server.stop()
            api.terminate()
            api.wait(timeout=10)
            op.stop()
    print(f"done in {time.perf_counter() - started:.1f} s; processes stopped, temp dir removed")


if __name__ == "__main__":
    main()

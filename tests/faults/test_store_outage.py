"""Items 2 and 3: a database that refuses connections or hangs answers a documented 503 on every
route within seconds (never a 500, never "allow", never a trace), and routes that need no
database (the host app's /login) stay fast meanwhile."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from athkit.client import ATHClient
from athkit.demo.agent import DEVELOPER
from athkit.demo.browser import HTTPBrowser
from athkit.demo.shop import DEMO_OPERATOR, create_shop_app
from athkit.web.serving import BackgroundServer, free_port
from tests.conftest import SHOP_PASSWORD, AgentIdentity, Shop
from tests.faults.conftest import via_proxy
from tests.faults.tcpfault import FaultyTCPProxy
from tests.integration.support import attest, authorize_body, register_body

#: Short bounds so that a hung database answers within a couple of seconds.
TIMEOUTS = {"db_connect_timeout": 1.0, "db_statement_timeout": 1.0, "db_pool_timeout": 1.0}
PROVIDER = "ath-shop"


@dataclass
class Setup:
    shop: Shop
    proxy: FaultyTCPProxy
    client: ATHClient
    token: str
    agent: AgentIdentity
    other: AgentIdentity
    authorization_url: str
    operator: httpx.Client


@pytest.fixture
def setup(
    tmp_path: Path,
    pg_database: str,
    pg_proxy: FaultyTCPProxy,
    new_agent: Callable[..., AgentIdentity],
) -> Iterator[Setup]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_shop_app(
        public_url=url,
        data_dir=tmp_path / "shop",
        database_url=via_proxy(pg_database, pg_proxy),
        dev_mode=True,
        password=SHOP_PASSWORD,
        ath_options=TIMEOUTS,
    )
    server = BackgroundServer(app, port=port).start()
    shop = Shop(url, app, server)
    agent = new_agent("outage")
    client = ATHClient(url, agent.agent_id, agent.key)
    client.register(
        developer=DEVELOPER, providers=[{"provider_id": PROVIDER, "scopes": ["products:read"]}]
    )
    auth = client.authorize(PROVIDER, ["products:read"])
    browser = HTTPBrowser("alice", SHOP_PASSWORD)
    browser.open_consent(auth.authorization_url)
    browser.decide(approve=True)
    browser.close()
    token = client.exchange_token(auth.ath_session_id).access_token
    pending = client.authorize(PROVIDER, ["products:read"]).authorization_url
    operator = httpx.Client(base_url=url, timeout=30)
    signed_in = operator.post(
        "/login", data={"username": DEMO_OPERATOR, "password": SHOP_PASSWORD, "next": "/"}
    )
    assert signed_in.status_code == 303
    try:
        yield Setup(shop, pg_proxy, client, token, agent, new_agent("late"), pending, operator)
    finally:
        operator.close()
        pg_proxy.set_mode("refuse")  # the server's pool must not wait on a hung proxy at stop
        server.stop()


def routes(s: Setup) -> dict[str, Callable[[], httpx.Response]]:
    """One request per ATH route, each valid up to the point where it needs the store."""
    url = s.shop.url
    bearer = {"Authorization": f"Bearer {s.token}", "X-ATH-Agent-ID": s.agent.agent_id}
    json_accept = {"Accept": "application/json"}
    cid, secret = s.client.client_id or "", s.client.client_secret or ""
    state = httpx.URL(s.authorization_url).params["state"]
    h = httpx.Client(base_url=url, timeout=30)
    return {
        "token check": lambda: h.get("/api/products", headers=bearer),
        "proxy": lambda: h.get(f"/ath/proxy/{PROVIDER}/api/products", headers=bearer),
        "register": lambda: h.post(
            "/ath/agents/register", json=register_body(s.other, url)
        ),
        "agent status": lambda: h.get(f"/ath/agents/{cid}", auth=(cid, secret)),
        "authorize": lambda: h.post(
            "/ath/authorize", json=authorize_body(s.agent, url, cid, state="t" * 43)
        ),
        "token": lambda: h.post(
            "/ath/token",
            json={
                "grant_type": "authorization_code",
                "client_id": cid,
                "client_secret": secret,
                "agent_attestation": attest(s.agent, f"{url}/ath/token"),
                "code": "ath_callback",
                "ath_session_id": "ses_unknown",
            },
        ),
        "revoke": lambda: h.post(
            "/ath/revoke", json={"token": s.token, "client_id": cid, "client_secret": secret}
        ),
        "consent page": lambda: s.operator.get(s.authorization_url, headers=json_accept),
        "consent form": lambda: s.operator.post(
            "/ath/oauth/authorize", data={"state": state}, headers=json_accept
        ),
        "callback": lambda: h.get(
            "/ath/callback", params={"code": "x", "state": state}, headers=json_accept
        ),
        "console": lambda: s.operator.get("/ath/console/agents"),
        "my agents": lambda: s.operator.get("/ath/my/agents"),
        "readiness": lambda: h.get("/ath/readyz"),
    }


def assert_unavailable(name: str, resp: httpx.Response) -> None:
    assert "Traceback" not in resp.text, name
    assert resp.status_code == 503, (name, resp.status_code, resp.text[:300])
    assert resp.headers["content-type"].startswith("application/json"), name
    assert resp.json()["code"] == "SERVICE_UNAVAILABLE", (name, resp.text)
    assert int(resp.headers["retry-after"]) >= 1, name


def test_database_refusing_connections_is_503_on_every_route(setup: Setup) -> None:
    setup.proxy.set_mode("refuse")
    for name, call in routes(setup).items():
        assert_unavailable(name, call())
    # The consent page a person sees is a page, with the same status.
    page = setup.operator.get(setup.authorization_url, headers={"Accept": "text/html"})
    assert page.status_code == 503 and "SERVICE_UNAVAILABLE" in page.text
    assert "Traceback" not in page.text
    # The process is alive: liveness answers without the database.
    assert httpx.get(f"{setup.shop.url}/ath/healthz").status_code == 200
    # Back up: the same token works again (nothing was revoked or cached as allowed).
    setup.proxy.set_mode("forward")
    bearer = {"Authorization": f"Bearer {setup.token}", "X-ATH-Agent-ID": setup.agent.agent_id}
    for _ in range(20):
        resp = httpx.get(f"{setup.shop.url}/api/products", headers=bearer)
        if resp.status_code == 200:
            break
        time.sleep(0.2)
    assert resp.status_code == 200, resp.text


def test_hung_database_answers_503_within_seconds(setup: Setup) -> None:
    setup.proxy.set_mode("hang")
    for name, call in routes(setup).items():
        start = time.monotonic()
        resp = call()
        elapsed = time.monotonic() - start
        assert_unavailable(name, resp)
        # connect (1 s) + pool wait (1 s) + statement (1 s), with room for a busy machine
        assert elapsed < 6.0, (name, elapsed)


def test_hung_database_does_not_block_routes_that_need_none(setup: Setup) -> None:
    setup.proxy.set_mode("hang")
    url = setup.shop.url
    bearer = {"Authorization": f"Bearer {setup.token}", "X-ATH-Agent-ID": setup.agent.agent_id}
    with ThreadPoolExecutor(45) as pool:
        hung = [
            pool.submit(httpx.get, f"{url}/api/products", headers=bearer, timeout=60)
            for _ in range(45)
        ]
        time.sleep(0.5)  # the 45 calls are waiting on the database
        samples = []
        with httpx.Client(base_url=url, timeout=30) as h:
            for _ in range(5):
                start = time.monotonic()
                assert h.get("/login").status_code == 200
                samples.append(time.monotonic() - start)
        statuses = {f.result().status_code for f in hung}
    assert statistics.median(samples) < 0.5, samples
    assert statuses == {503}, statuses


def test_locked_table_hits_the_statement_timeout(setup: Setup, pg_database: str) -> None:
    """A real PostgreSQL stall: another session holds ACCESS EXCLUSIVE on the token table."""
    bearer = {"Authorization": f"Bearer {setup.token}", "X-ATH-Agent-ID": setup.agent.agent_id}
    with psycopg.connect(pg_database) as locker:
        locker.execute("LOCK TABLE ath_tokens IN ACCESS EXCLUSIVE MODE")
        start = time.monotonic()
        resp = httpx.get(f"{setup.shop.url}/api/products", headers=bearer, timeout=60)
        elapsed = time.monotonic() - start
        locker.rollback()
    assert_unavailable("token check", resp)
    assert resp.json()["details"]["reason"] == "statement_timeout"
    assert elapsed < 4.0, elapsed
    assert httpx.get(f"{setup.shop.url}/api/products", headers=bearer).status_code == 200


def test_sqlite_busy_database_answers_503(tmp_path: Path, agent: AgentIdentity) -> None:
    """SQLite's busy timeout: another process holds the write lock."""
    import sqlite3

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_shop_app(
        public_url=url,
        data_dir=tmp_path / "shop",
        dev_mode=True,
        password=SHOP_PASSWORD,
        ath_options={"db_statement_timeout": 1.0},
    )
    with BackgroundServer(app, port=port):
        locker = sqlite3.connect(tmp_path / "shop" / "athkit.db", isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        start = time.monotonic()
        resp = httpx.post(f"{url}/ath/agents/register", json=register_body(agent, url))
        elapsed = time.monotonic() - start
        locker.execute("ROLLBACK")
        locker.close()
    assert_unavailable("register", resp)
    assert elapsed < 4.0, elapsed

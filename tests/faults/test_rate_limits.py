"""Item 9: abuse limits per client IP and per agent: 429 RATE_LIMITED with Retry-After, in
process memory on one node and in Redis across nodes, failing closed (503) when Redis is down."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from athkit.demo.shop import create_shop_app
from athkit.web import ratelimit
from athkit.web.serving import BackgroundServer, free_port
from tests.conftest import SHOP_PASSWORD, AgentIdentity, Shop
from tests.integration.support import register_body

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def make_shop(tmp_path: Path) -> Iterator[Callable[..., Shop]]:
    started: list[BackgroundServer] = []

    def make(public_url: str | None = None, **options: Any) -> Shop:
        port = free_port()
        url = public_url or f"http://127.0.0.1:{port}"
        app = create_shop_app(
            public_url=url,
            data_dir=tmp_path / f"shop-{port}",
            dev_mode=True,
            password=SHOP_PASSWORD,
            redis_url=options.pop("redis_url", None),
            redis_prefix=options.pop("redis_prefix", "athkit:"),
            ath_options=options,
        )
        if options.pop("frozen_clock", False):
            # Counting tests stop the limiter's clock: the budget then never refills while the
            # requests run, however slow the machine, so "the first N pass, then 429" is exact.
            frozen = time.time()
            getattr(app.state, ratelimit._STATE_KEY).clock = lambda: frozen
        server = BackgroundServer(app, port=port).start()
        started.append(server)
        return Shop(f"http://127.0.0.1:{port}", app, server)

    yield make
    for s in started:
        s.stop()


def assert_limited(resp: httpx.Response, per: str) -> None:
    assert resp.status_code == 429, resp.text
    body = resp.json()
    assert body["code"] == "RATE_LIMITED"
    assert body["details"]["per"] == per
    assert 1 <= int(resp.headers["retry-after"]) <= 60


def first_limited(answers: list[httpx.Response], limit: int, per: str) -> None:
    """The first ``limit`` pass the limiter and every later one is refused (the shop's limiter
    clock is frozen, so the budget does not refill while the requests run)."""
    statuses = [r.status_code for r in answers]
    assert 429 not in statuses[:limit], statuses
    assert set(statuses[limit:]) == {429}, statuses
    for refused in answers[limit:]:
        assert_limited(refused, per)


def test_registrations_per_client_ip(
    make_shop: Callable[..., Shop], new_agent: Callable[..., AgentIdentity]
) -> None:
    shop = make_shop(frozen_clock=True)  # defaults: 30 registrations a minute from one address
    bodies = [register_body(new_agent(f"r{i}"), shop.url) for i in range(34)]
    answers = [httpx.post(f"{shop.url}/ath/agents/register", json=b) for b in bodies]
    assert {r.status_code for r in answers[:30]} == {201}  # a burst of 30, then one per 2 s
    first_limited(answers, 30, "client_ip")


def test_registrations_per_agent(make_shop: Callable[..., Shop], agent: AgentIdentity) -> None:
    shop = make_shop(rate_limits={"register": "100/minute"}, frozen_clock=True)
    answers = [
        httpx.post(f"{shop.url}/ath/agents/register", json=register_body(agent, shop.url))
        for _ in range(16)
    ]
    statuses = [r.status_code for r in answers]
    assert statuses[0] == 201 and set(statuses[1:10]) == {409}, statuses
    first_limited(answers, 10, "agent")  # 10 a minute for one agent_id


def test_wrong_client_secrets_and_passwords_are_limited(
    make_shop: Callable[..., Shop], agent: AgentIdentity
) -> None:
    shop = make_shop(frozen_clock=True)
    reg = httpx.post(f"{shop.url}/ath/agents/register", json=register_body(agent, shop.url))
    cid = reg.json()["client_id"]
    wrong = {"token": "x", "client_id": cid, "client_secret": "guess"}
    revokes = [httpx.post(f"{shop.url}/ath/revoke", json=wrong) for _ in range(36)]
    assert {r.status_code for r in revokes[:30]} == {401}
    first_limited(revokes, 30, "agent")
    # The consent sign-in (the host app's login page, POST): 20 tries a minute per address.
    logins = [
        httpx.post(f"{shop.url}/login", data={"username": "alice", "password": "no", "next": "/"})
        for _ in range(26)
    ]
    assert {r.status_code for r in logins[:20]} == {401}
    first_limited(logins, 20, "client_ip")


def test_proxy_is_limited_per_agent(make_shop: Callable[..., Shop]) -> None:
    shop = make_shop(agent_rate_limits={"proxy": "3/minute"}, frozen_clock=True)
    headers = {"X-ATH-Agent-ID": "https://agent.example/a.json", "Authorization": "Bearer x"}
    answers = [httpx.get(f"{shop.url}/ath/proxy/ath-shop/api/products", headers=headers)]
    answers += [
        httpx.get(f"{shop.url}/ath/proxy/ath-shop/api/products", headers=headers)
        for _ in range(3)
    ]
    assert [r.status_code for r in answers[:3]] == [401, 401, 401]
    assert_limited(answers[3], "agent")


def test_limits_can_be_turned_off(make_shop: Callable[..., Shop]) -> None:
    shop = make_shop(rate_limits_enabled=False)
    statuses = {
        httpx.post(f"{shop.url}/login", data={"username": "a", "password": "b"}).status_code
        for _ in range(25)
    }
    assert statuses == {401}


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"athkit-test:{secrets.token_hex(6)}:"
    yield prefix
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(match=prefix + "*"))
    if keys:
        r.delete(*keys)
    r.close()


def test_redis_counts_are_shared_by_every_node(
    make_shop: Callable[..., Shop], redis_prefix: str
) -> None:
    options = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    node_a = make_shop(**options, rate_limits={"signin": "3/minute"})
    node_b = make_shop(**options, rate_limits={"signin": "3/minute"})
    data = {"username": "alice", "password": "no", "next": "/"}
    statuses = [httpx.post(f"{n.url}/login", data=data).status_code for n in (node_a, node_b)]
    statuses.append(httpx.post(f"{node_a.url}/login", data=data).status_code)
    assert statuses == [401, 401, 401]
    assert_limited(httpx.post(f"{node_b.url}/login", data=data), "client_ip")


def test_unreachable_redis_fails_closed(make_shop: Callable[..., Shop]) -> None:
    shop = make_shop(redis_url="redis://127.0.0.1:1/0")
    resp = httpx.post(f"{shop.url}/login", data={"username": "alice", "password": "no"})
    assert resp.status_code == 503
    assert resp.json()["code"] == "SERVICE_UNAVAILABLE"

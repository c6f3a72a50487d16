"""Many machines: two service nodes behind one public URL share PostgreSQL and Redis.

A token issued by one node works on the other, a revocation on one is refused at once by the
other, an attestation replayed to the other node is refused, and an unreachable Redis fails
closed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis

from athkit.client import ATHClient
from athkit.crypto import sign_attestation
from athkit.demo.browser import HTTPBrowser
from athkit.demo.shop import create_shop_app
from athkit.protocol.errors import ATHError
from athkit.store.shared import RedisShared
from athkit.web.serving import BackgroundServer, free_port
from tests.conftest import SHOP_PASSWORD, AgentIdentity

REDIS_URL = "redis://127.0.0.1:6379/0"
DEVELOPER = {"name": "athkit demo team", "id": "dev-athkit-demo"}


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix owned by this test; only its keys are deleted afterwards."""
    prefix = f"athkit-test:{secrets.token_hex(6)}:"
    yield prefix
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(match=prefix + "*"))
    if keys:
        r.delete(*keys)
    r.close()


@pytest.fixture
def two_nodes(tmp_path: Path, pg_url: str, redis_prefix: str) -> Iterator[tuple[str, str]]:
    """Node A and node B: same public URL (A's), same PostgreSQL database, same Redis prefix."""
    port_a, port_b = free_port(), free_port()
    public = f"http://127.0.0.1:{port_a}"
    servers = []
    for name, port in (("a", port_a), ("b", port_b)):
        app = create_shop_app(
            public_url=public,
            data_dir=tmp_path / name,
            database_url=pg_url,
            redis_url=REDIS_URL,
            redis_prefix=redis_prefix,
            dev_mode=True,
            password=SHOP_PASSWORD,
        )
        servers.append(BackgroundServer(app, port=port).start())
    try:
        yield public, f"http://127.0.0.1:{port_b}"
    finally:
        for s in servers:
            s.stop()


def test_token_from_node_a_works_on_node_b_and_revocation_is_immediate(
    two_nodes: tuple[str, str], agent: AgentIdentity
) -> None:
    node_a, node_b = two_nodes
    with ATHClient(node_a, agent.agent_id, agent.key) as client:
        client.register(developer=DEVELOPER, providers=[{"provider_id": "ath-shop", "scopes": ["products:read"]}])
        auth = client.authorize("ath-shop", ["products:read"])
        browser = HTTPBrowser("alice", SHOP_PASSWORD)
        browser.open_consent(auth.authorization_url)
        assert browser.decide(approve=True).status_code == 200
        token = client.exchange_token(auth.ath_session_id).access_token
        headers = {"Authorization": f"Bearer {token}", "X-ATH-Agent-ID": agent.agent_id}
        assert httpx.get(f"{node_b}/api/products", headers=headers).status_code == 200
        client.revoke()
    refused = httpx.get(f"{node_b}/api/products", headers=headers)
    assert refused.status_code == 401 and refused.json()["code"] == "TOKEN_REVOKED"


def test_attestation_replayed_to_the_other_node_is_refused(
    two_nodes: tuple[str, str], agent: AgentIdentity
) -> None:
    node_a, node_b = two_nodes
    attestation = sign_attestation(agent.key, agent.agent_id, node_a)
    body = {
        "agent_id": agent.agent_id,
        "agent_attestation": attestation,
        "developer": DEVELOPER,
        "requested_providers": [{"provider_id": "ath-shop", "scopes": ["products:read"]}],
    }
    first = httpx.post(f"{node_a}/ath/agents/register", json=body)
    assert first.status_code == 201
    replay = httpx.post(f"{node_b}/ath/agents/register", json=body)
    assert replay.status_code == 401 and replay.json()["code"] == "INVALID_ATTESTATION"
    assert "replay" in replay.json()["message"]


def test_redis_replay_cache_and_rate_limiter(redis_prefix: str) -> None:
    shared = RedisShared.from_url(REDIS_URL, redis_prefix)
    now = datetime.now(UTC)
    assert shared.remember_once("jti-1", now + timedelta(seconds=30), now)
    assert not shared.remember_once("jti-1", now + timedelta(seconds=30), now)
    assert shared.remember_once("jti-2", now + timedelta(seconds=30), now)
    t = 1_000_000.0
    decisions = [shared.hit("agent-x", 3, 1.0, t + 0.1) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert 0 < decisions[-1].retry_after <= 0.91
    assert shared.hit("agent-x", 3, 1.0, t + 1.1).allowed  # next window


def test_unreachable_redis_fails_closed() -> None:
    shared = RedisShared.from_url("redis://127.0.0.1:1/0", "athkit-test:")
    now = datetime.now(UTC)
    with pytest.raises(ATHError) as err:
        shared.remember_once("jti", now + timedelta(seconds=5), now)
    assert err.value.code_str == "SERVICE_UNAVAILABLE" and err.value.status == 503
    with pytest.raises(ATHError):
        shared.hit("k", 1, 1.0, 0.0)

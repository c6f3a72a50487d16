"""The validated-token cache across real nodes (PostgreSQL + Redis, or PostgreSQL alone).

Each node caches tokens it has checked; a revocation on one node (by the agent, the user or an
operator) must be refused by the other node's next calls, and a node that loses its revocation
channel must stop answering from its cache (fail closed) until it listens again. The channel
loss is real: node B reaches Redis through a TCP relay on loopback that the test cuts.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from athkit.client import ATHClient
from athkit.core.secrets import hash_secret
from athkit.core.service import ATHService
from athkit.demo.browser import HTTPBrowser
from athkit.demo.shop import create_shop_app
from athkit.store.models import TokenRow
from athkit.web.serving import BackgroundServer, free_port
from tests.conftest import SHOP_PASSWORD, AgentIdentity
from tests.multinode.test_two_nodes import DEVELOPER, REDIS_URL

SCOPES = ["products:read"]


class RedisRelay:
    """A loopback TCP relay to the real Redis that the test can cut and restore."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 6379)) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Close the listener and every relayed connection (Redis looks gone to the node)."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@dataclass
class Node:
    url: str
    app: FastAPI

    @property
    def service(self) -> ATHService:
        svc = self.app.state.athkit
        assert isinstance(svc, ATHService)
        return svc


def _start_nodes(
    tmp: Path, pg_url: str, redis_urls: list[str | None], prefix: str
) -> tuple[list[Node], list[BackgroundServer]]:
    ports = [free_port() for _ in redis_urls]
    public = f"http://127.0.0.1:{ports[0]}"
    nodes, servers = [], []
    for i, (port, redis_url) in enumerate(zip(ports, redis_urls, strict=True)):
        app = create_shop_app(
            public_url=public,
            data_dir=tmp / f"node{i}",
            database_url=pg_url,
            redis_url=redis_url,
            redis_prefix=prefix,
            dev_mode=True,
            password=SHOP_PASSWORD,
        )
        servers.append(BackgroundServer(app, port=port).start())
        nodes.append(Node(f"http://127.0.0.1:{port}", app))
    return nodes, servers


@pytest.fixture
def relay() -> Iterator[RedisRelay]:
    r = RedisRelay()
    r.start()
    yield r
    r.cut()


@pytest.fixture
def redis_nodes(
    tmp_path: Path, pg_url: str, redis_prefix: str, relay: RedisRelay
) -> Iterator[list[Node]]:
    """Node A talks to Redis directly, node B through the relay; one PostgreSQL database."""
    nodes, servers = _start_nodes(tmp_path, pg_url, [REDIS_URL, relay.url], redis_prefix)
    try:
        yield nodes
    finally:
        for s in servers:
            s.stop()


@pytest.fixture
def pg_only_nodes(tmp_path: Path, pg_url: str) -> Iterator[list[Node]]:
    """Two nodes on one PostgreSQL database and no Redis: LISTEN/NOTIFY carries revocations."""
    nodes, servers = _start_nodes(tmp_path, pg_url, [None, None], "unused:")
    try:
        yield nodes
    finally:
        for s in servers:
            s.stop()


def _wait(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _token(node_a: str, agent: AgentIdentity, client: ATHClient) -> dict[str, str]:
    auth = client.authorize("ath-shop", SCOPES)
    browser = HTTPBrowser("alice", SHOP_PASSWORD)
    try:
        browser.open_consent(auth.authorization_url)
        assert browser.decide(approve=True).status_code == 200
    finally:
        browser.close()
    token = client.exchange_token(auth.ath_session_id).access_token
    return {"Authorization": f"Bearer {token}", "X-ATH-Agent-ID": agent.agent_id}


def _registered(node_a: str, agent: AgentIdentity) -> ATHClient:
    client = ATHClient(node_a, agent.agent_id, agent.key)
    client.register(
        developer=DEVELOPER, providers=[{"provider_id": "ath-shop", "scopes": SCOPES}]
    )
    return client


def _cached_on(node: Node, headers: dict[str, str], http: httpx.Client) -> None:
    """Call until the node answers from memory (its channel is up and the token cached)."""

    def hit() -> bool:
        assert http.get(f"{node.url}/api/products", headers=headers).status_code == 200
        token = headers["Authorization"].split(" ", 1)[1]
        return (
            node.service.validate_in_memory(
                token, agent_header=headers["X-ATH-Agent-ID"], provider_id="ath-shop"
            )
            is not None
        )

    _wait(hit)


def _refused_soon_and_forever(node: Node, headers: dict[str, str], http: httpx.Client) -> str:
    url = f"{node.url}/api/products"
    _wait(lambda: http.get(url, headers=headers).status_code != 200, timeout=5.0)
    answers = [http.get(url, headers=headers) for _ in range(20)]
    assert {r.status_code for r in answers} == {401}
    return str(answers[-1].json()["code"])


def test_revocations_of_every_kind_reach_the_other_nodes_cache(
    redis_nodes: list[Node], agent: AgentIdentity
) -> None:
    a, b = redis_nodes
    with _registered(a.url, agent) as client, httpx.Client(timeout=10) as http:
        # by the agent (§8 /ath/revoke on node A)
        headers = _token(a.url, agent, client)
        _cached_on(b, headers, http)
        client.revoke(headers["Authorization"].split(" ", 1)[1])
        assert _refused_soon_and_forever(b, headers, http) == "TOKEN_REVOKED"
        # by the user (their own channel, on node A)
        headers = _token(a.url, agent, client)
        _cached_on(b, headers, http)
        assert a.service.revoke_for_user("alice", client.client_id or "") == 1
        assert _refused_soon_and_forever(b, headers, http) == "TOKEN_REVOKED"
        # by an operator (suspending the agent revokes its tokens)
        headers = _token(a.url, agent, client)
        _cached_on(b, headers, http)
        assert a.service.decide_agent(client.client_id or "", "suspended")
        assert _refused_soon_and_forever(b, headers, http) == "TOKEN_REVOKED"


def test_node_that_loses_its_channel_stops_trusting_its_cache(
    redis_nodes: list[Node], agent: AgentIdentity, relay: RedisRelay
) -> None:
    a, b = redis_nodes
    with _registered(a.url, agent) as client, httpx.Client(timeout=10) as http:
        headers = _token(a.url, agent, client)
        _cached_on(b, headers, http)
        cache = b.service.token_checks.cache
        relay.cut()  # node B can no longer hear revocations
        _wait(lambda: not cache.trusted)
        assert len(cache) == 0
        # A revocation whose broadcast node B cannot receive (written straight to the shared
        # database, as another process might): B must read the database, not its memory.
        token_hash = hash_secret(headers["Authorization"].split(" ", 1)[1])
        with a.service.store.db.transaction() as s:
            s.execute(
                update(TokenRow)
                .where(TokenRow.token_hash == token_hash)
                .values(revoked_at=TokenRow.created_at)
            )
        refused = http.get(f"{b.url}/api/products", headers=headers)
        assert refused.status_code == 401 and refused.json()["code"] == "TOKEN_REVOKED"
        # Live tokens still work on B meanwhile (from the database), just not from memory.
        fresh = _token(a.url, agent, client)
        assert http.get(f"{b.url}/api/products", headers=fresh).status_code == 200
        token = fresh["Authorization"].split(" ", 1)[1]
        assert b.service.validate_in_memory(
            token, agent_header=agent.agent_id, provider_id="ath-shop"
        ) is None
        # The channel comes back: B subscribes again and only then caches again.
        relay.start()
        _wait(lambda: cache.trusted)
        _cached_on(b, fresh, http)
        client.revoke(token)
        assert _refused_soon_and_forever(b, fresh, http) == "TOKEN_REVOKED"


def test_postgres_notify_carries_revocations_without_redis(
    pg_only_nodes: list[Node], agent: AgentIdentity
) -> None:
    a, b = pg_only_nodes
    with _registered(a.url, agent) as client, httpx.Client(timeout=10) as http:
        headers = _token(a.url, agent, client)
        _cached_on(b, headers, http)
        client.revoke(headers["Authorization"].split(" ", 1)[1])
        assert _refused_soon_and_forever(b, headers, http) == "TOKEN_REVOKED"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    import redis

    prefix = f"athkit-test:{secrets.token_hex(6)}:"
    yield prefix
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(match=prefix + "*"))
    if keys:
        r.delete(*keys)
    r.close()

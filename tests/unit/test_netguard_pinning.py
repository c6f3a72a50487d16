"""SSRF guard against DNS rebinding and IPv4-embedding IPv6 prefixes (PROTOCOL.md §3).

The connection goes to the address the guard checked: the transport resolves once, checks,
and connects to that address while the URL (Host header, TLS server name) keeps the name.
A DNS server that answers differently on each query cannot run here, so the rebinding tests
hand the transport a resolver that plays one (the only stand-in; the HTTP server is real).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, Request

from athkit.core.identity import IdentityFetcher
from athkit.core.outbound import OutboundLimits
from athkit.netguard import UnsafeURLError, check_address, is_blocked_address
from athkit.netguard_http import guarded_transport
from athkit.protocol.errors import ATHError
from athkit.web.serving import BackgroundServer


@pytest.mark.parametrize(
    ("address", "blocked", "blocked_in_dev"),
    [
        ("2002:7f00:1::", True, True),  # 6to4 of 127.0.0.1
        ("2002:a00:1::", True, True),  # 6to4 of 10.0.0.1
        ("2002:808:808::", True, True),  # 6to4 at all: refused
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", True, True),  # Teredo
        ("64:ff9b::a00:1", True, True),  # NAT64 of 10.0.0.1
        ("64:ff9b::a9fe:a9fe", True, True),  # NAT64 of 169.254.169.254 (metadata)
        ("64:ff9b::7f00:1", True, True),  # NAT64 of 127.0.0.1: not our loopback
        ("64:ff9b:1::c0a8:1", True, True),  # local-use NAT64 of 192.168.0.1
        ("64:ff9b::808:808", False, False),  # NAT64 of a public address
        ("::ffff:10.0.0.1", True, True),  # IPv4-mapped
        ("::ffff:127.0.0.1", True, False),
        ("::ffff:8.8.8.8", False, False),
        ("::10.0.0.1", True, True),  # IPv4-compatible (deprecated)
        ("::8.8.8.8", True, True),
        ("::1", True, False),
        ("2606:4700:4700::1111", False, False),
        ("8.8.8.8", False, False),
    ],
)
def test_embedded_ipv4_is_decoded_and_checked(
    address: str, blocked: bool, blocked_in_dev: bool
) -> None:
    ip = ipaddress.ip_address(address)
    assert is_blocked_address(ip, allow_loopback=False) is blocked
    assert is_blocked_address(ip, allow_loopback=True) is blocked_in_dev
    if blocked:
        with pytest.raises(UnsafeURLError):
            check_address(address, dev_mode=False, url="https://x.example/")


def test_identity_fetcher_refuses_a_6to4_literal_even_in_dev_mode() -> None:
    fetcher = IdentityFetcher(dev_mode=True)
    try:
        with pytest.raises(ATHError) as refused:
            fetcher.get("http://[2002:7f00:1::]:8080/agent.json")
        assert refused.value.code_str == "INVALID_ATTESTATION"
        assert "non-public" in refused.value.message
    finally:
        fetcher.close()


@pytest.fixture
def target() -> Iterator[tuple[BackgroundServer, list[str]]]:
    """A real server on loopback that records the Host header of every request it gets."""
    hosts: list[str] = []
    app = FastAPI()

    @app.get("/agent.json")
    def agent(request: Request) -> dict[str, str]:
        hosts.append(request.headers["host"])
        return {"ok": "yes"}

    with BackgroundServer(app) as server:
        yield server, hosts


class RebindingResolver:
    """Answers like a rebinding DNS server: the given addresses, one list per query."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.queries: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.queries.append(host)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def _client(resolver: RebindingResolver, *, dev_mode: bool) -> httpx.Client:
    """The composition the identity and registry fetchers use: bounded outer, guarded inner."""
    inner = guarded_transport(dev_mode=dev_mode, resolver=resolver)
    transport = OutboundLimits().transport(deadline=5.0, inner=inner)
    return httpx.Client(transport=transport, timeout=5.0)


def test_a_name_that_rebinds_to_loopback_is_never_connected(
    target: tuple[BackgroundServer, list[str]],
) -> None:
    server, hosts = target
    resolver = RebindingResolver(["127.0.0.1"])
    with (
        _client(resolver, dev_mode=False) as http,
        pytest.raises(httpx.ConnectError, match="non-public"),
    ):
        http.get(f"http://rebind.example:{server.port}/agent.json")
    assert resolver.queries == ["rebind.example"]  # resolved once, by the guard
    assert hosts == []  # nothing reached the private address


def test_the_checked_address_is_the_one_connected_and_the_host_name_is_kept(
    target: tuple[BackgroundServer, list[str]],
) -> None:
    """Dev mode allows loopback: the transport connects to the address it checked (a name
    the system resolver does not know), and the request still names the host."""
    server, hosts = target
    resolver = RebindingResolver(["127.0.0.1"], ["10.0.0.1"])
    with _client(resolver, dev_mode=True) as http:
        resp = http.get(f"http://agent.rebind.example:{server.port}/agent.json")
        assert resp.status_code == 200 and resp.json() == {"ok": "yes"}
        assert hosts == [f"agent.rebind.example:{server.port}"]
        # The second answer (a private address) is checked again at the next connection.
        http.close()
    with (
        _client(resolver, dev_mode=True) as http,
        pytest.raises(httpx.ConnectError, match="non-public"),
    ):
        http.get(f"http://agent.rebind.example:{server.port}/agent.json")
    assert len(hosts) == 1


def test_one_blocked_address_among_the_answers_refuses_the_name(
    target: tuple[BackgroundServer, list[str]],
) -> None:
    server, hosts = target
    resolver = RebindingResolver(["127.0.0.1", "169.254.169.254"])
    with _client(resolver, dev_mode=True) as http, pytest.raises(httpx.ConnectError):
        http.get(f"http://mixed.example:{server.port}/agent.json")
    assert hosts == []

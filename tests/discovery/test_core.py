"""The sans-I/O discovery core driven by hand with canned responses (no network at all)."""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import httpx
import pytest

from athkit.client._core import PreparedRequest, RawResponse
from athkit.client.discovery import (
    BlockedURLError,
    ConfirmRequest,
    Discovery,
    DiscoveryCache,
    DiscoveryCore,
    DiscoveryMode,
    DocumentTooLargeError,
    FetchLimits,
    NeedsConfirmationError,
    _check_response_start,
    _Target,
)
from athkit.client.errors import ProtocolViolation
from tests.discovery.conftest import service_doc

BANK = "https://bank.example"


def _ok(doc: dict[str, Any], **headers: str) -> RawResponse:
    return RawResponse(200, headers, json.dumps(doc).encode())


def _run(flow: Generator[Any, Any, Discovery], replies: list[Any]) -> tuple[list[Any], Discovery]:
    steps: list[Any] = []
    try:
        step = next(flow)
        while True:
            steps.append(step)
            step = flow.send(replies.pop(0))
    except StopIteration as stop:
        return steps, stop.value


def test_service_flow_yields_one_request() -> None:
    core = DiscoveryCore()
    steps, found = _run(core.service(BANK), [_ok(service_doc(BANK))])
    assert steps == [
        PreparedRequest(
            "GET",
            f"{BANK}/.well-known/ath-app.json",
            {"Accept": "application/json", "User-Agent": "athkit-discovery"},
        )
    ]
    assert found.provider.base_url == BANK


def test_direct_flow_asks_then_fetches() -> None:
    core = DiscoveryCore(can_confirm=True)
    steps, found = _run(core.direct(BANK + "/"), [True, _ok(service_doc(BANK))])
    assert steps[0] == ConfirmRequest(BANK + "/", BANK)
    assert isinstance(steps[1], PreparedRequest)
    assert found.mode is DiscoveryMode.DIRECT


def test_direct_flow_without_confirmation_yields_nothing() -> None:
    with pytest.raises(NeedsConfirmationError):
        next(DiscoveryCore().direct(BANK))


def test_https_to_http_redirect_refused_outside_dev_mode() -> None:
    flow = DiscoveryCore().service(BANK)
    next(flow)
    with pytest.raises(BlockedURLError) as err:
        flow.send(RawResponse(302, {"Location": "http://bank.example/doc"}, b""))
    assert err.value.reason == "https"


def test_redirect_to_non_http_scheme_refused() -> None:
    flow = DiscoveryCore(dev_mode=True).service(BANK)
    next(flow)
    with pytest.raises(BlockedURLError) as err:
        flow.send(RawResponse(302, {"location": "file:///etc/passwd"}, b""))
    assert err.value.reason == "scheme"


def test_redirect_without_location() -> None:
    flow = DiscoveryCore().service(BANK)
    next(flow)
    with pytest.raises(ProtocolViolation, match="Location"):
        flow.send(RawResponse(302, {}, b""))


def test_relative_redirect_is_resolved_and_fragment_dropped() -> None:
    flow = DiscoveryCore().service(BANK)
    next(flow)
    step = flow.send(RawResponse(302, {"Location": "/v2/ath-app.json#frag"}, b""))
    assert step.url == f"{BANK}/v2/ath-app.json"


def test_unexpected_304_without_cache_entry() -> None:
    flow = DiscoveryCore().service(BANK)
    next(flow)
    with pytest.raises(ProtocolViolation):
        flow.send(RawResponse(304, {}, b""))


def test_error_status_keeps_ath_error_body() -> None:
    flow = DiscoveryCore().service(BANK)
    next(flow)
    body = json.dumps({"code": "RATE_LIMITED", "message": "slow down"}).encode()
    with pytest.raises(Exception) as err:
        flow.send(RawResponse(429, {}, body))
    assert type(err.value).__name__ == "RateLimitedError"


def test_cache_age_header_shortens_freshness() -> None:
    now = [0.0]
    cache = DiscoveryCache(clock=lambda: now[0])
    core = DiscoveryCore(cache=cache)
    _run(
        core.service(BANK),
        [_ok(service_doc(BANK), **{"Cache-Control": "max-age=100", "Age": "90"})],
    )
    now[0] = 9.0
    steps, found = _run(DiscoveryCore(cache=cache).service(BANK), [])
    assert steps == [] and found.from_cache
    now[0] = 11.0
    flow = DiscoveryCore(cache=cache).service(BANK)
    assert isinstance(next(flow), PreparedRequest)  # stale, no ETag: fetched again


def test_cache_separates_dev_mode() -> None:
    cache = DiscoveryCache()
    _run(
        DiscoveryCore(cache=cache).service(BANK),
        [_ok(service_doc(BANK), **{"Cache-Control": "max-age=60"})],
    )
    flow = DiscoveryCore(cache=cache, dev_mode=True).service(BANK)
    assert isinstance(next(flow), PreparedRequest)


def test_manual_flow_makes_no_requests() -> None:
    core = DiscoveryCore()
    config = {
        "provider": "p",
        "api_base": f"{BANK}/api",
        "oauth": {"authorization_url": f"{BANK}/ath/authorize", "token_url": f"{BANK}/ath/token"},
    }
    steps, found = _run(core.flow(_Target(DiscoveryMode.MANUAL, config)), [])
    assert steps == [] and found.provider.base_url == BANK


class _Stream:
    def __init__(self, addr: tuple[str, int]) -> None:
        self.addr = addr

    def get_extra_info(self, name: str) -> Any:
        return self.addr if name == "server_addr" else None


@pytest.mark.parametrize("dev_mode", [False, True])
def test_connected_peer_is_checked_again(dev_mode: bool) -> None:
    # DNS rebinding: the name passed the guard, but the connection went to a private address.
    response = httpx.Response(200, extensions={"network_stream": _Stream(("10.0.0.7", 443))})
    with pytest.raises(BlockedURLError) as err:
        _check_response_start(response, BANK, dev_mode, FetchLimits())
    assert err.value.address == "10.0.0.7"
    public = httpx.Response(200, extensions={"network_stream": _Stream(("8.8.8.8", 443))})
    _check_response_start(public, BANK, dev_mode, FetchLimits())


def test_content_length_checked_before_reading() -> None:
    response = httpx.Response(200, headers={"Content-Length": "5000"})
    with pytest.raises(DocumentTooLargeError):
        _check_response_start(response, BANK, False, FetchLimits(max_bytes=4096))

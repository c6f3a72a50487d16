"""The direct-discovery guard: every refusal proven against real servers on 127.0.0.1.

No outside DNS: names are ``localhost`` (resolves to loopback) and, in the one test that needs a
custom name, ``socket.getaddrinfo`` is monkeypatched (said there). Private addresses such as
10.0.0.1 are refused before any connection: the tests check the guard's own error, and that it
comes at once although a connection to such an address would hang until the timeout.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from athkit import netguard
from athkit.client.discovery import (
    Allowlist,
    BlockedURLError,
    ConfirmationDeniedError,
    DiscoveryTimeoutError,
    DocumentTooLargeError,
    FetchLimits,
    NeedsConfirmationError,
    TooManyRedirectsError,
    adiscover,
    discover,
    origin_of,
)
from athkit.client.errors import ServiceUnreachableError
from athkit.protocol.errors import ATHError
from tests.conftest import Shop
from tests.discovery.conftest import Srv

# -- allowlist / confirmation ---------------------------------------------------------------


def test_not_allowlisted_without_confirm_is_refused_before_any_request(srv: Srv) -> None:
    srv.service()
    with pytest.raises(NeedsConfirmationError) as err:
        discover(url=srv.url, dev_mode=True)
    assert err.value.code == "DISCOVERY_NEEDS_CONFIRMATION"
    assert err.value.details == {"url": srv.url, "origin": srv.origin}
    assert srv.hits() == []


def test_allowlist_for_another_origin_does_not_help(srv: Srv, shop: Shop) -> None:
    with pytest.raises(NeedsConfirmationError):
        discover(url=srv.url, allow=[shop.url, "*.example.com"], dev_mode=True)
    assert srv.hits() == []


def test_confirm_callback_says_no(srv: Srv) -> None:
    srv.service()
    asked: list[str] = []
    with pytest.raises(ConfirmationDeniedError) as err:
        discover(url=srv.url, confirm=lambda u: asked.append(u) or False, dev_mode=True)
    assert asked == [srv.url] and err.value.details["origin"] == srv.origin
    assert srv.hits() == []


def test_confirm_callback_says_no_async(srv: Srv) -> None:
    async def no(url: str) -> bool:
        return False

    with pytest.raises(ConfirmationDeniedError):
        asyncio.run(adiscover(url=srv.url, confirm=no, dev_mode=True))
    assert srv.hits() == []


def test_confirm_callback_yes_is_asked_once(srv: Srv) -> None:
    srv.service()
    asked: list[str] = []
    found = discover(url=srv.url, confirm=lambda u: asked.append(u) or True, dev_mode=True)
    assert asked == [srv.url] and found.provider.base_url == srv.url


def test_redirect_to_another_origin_needs_approval_too(srv: Srv, shop: Shop) -> None:
    srv.add("/.well-known/ath-app.json", status=302, headers={"Location": shop.url + "/x"})
    with pytest.raises(NeedsConfirmationError) as err:
        discover(url=srv.url, allow=[srv.origin], dev_mode=True)
    assert err.value.origin == shop.url
    asked: list[str] = []
    with pytest.raises(ConfirmationDeniedError):
        discover(url=srv.url, confirm=lambda u: asked.append(u) or u == srv.url, dev_mode=True)
    assert asked == [srv.url, shop.url + "/x"]


def test_same_origin_redirect_is_followed(srv: Srv) -> None:
    srv.add("/.well-known/ath-app.json", status=301, headers={"Location": srv.url + "/real"})
    srv.add("/real", body={**_doc(srv)})
    found = discover(url=srv.url, allow=[srv.origin], dev_mode=True)
    assert found.provider.base_url == srv.url
    assert found.provider.discovery_url == srv.url + "/real"


def _doc(srv: Srv) -> dict[str, Any]:
    from tests.discovery.conftest import service_doc

    return service_doc(srv.url)


# -- https only, SSRF guard -----------------------------------------------------------------


def test_http_refused_outside_dev_mode(srv: Srv) -> None:
    srv.service()
    for kwargs in ({"url": srv.url, "allow": [srv.origin]}, {"service": srv.url}):
        with pytest.raises(BlockedURLError) as err:
            discover(**kwargs)  # type: ignore[arg-type]
        assert err.value.reason == "https"
    assert srv.hits() == []


def test_http_refused_before_asking_the_user(srv: Srv) -> None:
    asked: list[str] = []
    with pytest.raises(BlockedURLError):
        discover(url=srv.url, confirm=lambda u: asked.append(u) or True)
    assert asked == []


def test_localhost_resolves_to_loopback_and_is_refused_outside_dev_mode(srv: Srv) -> None:
    port = srv.origin.rsplit(":", 1)[1]
    url = f"https://localhost:{port}{srv.prefix}"
    with pytest.raises(BlockedURLError) as err:
        discover(url=url, allow=[f"https://localhost:{port}"])
    assert err.value.reason == "address"
    assert err.value.address in ("127.0.0.1", "::1")
    assert srv.hits() == []


def test_custom_dns_name_resolving_to_loopback_is_refused(
    srv: Srv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The one test with a custom name: getaddrinfo is monkeypatched so no outside DNS is used.
    real = socket.getaddrinfo

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "bank.example":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(BlockedURLError) as err:
        discover(url="https://bank.example/", allow=["bank.example"])
    assert (err.value.reason, err.value.address) == ("address", "127.0.0.1")
    with pytest.raises(BlockedURLError, match="non-public"):
        discover(service="https://bank.example")  # every mode, not only direct


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/",
        "https://192.168.1.20:8443/",
        "https://172.16.0.5/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::ffff:169.254.169.254]/",
        "https://[fd00::1]/",
        "https://0.0.0.0/",
    ],
)
@pytest.mark.parametrize("dev_mode", [False, True])
def test_private_and_metadata_addresses_refused(url: str, dev_mode: bool) -> None:
    started = time.monotonic()
    with pytest.raises(BlockedURLError) as err:
        discover(
            url=url,
            allow=[origin_of(url)],
            dev_mode=dev_mode,
            limits=FetchLimits(timeout=3.0),
        )
    assert err.value.reason == "address" and err.value.code == "DISCOVERY_URL_BLOCKED"
    assert time.monotonic() - started < 1.0  # refused by the guard, not by a timeout


def test_metadata_address_refused_in_service_and_gateway_modes() -> None:
    for kwargs in ({"service": "http://169.254.169.254"}, {"gateway": "http://169.254.169.254"}):
        with pytest.raises(BlockedURLError) as err:
            discover(dev_mode=True, **kwargs)  # type: ignore[arg-type]
        assert err.value.address == "169.254.169.254"


def test_credentials_in_url_refused(srv: Srv) -> None:
    url = srv.url.replace("http://", "http://user:pw@")
    with pytest.raises(BlockedURLError) as err:
        discover(url=url, allow=[srv.origin], dev_mode=True)
    assert err.value.reason == "credentials"


@pytest.mark.parametrize(
    "target", ["http://10.0.0.1/.well-known/ath-app.json", "http://169.254.169.254/"]
)
def test_redirect_to_private_address_refused_before_connecting(
    srv: Srv, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv.add("/.well-known/ath-app.json", status=302, headers={"Location": target})
    opened: list[str] = []
    real_send = __import__("athkit.client.discovery", fromlist=["_SyncFetcher"])._SyncFetcher.send

    def spy(self: Any, request: Any) -> Any:
        opened.append(request.url)
        return real_send(self, request)

    monkeypatch.setattr("athkit.client.discovery._SyncFetcher.send", spy)
    started = time.monotonic()
    with pytest.raises(BlockedURLError) as err:
        discover(
            url=srv.url,
            confirm=lambda u: True,  # the user says yes to everything: the SSRF guard still holds
            dev_mode=True,
            limits=FetchLimits(timeout=5.0),
        )
    assert err.value.reason == "address" and err.value.url == target
    assert time.monotonic() - started < 1.0  # no connection attempt to the black-hole address
    assert len(srv.hits()) == 1  # only the allowed loopback server was contacted
    assert opened == [srv.url + "/.well-known/ath-app.json", target]  # refused inside send


def test_redirect_to_private_address_refused_async(srv: Srv) -> None:
    srv.add("/.well-known/ath-app.json", status=307, headers={"Location": "http://10.0.0.1/"})
    started = time.monotonic()
    with pytest.raises(BlockedURLError) as err:
        asyncio.run(adiscover(service=srv.url, dev_mode=True, limits=FetchLimits(timeout=5.0)))
    assert err.value.address == "10.0.0.1" and time.monotonic() - started < 1.0


def test_redirect_chain_longer_than_the_limit(srv: Srv) -> None:
    well_known = "/.well-known/ath-app.json"
    for i in range(5):
        srv.add(
            f"/r{i}{well_known}",
            status=302,
            headers={"Location": f"{srv.url}/r{i + 1}{well_known}"},
        )
    srv.add(f"/r5{well_known}", body=_doc(srv))
    with pytest.raises(TooManyRedirectsError) as err:
        discover(service=srv.url + "/r0", dev_mode=True)  # 5 redirects > 3
    assert err.value.details["max_redirects"] == 3
    assert len(srv.hits()) == 4  # the first request and three redirects, no more
    # exactly at the limit: followed
    found = discover(service=srv.url + "/r2", dev_mode=True)  # 3 redirects
    assert found.provider.discovery_url == f"{srv.url}/r5{well_known}"
    with pytest.raises(TooManyRedirectsError):
        discover(service=srv.url + "/r2", dev_mode=True, limits=FetchLimits(max_redirects=2))


def test_redirect_loop_stops(srv: Srv) -> None:
    loop = "/loop/.well-known/ath-app.json"
    srv.add(loop, status=302, headers={"Location": srv.url + loop})
    with pytest.raises(TooManyRedirectsError):
        asyncio.run(adiscover(service=srv.url + "/loop", dev_mode=True))


@pytest.mark.parametrize("chunked", [False, True])
def test_oversized_document(srv: Srv, chunked: bool) -> None:
    doc = _doc(srv)
    doc["padding"] = "x" * 5000
    srv.add("/.well-known/ath-app.json", body=doc, chunked=chunked)
    limits = FetchLimits(max_bytes=4096)
    with pytest.raises(DocumentTooLargeError) as err:
        discover(service=srv.url, dev_mode=True, limits=limits)
    assert err.value.details["max_bytes"] == 4096
    with pytest.raises(DocumentTooLargeError):
        asyncio.run(adiscover(service=srv.url, dev_mode=True, limits=limits))
    assert discover(service=srv.url, dev_mode=True).provider  # default limit: 1 MiB


def test_slow_server_beyond_the_timeout(srv: Srv) -> None:
    srv.service(delay=2.0)
    started = time.monotonic()
    with pytest.raises(DiscoveryTimeoutError) as err:
        discover(service=srv.url, dev_mode=True, limits=FetchLimits(timeout=0.3))
    assert time.monotonic() - started < 1.5
    assert isinstance(err.value, ServiceUnreachableError)  # one except clause for "no answer"
    with pytest.raises(DiscoveryTimeoutError):
        asyncio.run(adiscover(service=srv.url, dev_mode=True, limits=FetchLimits(timeout=0.3)))


def test_slow_drip_hits_the_total_deadline(srv: Srv) -> None:
    # Each byte arrives within the read timeout, but the whole body does not within the limit.
    srv.service(drip=(20, 0.1))
    started = time.monotonic()
    with pytest.raises(DiscoveryTimeoutError):
        discover(service=srv.url, dev_mode=True, limits=FetchLimits(timeout=0.5))
    assert time.monotonic() - started < 1.5


def test_connection_refused_is_service_unreachable() -> None:
    from athkit.web.serving import free_port

    with pytest.raises(ServiceUnreachableError):
        discover(service=f"http://127.0.0.1:{free_port()}", dev_mode=True)


def test_every_refusal_is_an_ath_error() -> None:
    for cls in (
        NeedsConfirmationError,
        ConfirmationDeniedError,
        BlockedURLError,
        TooManyRedirectsError,
        DocumentTooLargeError,
        DiscoveryTimeoutError,
    ):
        assert issubclass(cls, ATHError)


def test_one_address_guard_for_server_and_client() -> None:
    from athkit.core import netguard as core_netguard

    assert core_netguard.netguard is netguard  # the service's guard delegates to the shared one


# -- allowlist patterns ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "url", "dev_mode", "allowed"),
    [
        (["https://bank.example"], "https://bank.example/x", False, True),
        (["https://bank.example"], "https://BANK.example:443/", False, True),
        (["https://bank.example"], "https://bank.example:8443/", False, False),
        (["https://bank.example"], "http://bank.example/", True, False),
        (["https://bank.example"], "https://api.bank.example/", False, False),
        (["https://bank.example"], "https://bank.example.evil.test/", False, False),
        (["bank.example"], "https://bank.example/", False, True),
        (["bank.example"], "http://bank.example/", False, False),
        (["bank.example"], "http://bank.example/", True, True),
        (["*.bank.example"], "https://api.bank.example/", False, True),
        (["*.bank.example"], "https://a.b.bank.example./", False, True),
        (["*.bank.example"], "https://bank.example/", False, False),
        (["*.bank.example"], "https://evilbank.example/", False, False),
        (["*.bank.example"], "https://api.bank.example:8443/", False, False),
        (["https://*.bank.example:8443"], "https://api.bank.example:8443/", False, True),
        (["http://127.0.0.1:8000"], "http://127.0.0.1:8000/svc", True, True),
        (["http://127.0.0.1:8000"], "http://127.0.0.1:8001/", True, False),
        (["[::1]:8443"], "https://[::1]:8443/", False, True),
        ([], "https://bank.example/", False, False),
    ],
)
def test_allowlist_patterns(patterns: list[str], url: str, dev_mode: bool, allowed: bool) -> None:
    assert Allowlist(patterns).allows(url, dev_mode=dev_mode) is allowed


@pytest.mark.parametrize(
    "pattern",
    [
        "*",
        "*.com",
        "ftp://bank.example",
        "https://bank.example/path",
        "https://u@bank.example",
        "*.10.0.0.1",
        "https://b*nk.example",
        "https://bank.example:99999",
    ],
)
def test_bad_allowlist_patterns(pattern: str) -> None:
    with pytest.raises(ValueError):
        Allowlist([pattern])


def test_origin_of() -> None:
    assert origin_of("https://Bank.Example:443/a?b") == "https://bank.example"
    assert origin_of("http://127.0.0.1:8000/x") == "http://127.0.0.1:8000"
    assert origin_of("https://[::1]:8443/") == "https://[::1]:8443"

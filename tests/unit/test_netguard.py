"""SSRF guard for agent_id fetches (PROTOCOL.md §3, athkit additions).

Only literal IP addresses and ``localhost`` are used, so no test depends on outside DNS.
"""

from __future__ import annotations

import pytest

from athkit.core.netguard import check_url
from athkit.protocol.errors import ATHError, ErrorCode

PUBLIC = [
    "https://8.8.8.8/.well-known/agent.json",
    "https://1.1.1.1:8443/agents/a/agent.json",
    "https://[2001:4860:4860::8888]/agent.json",
]

NON_PUBLIC = [
    "https://127.0.0.1/agent.json",
    "https://127.0.0.2/agent.json",
    "https://localhost/agent.json",
    "https://localhost:8443/agent.json",
    "https://2130706433/agent.json",  # 127.0.0.1 as a decimal integer
    "https://0x7f000001/agent.json",  # ... and in hex
    "https://127.1/agent.json",
    "https://[::1]/agent.json",
    "https://[::ffff:127.0.0.1]/agent.json",  # IPv4-mapped IPv6 loopback
    "https://[::ffff:10.0.0.5]/agent.json",
    "https://[::ffff:169.254.169.254]/latest/meta-data/",
    "https://10.0.0.1/agent.json",
    "https://172.16.5.4/agent.json",
    "https://192.168.1.10/agent.json",
    "https://169.254.169.254/latest/meta-data/",  # cloud metadata
    "https://169.254.1.1/agent.json",
    "https://100.64.0.1/agent.json",  # carrier-grade NAT
    "https://0.0.0.0/agent.json",
    "https://224.0.0.1/agent.json",
    "https://240.0.0.1/agent.json",
    "https://255.255.255.255/agent.json",
    "https://[::]/agent.json",
    "https://[fe80::1]/agent.json",
    "https://[fc00::1]/agent.json",
    "https://[fd12:3456::1]/agent.json",
    "https://[ff02::1]/agent.json",
]


@pytest.mark.parametrize("url", PUBLIC)
def test_public_https_is_allowed(url: str) -> None:
    check_url(url, dev_mode=False)


@pytest.mark.parametrize("url", NON_PUBLIC)
def test_non_public_addresses_refused_outside_dev_mode(url: str) -> None:
    with pytest.raises(ATHError) as err:
        check_url(url, dev_mode=False)
    assert err.value.code == ErrorCode.INVALID_ATTESTATION
    assert err.value.status == 401
    assert err.value.details["url"] == url
    assert "address" in err.value.details


def test_localhost_name_is_resolved_not_trusted_by_name() -> None:
    with pytest.raises(ATHError) as err:
        check_url("https://localhost/.well-known/agent.json", dev_mode=False)
    assert err.value.details["address"] in ("127.0.0.1", "::1")


@pytest.mark.parametrize("url", ["http://8.8.8.8/agent.json", "http://localhost:8000/agent.json"])
def test_http_refused_outside_dev_mode(url: str) -> None:
    with pytest.raises(ATHError, match="https"):
        check_url(url, dev_mode=False)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pw@8.8.8.8/agent.json",
        "https://user@8.8.8.8/agent.json",
        "https://:pw@8.8.8.8/agent.json",
        "https://user:pw@127.0.0.1/agent.json",
    ],
)
@pytest.mark.parametrize("dev_mode", [False, True])
def test_userinfo_refused(url: str, dev_mode: bool) -> None:
    with pytest.raises(ATHError, match="credentials"):
        check_url(url, dev_mode=dev_mode)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://8.8.8.8/agent.json",
        "gopher://127.0.0.1:70/",
        "//8.8.8.8/agent.json",
        "agent.json",
        "https:///agent.json",
        "",
    ],
)
@pytest.mark.parametrize("dev_mode", [False, True])
def test_non_http_urls_refused(url: str, dev_mode: bool) -> None:
    with pytest.raises(ATHError, match="absolute"):
        check_url(url, dev_mode=dev_mode)


@pytest.mark.parametrize(
    "url", ["https://8.8.8.8:99999/agent.json", "https://8.8.8.8:port/a", "https://[::1/agent.json"]
)
def test_malformed_urls_are_ath_errors(url: str) -> None:
    # A hostile agent_id must yield a clean INVALID_ATTESTATION, never an unhandled ValueError.
    with pytest.raises(ATHError) as err:
        check_url(url, dev_mode=False)
    assert err.value.code == ErrorCode.INVALID_ATTESTATION


@pytest.mark.parametrize("host", ["a..b", "a" * 64 + ".example"])
def test_unresolvable_host_refused(host: str) -> None:
    # Hosts that fail IDNA encoding: refused before any DNS traffic.
    with pytest.raises(ATHError, match="resolve"):
        check_url(f"https://{host}/agent.json", dev_mode=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/.well-known/agent.json",
        "http://localhost:8000/agents/a/agent.json",
        "https://[::1]:8443/agent.json",
        "http://[::ffff:127.0.0.1]/agent.json",
        "https://8.8.8.8/agent.json",
    ],
)
def test_dev_mode_allows_http_and_loopback(url: str) -> None:
    check_url(url, dev_mode=True)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/agent.json",
        "http://192.168.0.1/agent.json",
        "http://172.31.255.255/agent.json",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:192.168.0.1]/",
        "http://[fe80::1]/agent.json",
        "http://[fd00::1]/agent.json",
        "http://0.0.0.0:8000/agent.json",
    ],
)
def test_dev_mode_still_refuses_private_and_metadata(url: str) -> None:
    with pytest.raises(ATHError, match="non-public"):
        check_url(url, dev_mode=True)


def test_error_code_is_configurable() -> None:
    with pytest.raises(ATHError) as err:
        check_url("https://10.0.0.1/", dev_mode=False, code=ErrorCode.IDENTITY_FETCH_FAILED)
    assert err.value.code == ErrorCode.IDENTITY_FETCH_FAILED and err.value.status == 502

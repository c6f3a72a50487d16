"""Parsing and checking restrictions at exact instants (no server)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from athkit.core.handshake import HandshakePolicy
from athkit.core.handshake_restrictions import Restrictions, parse_access_time, parse_rate_limit
from athkit.protocol.errors import ATHError


def ts(hh: int, mm: int = 0) -> float:
    return datetime(2026, 3, 2, hh, mm, tzinfo=UTC).timestamp()


def test_parse() -> None:
    assert parse_rate_limit("100/second") == (100, 1)
    assert parse_rate_limit("5 / minute") == (5, 60)
    assert parse_rate_limit("7/hour") == (7, 3600)
    assert str(parse_access_time("9:00-18:00")[0]) == "09:00:00"
    assert parse_access_time("00:00-24:00")[1] is None
    for bad in ("0/second", "10/day", "fast", ""):
        with pytest.raises(ValueError):
            parse_rate_limit(bad)
    for bad in ("9-18", "25:00-26:00", "9:00-18:61"):
        with pytest.raises(ValueError):
            parse_access_time(bad)
    with pytest.raises(ValueError):
        HandshakePolicy(timezone="Mars/Olympus")
    with pytest.raises(ValueError):
        HandshakePolicy(ip_whitelist=["not-an-ip"])
    with pytest.raises(ValueError):
        HandshakePolicy(token_max_ttl=7200)
    with pytest.raises(ValueError):
        HandshakePolicy(session_key_ttl=25 * 3600)


def test_access_time_windows() -> None:
    day = Restrictions(access_time="9:00-18:00")
    day.check_time(ts(9))
    day.check_time(ts(17, 59))
    for t in (ts(8, 59), ts(18), ts(23)):
        with pytest.raises(ATHError) as e:
            day.check_time(t)
        assert e.value.code_str == "OUTSIDE_ACCESS_TIME" and e.value.status == 403
    night = Restrictions(access_time="22:00-06:00")
    night.check_time(ts(23))
    night.check_time(ts(2))
    with pytest.raises(ATHError):
        night.check_time(ts(12))
    # 09:00-18:00 in Tokyo (UTC+9) is 00:00-09:00 UTC
    tokyo = Restrictions(access_time="09:00-18:00", timezone="Asia/Tokyo")
    tokyo.check_time(ts(1))
    with pytest.raises(ATHError):
        tokyo.check_time(ts(12))
    assert tokyo.to_dict() == {"access_time": "09:00-18:00", "timezone": "Asia/Tokyo"}


def test_ip_checks() -> None:
    r = Restrictions(ip_whitelist=("10.0.0.0/8", "2001:db8::/32", "192.0.2.1"))
    r.check_ip("10.1.2.3")
    r.check_ip("192.0.2.1")
    r.check_ip("2001:db8::5")
    r.check_ip("::ffff:10.0.0.1")  # IPv4-mapped
    for bad in ("127.0.0.1", "192.0.2.2", None, "garbage"):
        with pytest.raises(ATHError) as e:
            r.check_ip(bad)
        assert e.value.code_str == "IP_NOT_ALLOWED"


def test_rate_windows() -> None:
    r = Restrictions(rate_limit="100/second")
    assert r.rate_window(10.5) == (10, 100, 1)
    r = Restrictions(rate_limit="2/minute")
    window, limit, retry = r.rate_window(ts(10, 0) + 15)  # type: ignore[misc]
    assert limit == 2 and retry == 45

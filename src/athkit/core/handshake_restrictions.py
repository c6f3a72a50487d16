"""Restrictions of a handshake session (docs/handshake.md, "Restrictions (enforced)").

``ip_whitelist`` (IPs or CIDRs), ``rate_limit`` (``"N/second"``, ``"N/minute"``, ``"N/hour"``)
and ``access_time`` (``"HH:MM-HH:MM"``, ``timezone`` an IANA name, default UTC) are parsed once
when the policy is built and checked at every use of a session's token, before the route runs.
A window whose end is before its start wraps past midnight (``"22:00-06:00"``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from athkit.protocol.errors import ATHError, ErrorCode

_RATE = re.compile(r"([1-9]\d{0,8})\s*/\s*(second|minute|hour)", re.ASCII)
_WINDOW = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]|24):([0-5]\d)", re.ASCII)
_PERIODS = {"second": 1, "minute": 60, "hour": 3600}

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_rate_limit(text: str) -> tuple[int, int]:
    """``"100/second"`` → ``(100, 1)`` (calls, period in seconds); ``ValueError`` otherwise."""
    m = _RATE.fullmatch(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"rate_limit must look like '100/second', got {text!r}")
    return int(m.group(1)), _PERIODS[m.group(2)]


def parse_access_time(text: str) -> tuple[time, time | None]:
    """``"9:00-18:00"`` → ``(09:00, 18:00)``; an end of ``24:00`` is ``None`` (end of day)."""
    m = _WINDOW.fullmatch(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"access_time must look like '09:00-18:00', got {text!r}")
    start = time(int(m.group(1)), int(m.group(2)))
    if m.group(3) == "24":
        if m.group(4) != "00":
            raise ValueError("access_time end past 24:00")
        return start, None
    return start, time(int(m.group(3)), int(m.group(4)))


def parse_networks(entries: Sequence[str]) -> tuple[IPNetwork, ...]:
    nets: list[IPNetwork] = []
    for e in entries:
        try:
            nets.append(ipaddress.ip_network(str(e).strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"ip_whitelist entry {e!r} is not an IP or CIDR") from exc
    return tuple(nets)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"timezone {name!r} is not a known IANA time zone") from exc


@dataclass(frozen=True)
class Restrictions:
    """The restrictions of one session, as reported in ``scope_result`` and enforced."""

    ip_whitelist: tuple[str, ...] | None = None
    rate_limit: str | None = None
    access_time: str | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        # Validate eagerly so a bad policy fails when the service starts, not on a call.
        if self.ip_whitelist is not None:
            parse_networks(self.ip_whitelist)
        if self.rate_limit is not None:
            parse_rate_limit(self.rate_limit)
        if self.access_time is not None:
            parse_access_time(self.access_time)
        zone(self.timezone)

    def to_dict(self) -> dict[str, Any]:
        """The ``restrictions`` object of ``scope_result`` (only what is set)."""
        out: dict[str, Any] = {}
        if self.ip_whitelist is not None:
            out["ip_whitelist"] = list(self.ip_whitelist)
        if self.rate_limit is not None:
            out["rate_limit"] = self.rate_limit
        if self.access_time is not None:
            out["access_time"] = self.access_time
            out["timezone"] = self.timezone
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Restrictions:
        data = data or {}
        ips = data.get("ip_whitelist")
        return cls(
            ip_whitelist=tuple(str(i) for i in ips) if ips is not None else None,
            rate_limit=data.get("rate_limit"),
            access_time=data.get("access_time"),
            timezone=str(data.get("timezone") or "UTC"),
        )

    # -- checks ---------------------------------------------------------------------------

    def check_ip(self, client_ip: str | None) -> None:
        if self.ip_whitelist is None:
            return
        try:
            addr = ipaddress.ip_address(client_ip or "")
        except ValueError:
            addr = None
        if addr is not None and isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        nets = parse_networks(self.ip_whitelist)
        if addr is None or not any(addr.version == n.version and addr in n for n in nets):
            raise ATHError(
                ErrorCode.IP_NOT_ALLOWED,
                "this session may not be used from this address",
                {"client_ip": client_ip or ""},
            )

    def check_time(self, now: float) -> None:
        if self.access_time is None:
            return
        start, end = parse_access_time(self.access_time)
        local = datetime.fromtimestamp(now, tz=zone(self.timezone)).time().replace(tzinfo=None)
        if end is None:
            inside = local >= start
        elif start <= end:
            inside = start <= local < end
        else:  # wraps past midnight
            inside = local >= start or local < end
        if not inside:
            raise ATHError(
                ErrorCode.OUTSIDE_ACCESS_TIME,
                "this session may not be used at this time",
                {"access_time": self.access_time, "timezone": self.timezone},
            )

    def rate_window(self, now: float) -> tuple[int, int, int] | None:
        """``(window number, limit, seconds until the window ends)`` or None (no limit)."""
        if self.rate_limit is None:
            return None
        limit, period = parse_rate_limit(self.rate_limit)
        window = int(now // period)
        retry = max(1, int((window + 1) * period - now + 0.999))
        return window, limit, retry


def rate_limited(rate_limit: str, retry_after: int) -> ATHError:
    return ATHError(
        ErrorCode.RATE_LIMITED,
        "rate limit of this session exceeded",
        {"rate_limit": rate_limit, "retry_after": retry_after},
    )

"""Abuse limits on ATH's anonymous and credential-checking endpoints: 429 ``RATE_LIMITED``.

One middleware counts every request to a limited endpoint per client IP (and per agent, when
the request names one in ``X-ATH-Agent-ID``) before any work is done; the JSON steps also count
the agent their body names (:func:`limit_agent`), as ATH's security guidance asks services to
limit per agent. Counters live in the service's :class:`~athkit.store.shared.RateLimiter`:
process memory on one node, Redis (shared by every node) when ``redis_url`` is set. A limiter
that cannot count (Redis down) refuses with 503, never lets the request through.

Buckets and defaults are ``ATHSettings.rate_limits`` / ``agent_rate_limits``; the client IP is
the connection's peer (run uvicorn with ``--proxy-headers --forwarded-allow-ips`` behind a
trusted reverse proxy so that it is the real client's).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from athkit.core.handshake_restrictions import parse_rate_limit
from athkit.core.metrics import RATE_LIMITED
from athkit.core.settings import ATHSettings
from athkit.core.workers import run_in_worker
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.shared import MemoryRateLimiter, RateLimiter
from athkit.web.errors import error_response

#: (method or "*", path pattern, bucket): which requests count against which limit.
Rule = tuple[str, "re.Pattern[str]", str]

_STATE_KEY = "athkit_rate_limits"


def default_rules(login_path: str | None) -> list[Rule]:
    """ATH's endpoints; ``login_path`` is the consent sign-in (the host app's or the
    gateway's), counted as ``signin`` when posted to."""
    rules: list[Rule] = [
        ("POST", re.compile(r"/ath/agents/register"), "register"),
        ("GET", re.compile(r"/ath/agents/[^/]+"), "agent_status"),
        ("POST", re.compile(r"/ath/authorize"), "authorize"),
        ("POST", re.compile(r"/ath/token"), "token"),
        ("POST", re.compile(r"/ath/revoke"), "revoke"),
        ("POST", re.compile(r"/ath/oauth/authorize"), "consent"),
        ("GET", re.compile(r"/ath/callback"), "consent"),
        ("POST", re.compile(r"/ath/(handshake|confirmations)(/.*)?"), "handshake"),
        ("*", re.compile(r"/ath/proxy/.*"), "proxy"),
        # The OAuth 2.1 surface over the same phases (athkit.oauth).
        ("POST", re.compile(r"/oauth/register"), "register"),
        ("GET", re.compile(r"/oauth/authorize"), "authorize"),
        ("POST", re.compile(r"/oauth/(token|introspect)"), "token"),
        ("POST", re.compile(r"/oauth/revoke"), "revoke"),
    ]
    if login_path and login_path.startswith("/"):
        rules.append(("POST", re.compile(re.escape(login_path.split("?", 1)[0])), "signin"))
    return rules


@dataclass(frozen=True)
class _Limit:
    text: str
    count: int
    window: int


def _parsed(limits: Mapping[str, str]) -> dict[str, _Limit]:
    out = {}
    for bucket, text in limits.items():
        count, window = parse_rate_limit(text)
        out[bucket] = _Limit(text, count, window)
    return out


class RateLimits:
    """The limits of one app over its service's counter store."""

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        per_ip: Mapping[str, str],
        per_agent: Mapping[str, str],
        enabled: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limiter = limiter
        self.per_ip = _parsed(per_ip)
        self.per_agent = _parsed(per_agent)
        self.enabled = enabled
        self.clock = clock

    def hit(self, bucket: str, kind: str, who: str) -> None:
        """Count one request of ``who`` (an IP or an agent) in ``bucket``; 429 past the limit."""
        table = self.per_ip if kind == "ip" else self.per_agent
        limit = table.get(bucket)
        if not self.enabled or limit is None or not who:
            return
        decision = self.limiter.hit(
            f"{bucket}:{kind}:{who}"[:600], limit.count, limit.window, self.clock()
        )
        if not decision.allowed:
            RATE_LIMITED.labels(bucket, kind).inc()
            raise ATHError(
                ErrorCode.RATE_LIMITED,
                f"too many {bucket} requests; slow down",
                {
                    "bucket": bucket,
                    "per": "client_ip" if kind == "ip" else "agent",
                    "limit": limit.text,
                    "retry_after": max(1, int(decision.retry_after + 0.999)),
                },
            )


def install_rate_limits(app: Starlette, limits: RateLimits, rules: list[Rule]) -> None:
    """Keep ``limits`` on the app (for :func:`limit_agent`) and add the middleware (added
    last, so it runs first: before path rewriting and before any body is read)."""
    setattr(app.state, _STATE_KEY, limits)
    app.add_middleware(RateLimitMiddleware, limits=limits, rules=rules)


def limits_from_settings(settings: ATHSettings, limiter: RateLimiter) -> RateLimits:
    return RateLimits(
        limiter,
        per_ip=settings.rate_limits,
        per_agent=settings.agent_rate_limits,
        enabled=settings.rate_limits_enabled,
    )


async def limit_agent(request: Request, bucket: str, agent: str | None) -> None:
    """Count ``agent`` (its ``client_id`` or ``agent_id``, from the parsed body) in ``bucket``."""
    limits: RateLimits | None = getattr(request.app.state, _STATE_KEY, None)
    if limits is not None and limits.enabled and agent:
        if isinstance(limits.limiter, MemoryRateLimiter):
            limits.hit(bucket, "agent", agent)
        else:
            await run_in_worker(limits.hit, bucket, "agent", agent)


class RateLimitMiddleware:
    """Counts requests that match a rule, before the app sees them (pure ASGI)."""

    def __init__(self, app: ASGIApp, limits: RateLimits, rules: list[Rule]) -> None:
        self.app = app
        self.limits = limits
        self.rules = rules

    def _bucket(self, method: str, path: str) -> str | None:
        for rule_method, pattern, bucket in self.rules:
            if rule_method in ("*", method) and pattern.fullmatch(path):
                return bucket
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.limits.enabled:
            bucket = self._bucket(scope["method"], scope["path"])
            if bucket is not None:
                try:
                    if isinstance(self.limits.limiter, MemoryRateLimiter):
                        self._count(scope, bucket)  # microseconds, no I/O
                    else:
                        await run_in_worker(self._count, scope, bucket)
                except ATHError as err:
                    response = error_response(Request(scope), err)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _count(self, scope: Scope, bucket: str) -> None:
        client = scope.get("client")
        self.limits.hit(bucket, "ip", client[0] if client else "unknown")
        for name, value in scope.get("headers", ()):
            if name == b"x-ath-agent-id":
                self.limits.hit(bucket, "agent", value.decode("latin-1"))
                break

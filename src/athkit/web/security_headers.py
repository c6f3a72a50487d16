"""One middleware for the security headers of every response athkit serves.

Every response: ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.
HTML (pages and error pages): a strict ``Content-Security-Policy`` (no script, no framing,
forms post only to this origin) and ``X-Frame-Options: DENY``. A page that needs more (the
handshake pages' WebCrypto script) sets its own policy, which is kept; headers a route set
are never overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from athkit.web.input_guard import InputGuardMiddleware

HTML_CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
ALWAYS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
HTML_ONLY = {"Content-Security-Policy": HTML_CSP, "X-Frame-Options": "DENY"}
#: The same as raw ASGI header pairs: what every response gets, and what an HTML page gets.
_ALWAYS = tuple((k.lower().encode(), v.encode()) for k, v in ALWAYS.items())
_FOR_HTML = _ALWAYS + tuple((k.lower().encode(), v.encode()) for k, v in HTML_ONLY.items())


class SecurityHeadersMiddleware:
    """Adds the headers above. ``html_prefixes`` limits the HTML ones to those paths (native
    mode: athkit's own ``/ath/`` pages, not the host app's); ``None`` means every path."""

    def __init__(self, app: ASGIApp, html_prefixes: tuple[str, ...] | None = None) -> None:
        self.app = app
        self.html_prefixes = html_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        ours = self.html_prefixes is None or path.startswith(self.html_prefixes)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_security_headers(message.get("headers") or (), ours)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def with_security_headers(
    headers: Iterable[tuple[bytes, bytes]], html_allowed: bool
) -> list[tuple[bytes, bytes]]:
    """``headers`` plus those of the policy above that the response did not set itself (one
    pass over the raw header list: this runs on every response, proxied ones included)."""
    out = list(headers)
    present: set[bytes] = set()
    html = False
    for name, value in out:
        lower = name.lower()
        present.add(lower)
        if lower == b"content-type" and value.startswith(b"text/html"):
            html = True
    for name, value in _FOR_HTML if html and html_allowed else _ALWAYS:
        if name not in present:
            out.append((name, value))
    return out


def harden(app: Starlette, html_prefixes: tuple[str, ...] | None = None) -> None:
    """Install the input guard and these headers on ``app``, outside its other middleware
    (so even the guard's refusals carry the headers). Native mode, the gateway and the
    registry all call it."""
    app.add_middleware(InputGuardMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, html_prefixes=html_prefixes)

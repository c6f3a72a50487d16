"""One middleware for the security headers of every response athkit serves.

Every response: ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.
HTML (pages and error pages): a strict ``Content-Security-Policy`` (no script, no framing,
forms post only to this origin) and ``X-Frame-Options: DENY``. A page that needs more (the
handshake pages' WebCrypto script) sets its own policy, which is kept; headers a route set
are never overwritten.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from athkit.web.input_guard import InputGuardMiddleware

HTML_CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
ALWAYS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
HTML_ONLY = {"Content-Security-Policy": HTML_CSP, "X-Frame-Options": "DENY"}


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
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers.setdefault(name, value)
                if ours and headers.get("content-type", "").startswith("text/html"):
                    for name, value in HTML_ONLY.items():
                        headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def harden(app: Starlette, html_prefixes: tuple[str, ...] | None = None) -> None:
    """Install the input guard and these headers on ``app``, outside its other middleware
    (so even the guard's refusals carry the headers). Native mode, the gateway and the
    registry all call it."""
    app.add_middleware(InputGuardMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, html_prefixes=html_prefixes)

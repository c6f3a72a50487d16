"""The gateway's hot paths past the router: ``/ath/proxy/...`` straight to the proxy endpoint,
and ``/ath/forward-auth[/...]`` straight to the decider when forward-auth is configured.

Installed as the innermost middleware, it runs after every middleware of the app (request id,
security headers, input guard, rate limits, the handshake channel) and before Starlette's
exception middleware, FastAPI's dependency exit stack and the routing table, none of which the
proxy uses: under load those layers were an eighth of the gateway's CPU per call (and a larger
share of a forward-auth decision, which forwards no bytes). Failures are
answered the way those layers would: an exception with a handler registered on the app (an
ATH error, a database error) is rendered by that handler when nothing was sent yet; anything
else, and anything after the response started, goes on to the server error middleware as
before. The same endpoints stay mounted at ``/ath/proxy`` and ``/ath/forward-auth`` for any
request this does not take.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/ath/proxy/"


def _handler(app: Any, exc: Exception) -> Any:
    """The app's handler for ``exc`` as Starlette's exception middleware picks it (the
    catch-all ``Exception`` handler belongs to the server error middleware, outside)."""
    handlers = getattr(app, "exception_handlers", None) or {}
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        handler = handlers.get(cls)
        if handler is not None:
            return handler
    return None


class ProxyFastPath:
    def __init__(
        self,
        app: ASGIApp,
        proxy: ASGIApp,
        decider: ASGIApp | None = None,
        decider_mount: str = "/ath/forward-auth",
    ) -> None:
        self.app = app
        self.proxy = proxy
        self.decider = decider
        self.decider_mount = decider_mount
        self.decider_prefix = decider_mount + "/"

    def _target(self, path: str) -> ASGIApp | None:
        if path.startswith(PREFIX):
            return self.proxy
        if self.decider is not None and (
            path == self.decider_mount or path.startswith(self.decider_prefix)
        ):
            return self.decider
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self._target(scope["path"]) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        started = False

        async def send_started(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await target(scope, receive, send_started)
        except Exception as exc:
            handler = _handler(scope.get("app"), exc)
            if handler is None:
                raise
            if started:
                raise RuntimeError("handled exception after the response started") from exc
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            exc.__traceback__ = None

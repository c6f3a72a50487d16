"""The :class:`ATHService` an ASGI app carries in ``app.state.athkit``, for every router."""

from __future__ import annotations

from starlette.requests import Request

from athkit.core.service import ATHService
from athkit.protocol.errors import ATHError, ErrorCode


def service_of(request: Request) -> ATHService:
    """The service the app was built with; a clear ATH error if the app has none."""
    svc = getattr(request.app.state, "athkit", None)
    if not isinstance(svc, ATHService):
        raise ATHError(ErrorCode.INTERNAL_ERROR, "athkit is not configured on this app")
    return svc

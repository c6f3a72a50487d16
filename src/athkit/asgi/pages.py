"""The HTML pages of the user's browser leg: one template set, page headers, the signed-in user.

The template files live in ``athkit/web/templates`` (with the rest of the pages); this module
only opens them, so ``oauth/`` renders its consent page without importing ``web/``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi.templating import Jinja2Templates
from starlette.requests import Request

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "web" / "templates"

templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
# The pages ship inside the package and never change under a running server: no stat() of
# every template file on every page rendered (Jinja's auto-reload check).
templates.env.auto_reload = False

#: Who is signed in to the host app (``None``: nobody); sync or async.
CurrentUser = Callable[[Request], "str | None | Awaitable[str | None]"]

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
}


async def resolve_user(current_user: CurrentUser, request: Request) -> str | None:
    """Ask the host app who the user is; anything but a non-empty string means nobody."""
    result = current_user(request)
    if inspect.isawaitable(result):
        result = await result
    return result if isinstance(result, str) and result else None

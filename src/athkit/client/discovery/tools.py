"""Discovery as agent-framework tools: JSON-ready dicts, never a prompt.

An unapproved URL yields ``{"status": "needs_confirmation", "url", "origin", "message"}`` for
the application to ask its user and call again with the origin in ``approved_origins``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from athkit.client.discovery.cache import DiscoveryCache
from athkit.client.discovery.drivers import adiscover, discover
from athkit.client.discovery.errors import NeedsConfirmationError
from athkit.client.discovery.guard import Allowlist, FetchLimits
from athkit.protocol.errors import ATHError


def _error_result(exc: ATHError) -> dict[str, Any]:
    return {"status": "error", "code": exc.code_str, "message": exc.message, "details": exc.details}


def _needs_confirmation(exc: NeedsConfirmationError) -> dict[str, Any]:
    return {
        "status": "needs_confirmation",
        "url": exc.url,
        "origin": exc.origin,
        "message": (
            f"{exc.origin} is not an allowlisted origin. Ask the user to confirm fetching it; "
            "the application then calls again with the origin in approved_origins."
        ),
    }


def discover_provider_tool(
    url: str,
    *,
    allow: Iterable[str] = (),
    approved_origins: Iterable[str] = (),
    dev_mode: bool = False,
    cache: DiscoveryCache | None = None,
    limits: FetchLimits | None = None,
) -> dict[str, Any]:
    """The ``discover_provider`` tool for agent frameworks (e.g. MCP): never prompts.

    Returns ``{"status": "ok", ...Discovery.to_dict()}``, ``{"status": "needs_confirmation",
    "url", "origin", "message"}`` when the URL's origin is neither in ``allow`` nor in
    ``approved_origins``, or ``{"status": "error", "code", "message", "details"}``.
    ``approved_origins`` must come from the application's own record of what its user confirmed,
    never from the model's tool arguments.
    """
    try:
        found = discover(
            url=url,
            allow=Allowlist([*allow, *approved_origins]),
            dev_mode=dev_mode,
            cache=cache,
            limits=limits,
        )
    except NeedsConfirmationError as exc:
        return _needs_confirmation(exc)
    except ATHError as exc:
        return _error_result(exc)
    return {"status": "ok", **found.to_dict()}


async def adiscover_provider_tool(
    url: str,
    *,
    allow: Iterable[str] = (),
    approved_origins: Iterable[str] = (),
    dev_mode: bool = False,
    cache: DiscoveryCache | None = None,
    limits: FetchLimits | None = None,
) -> dict[str, Any]:
    """:func:`discover_provider_tool` for async frameworks."""
    try:
        found = await adiscover(
            url=url,
            allow=Allowlist([*allow, *approved_origins]),
            dev_mode=dev_mode,
            cache=cache,
            limits=limits,
        )
    except NeedsConfirmationError as exc:
        return _needs_confirmation(exc)
    except ATHError as exc:
        return _error_result(exc)
    return {"status": "ok", **found.to_dict()}


def search_providers_tool(
    intent: str,
    *,
    registry: str,
    limit: int = 5,
    dev_mode: bool = False,
    cache: DiscoveryCache | None = None,
    limits: FetchLimits | None = None,
) -> dict[str, Any]:
    """The ``search_providers`` tool: registry hits for ``intent`` as a JSON-ready dict."""
    try:
        found = discover(
            intent=intent,
            registry=registry,
            limit=limit,
            dev_mode=dev_mode,
            cache=cache,
            limits=limits,
        )
    except ATHError as exc:
        return _error_result(exc)
    return {"status": "ok", **found.to_dict()}


async def asearch_providers_tool(
    intent: str,
    *,
    registry: str,
    limit: int = 5,
    dev_mode: bool = False,
    cache: DiscoveryCache | None = None,
    limits: FetchLimits | None = None,
) -> dict[str, Any]:
    """:func:`search_providers_tool` for async frameworks."""
    try:
        found = await adiscover(
            intent=intent,
            registry=registry,
            limit=limit,
            dev_mode=dev_mode,
            cache=cache,
            limits=limits,
        )
    except ATHError as exc:
        return _error_result(exc)
    return {"status": "ok", **found.to_dict()}

"""Provider admin: the console page ``/ath/console/providers`` and the admin API.

API (operator session cookie, and for changes the console CSRF token in ``X-CSRF-Token``):

* ``GET /ath/admin/providers`` lists every provider with its source and version;
* ``PUT /ath/admin/providers/{provider_id}`` with ``{"provider": {...}, "client_secret": ...}``
  saves a new version (the provider table exactly as in the TOML; the secret is optional and
  sealed at rest);
* ``POST /ath/admin/providers/{provider_id}/disable`` takes a provider out of service.

The console page takes the same provider table as TOML text (a built-in template can prefill
it). Changes reach every node within ``provider_poll_seconds``.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from athkit.core.workers import run_in_worker
from athkit.gateway.live_providers import LiveProviders
from athkit.gateway.templates import TEMPLATES, template_toml
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.web.body import read_json_object
from athkit.web.console import (
    IsOperator,
    checked_form,
    csrf_header_ok,
    operator_name,
    render_page,
)

CONSOLE_PATH = "/ath/console/providers"
MAX_BODY = 256 * 1024


def provider_table(text: str) -> dict[str, Any]:
    """One provider from TOML text: its keys at top level, or a single ``[[providers]]``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ATHError(ErrorCode.VALIDATION_ERROR, f"not valid TOML: {exc}") from None
    if "providers" in data:
        items = data["providers"]
        if not isinstance(items, list) or len(items) != 1 or len(data) != 1:
            raise ATHError(ErrorCode.VALIDATION_ERROR, "give exactly one [[providers]] table")
        data = items[0]
    return data


def build_admin_router(live: LiveProviders, is_operator: IsOperator) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    async def operator(request: Request, *, change: bool) -> str:
        name = await operator_name(is_operator, request)
        if name is None:
            raise ATHError(ErrorCode.OPERATOR_ONLY, "operators only")
        if change and not csrf_header_ok(request):
            raise ATHError(ErrorCode.STATE_MISMATCH, "X-CSRF-Token must match the console")
        return name

    @router.get("/ath/admin/providers")
    async def list_providers(request: Request) -> Response:
        await operator(request, change=False)
        entries = await run_in_worker(live.entries)
        return JSONResponse({"providers": [asdict(e) for e in entries]})

    @router.put("/ath/admin/providers/{provider_id}")
    async def put_provider(provider_id: str, request: Request) -> Response:
        name = await operator(request, change=True)
        body = await read_json_object(request, MAX_BODY)
        provider = body.get("provider")
        secret = body.get("client_secret")
        if not isinstance(provider, dict) or not isinstance(secret, str | None):
            raise ATHError(ErrorCode.VALIDATION_ERROR, "give provider (object), client_secret")
        if provider.get("provider_id", provider_id) != provider_id:
            raise ATHError(ErrorCode.VALIDATION_ERROR, "provider_id differs from the URL")
        provider = {**provider, "provider_id": provider_id}
        version = await run_in_worker(
            lambda: live.save(provider, operator=name, client_secret=secret)
        )
        return JSONResponse({"provider_id": provider_id, "version": version})

    @router.post("/ath/admin/providers/{provider_id}/disable")
    async def disable_provider(provider_id: str, request: Request) -> Response:
        name = await operator(request, change=True)
        version = await run_in_worker(lambda: live.disable(provider_id, operator=name))
        return JSONResponse({"provider_id": provider_id, "version": version, "disabled": True})

    @router.get(CONSOLE_PATH)
    async def console_page(request: Request) -> Response:
        name = await operator_name(is_operator, request)
        if name is None:
            raise ATHError(ErrorCode.OPERATOR_ONLY, "operators only")
        chosen = request.query_params.get("template", "")
        text = template_toml(chosen) if chosen in TEMPLATES else ""
        entries = await run_in_worker(live.entries)
        return render_page(
            request,
            "console_providers.html",
            {
                "entries": entries,
                "templates": sorted(TEMPLATES),
                "text": text,
                "error": None,
                "version": live.applied,
            },
        )

    @router.post(CONSOLE_PATH)
    async def console_save(request: Request) -> Response:
        name = await operator_name(is_operator, request)
        if name is None:
            raise ATHError(ErrorCode.OPERATOR_ONLY, "operators only")
        form = await checked_form(request)
        action = str(form.get("action") or "save")
        try:
            if action == "disable":
                pid = str(form.get("provider_id") or "")
                await run_in_worker(lambda: live.disable(pid, operator=name))
            else:
                text = str(form.get("config") or "")
                data = provider_table(text)
                secret = str(form.get("client_secret") or "") or None
                await run_in_worker(lambda: live.save(data, operator=name, client_secret=secret))
        except ATHError as exc:
            entries = await run_in_worker(live.entries)
            detail = exc.details.get("errors") if exc.details else None
            resp = render_page(
                request,
                "console_providers.html",
                {
                    "entries": entries,
                    "templates": sorted(TEMPLATES),
                    "text": str(form.get("config") or ""),
                    "error": f"{exc.message}: {detail}" if detail else exc.message,
                    "version": live.applied,
                },
            )
            resp.status_code = exc.status
            return resp
        return RedirectResponse(CONSOLE_PATH, status_code=303)

    return router

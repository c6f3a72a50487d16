"""The ATH agent tools, defined once: name, description, argument schema and behaviour.

The MCP server (:mod:`athkit.integrations.mcp_server`) and the framework adapters
(:mod:`~athkit.integrations.langchain`, :mod:`~athkit.integrations.openai_agents`,
:mod:`~athkit.integrations.pydantic_ai`) only translate these :data:`TOOLS` into their
framework's shape and pass the end user's id from the framework's run context.

Every tool returns a JSON-ready dict with a ``status``: ``ok``, ``authorization_required``
(show ``authorization_url`` to the user; call again, or :func:`wait_for_authorization`, once
they have consented), ``needs_confirmation`` (the URL's origin is neither allowlisted nor
confirmed by the user), ``not_connected``, ``refused`` (the service said no, with ``hint``) or
``error``. URLs that come from the model are fetched only after the allowlist or the user's own
confirmation (the application's ``confirm`` callback, never a tool argument): a prompt
injection cannot make the agent fetch an arbitrary URL.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from athkit.client.agent import DEFAULT_WAIT, ATHAgent, NotConnected
from athkit.client.discovery import Allowlist, origin_of, search_providers_tool
from athkit.client.errors import ClientStateError
from athkit.client.vault import (
    GrantRecord,
    PendingAuthorization,
    ReauthorizationNeeded,
    RefreshFailed,
    VaultError,
)
from athkit.integrations.tool_args import (
    MAX_TOOL_WAIT,
    CallApiArgs,
    ConnectProviderArgs,
    DiscoverProviderArgs,
    ListGrantsArgs,
    RevokeArgs,
    SearchProvidersArgs,
    ToolArgs,
)
from athkit.protocol.errors import ATHError, ErrorCode, error_hint

__all__ = ["MAX_TOOL_WAIT", "TOOLS", "ATHTools", "ToolSpec", "run_for", "user_from",
           "wait_for_authorization"]

#: API response bodies handed to a model are cut to this many characters.
MAX_BODY_CHARS = 20_000


@dataclass
class ATHTools:
    """What the tools act with: the agent, the registry, and the URL guard's settings.

    ``allow`` lists origins (or ``*.domain``) the tools may fetch without asking;
    ``confirm(url)`` asks the *user* (a dialog, an MCP elicitation) and is remembered per
    origin for this object's lifetime.
    """

    agent: ATHAgent
    registry: str | None = None
    allow: Iterable[str] = ()
    confirm: Callable[[str], bool] | None = None
    _confirmed: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _call: threading.local = field(default_factory=threading.local)

    def guard(self, url: str) -> dict[str, Any] | None:
        """``None`` if ``url`` may be fetched, else the ``needs_confirmation`` result."""
        confirm = getattr(self._call, "confirm", None) or self.confirm
        try:
            origin = origin_of(url)
        except ValueError as exc:
            return _error("INVALID_REQUEST", str(exc))
        if Allowlist(self.allow).allows(url, dev_mode=self.agent.dev_mode):
            return None
        with self._lock:
            if origin in self._confirmed:
                return None
        if confirm is not None and confirm(url):
            with self._lock:
                self._confirmed.add(origin)
            return None
        return {
            "status": "needs_confirmation",
            "url": url,
            "origin": origin,
            "message": f"{origin} is not on the allowlist and the user has not confirmed it. "
            "Ask the user whether they trust this service; do not retry on your own.",
        }

    def run(
        self,
        name: str,
        arguments: dict[str, Any],
        user: str,
        *,
        confirm: Callable[[str], bool] | None = None,
    ) -> dict[str, Any]:
        """Validate ``arguments`` and run tool ``name`` for end user ``user``; ``confirm``
        replaces the default user-confirmation callback for this call (its own thread)."""
        spec = TOOLS_BY_NAME.get(name)
        if spec is None:
            return _error("NOT_FOUND", f"no tool named {name!r}")
        try:
            args = spec.args.model_validate(arguments)
        except ValueError as exc:
            return _error("VALIDATION_ERROR", str(exc).splitlines()[0])
        self._call.confirm = confirm
        try:
            return spec.call(self, args, user)
        finally:
            self._call.confirm = None


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    args: type[ToolArgs]
    behaviour: Callable[[ATHTools, Any, str], dict[str, Any]]

    def json_schema(self) -> dict[str, Any]:
        return self.args.model_json_schema()

    def call(self, tools: ATHTools, args: ToolArgs, user: str) -> dict[str, Any]:
        try:
            return self.behaviour(tools, args, user)
        except ATHError as exc:
            return _refused(exc)
        except (NotConnected, ReauthorizationNeeded) as exc:
            return {"status": "not_connected", "message": str(exc),
                    "hint": "Call connect_provider; the user must consent."}
        except (ClientStateError, VaultError, RefreshFailed, LookupError, ValueError) as exc:
            return _error("INVALID_REQUEST", str(exc))


def _error(code: str, message: str) -> dict[str, Any]:
    return {"status": "error", "code": code, "message": message, "hint": error_hint(code)}


def _refused(exc: ATHError) -> dict[str, Any]:
    return {
        "status": "refused",
        "code": exc.code_str,
        "message": exc.message,
        "hint": error_hint(exc.code),
        "details": exc.details,
    }


def _authorization_required(pending: PendingAuthorization) -> dict[str, Any]:
    return {
        "status": "authorization_required",
        "authorization_url": pending.authorization_url,
        "provider_id": pending.provider_id,
        "scopes": pending.scopes,
        "expires_in": max(0, int(pending.created_at + pending.lifetime - time.time())),
        "message": "Show this link to the user and ask them to open it and decide. "
        "When they say they are done, call connect_provider again with the same arguments.",
    }


def _connected(grant: GrantRecord) -> dict[str, Any]:
    return {"status": "ok", "connected": True, **grant.public_dict()}


# -- behaviour ---------------------------------------------------------------------------


def _search(tools: ATHTools, args: SearchProvidersArgs, user: str) -> dict[str, Any]:
    if not tools.registry:
        return _error("INVALID_REQUEST", "no registry is configured for search_providers")
    return search_providers_tool(
        args.intent, registry=tools.registry, limit=args.limit, dev_mode=tools.agent.dev_mode
    )


def _discover(tools: ATHTools, args: DiscoverProviderArgs, user: str) -> dict[str, Any]:
    blocked = tools.guard(args.url)
    if blocked is not None:
        return blocked
    providers = tools.agent.discover(args.url)
    return {
        "status": "ok",
        "providers": [
            {k: p.to_dict()[k] for k in ("provider_id", "name", "base_url", "scopes", "kind")}
            for p in providers
        ],
    }


def _find_pending(
    tools: ATHTools, args: ConnectProviderArgs, user: str
) -> PendingAuthorization | None:
    want = args.service_url.rstrip("/")
    for p in reversed(tools.agent.vault.pending(user)):
        if p.service == want and args.provider_id in (None, p.provider_id):
            return p
    return None


def _connect(tools: ATHTools, args: ConnectProviderArgs, user: str) -> dict[str, Any]:
    blocked = tools.guard(args.service_url)
    if blocked is not None:
        return blocked
    agent = tools.agent
    pending = _find_pending(tools, args, user)
    if pending is not None:
        grant = agent.poll_authorization(pending, user=user)
        if grant is not None:
            return _connected(grant)
    else:
        existing = (
            agent.vault.find_grant(args.provider_id, service=args.service_url, user=user)
            if args.provider_id
            else None
        )
        covered = existing is not None and set(args.scopes or ()) <= set(existing.scopes)
        if existing is not None and covered and not existing.expires_within(60):
            return _connected(existing)
        pending = agent.connect(
            args.service_url, provider=args.provider_id, scopes=args.scopes, user=user
        )
    if args.wait_seconds:
        try:
            return _connected(
                agent.wait_for_authorization(pending, user=user, timeout=args.wait_seconds)
            )
        except ATHError as exc:
            if exc.code != ErrorCode.SESSION_NOT_READY:
                raise
    return _authorization_required(pending)


def _list_grants(tools: ATHTools, args: ListGrantsArgs, user: str) -> dict[str, Any]:
    return {"status": "ok", "grants": [g.public_dict() for g in tools.agent.grants(user)]}


def _call_api(tools: ATHTools, args: CallApiArgs, user: str) -> dict[str, Any]:
    grant = tools.agent.vault.find_grant(args.provider_id, service=args.service_url, user=user)
    if grant is None:
        raise NotConnected(f"the user has not connected {args.provider_id!r} yet")
    try:
        resp = tools.agent.call(
            args.provider_id, args.method, args.path, json=args.body,
            service=args.service_url, user=user,
        )
    except ATHError as exc:
        result = _refused(exc)
        if exc.code in (ErrorCode.SCOPE_INSUFFICIENT, ErrorCode.ROUTE_NOT_MAPPED):
            result["message"] = (
                f"Refused: {args.method} {args.path} is outside what the user granted "
                f"({' '.join(grant.scopes)}). {exc.message}"
            )
        return result
    try:
        body: Any = resp.json()
        if len(json.dumps(body)) > MAX_BODY_CHARS:
            body = json.dumps(body)[:MAX_BODY_CHARS]
    except ValueError:
        body = resp.text[:MAX_BODY_CHARS]
    return {"status": "ok", "http_status": resp.status_code, "body": body}


def _revoke(tools: ATHTools, args: RevokeArgs, user: str) -> dict[str, Any]:
    grant = tools.agent.revoke(args.provider_id, service=args.service_url, user=user)
    return {"status": "ok", "revoked": grant.public_dict()}


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "search_providers",
        "Find ATH services that can do something for the user, by describing the need "
        "(e.g. 'order groceries'). Returns ranked services with their URLs. Use it when you "
        "do not know which service to use; it does not connect to anything.",
        SearchProvidersArgs,
        _search,
    ),
    ToolSpec(
        "discover_provider",
        "Read an ATH service's public discovery document: its providers and the scopes they "
        "offer. Only allowlisted or user-confirmed origins are fetched; if the answer is "
        "needs_confirmation, ask the user, do not try other URLs.",
        DiscoverProviderArgs,
        _discover,
    ),
    ToolSpec(
        "connect_provider",
        "Ask the user to let this agent use a service for them. Returns "
        "authorization_required with a link the USER must open and approve (show it to "
        "them); call again with the same arguments after they did, and it returns the grant. "
        "Never open the link yourself.",
        ConnectProviderArgs,
        _connect,
    ),
    ToolSpec(
        "list_grants",
        "List the services this user has connected: provider, scopes, expiry. No secrets. "
        "Use it to see what you may call before call_api.",
        ListGrantsArgs,
        _list_grants,
    ),
    ToolSpec(
        "call_api",
        "Call a connected provider's HTTP API for the user (method, path relative to the "
        "provider, optional JSON body). Calls outside the scopes the user granted are refused "
        "with an explanation; do not retry them, ask the user to connect with more scopes.",
        CallApiArgs,
        _call_api,
    ),
    ToolSpec(
        "revoke",
        "Disconnect a provider for the user: revokes the grant at the service and forgets it. "
        "Only when the user asks for it.",
        RevokeArgs,
        _revoke,
    ),
)
TOOLS_BY_NAME: dict[str, ToolSpec] = {t.name: t for t in TOOLS}


def wait_for_authorization(
    agent: ATHAgent,
    *,
    user: str,
    provider_id: str | None = None,
    timeout: float = DEFAULT_WAIT,
) -> GrantRecord:
    """Block until ``user`` finished the pending consent (of ``provider_id`` if given).

    For applications: after a tool returned ``authorization_required`` and the app showed the
    link, this returns the grant once the user approved (raises ``UserDeniedError`` on a no,
    an ATH ``SESSION_NOT_READY`` error after ``timeout``).
    """
    pending = [
        p for p in agent.vault.pending(user) if provider_id in (None, p.provider_id)
    ]
    if not pending:
        raise NotConnected(f"no pending authorization for user {user!r}")
    return agent.wait_for_authorization(pending[-1], user=user, timeout=timeout)


def user_from(context: Any, key: str = "user_id") -> str:
    """The end user's id from a framework's run context: ``context[key]`` for a mapping
    (e.g. LangChain's ``configurable``), else ``context.<key>`` (a dataclass, deps object)."""
    value = context.get(key) if isinstance(context, dict) else getattr(context, key, None)
    if not isinstance(value, str) or not value:
        raise LookupError(f"the run context carries no {key!r}: pass the end user's id in it")
    return value


def run_for(tools: ATHTools, name: str, arguments: dict[str, Any], context: Any,
            key: str = "user_id") -> dict[str, Any]:
    """Run tool ``name`` for the user named in a framework's run ``context``."""
    try:
        user = user_from(context, key)
    except LookupError as exc:
        return _error("INVALID_REQUEST", str(exc))
    return tools.run(name, arguments, user)

"""Steps the native and gateway walkthroughs share: register, consent form, token, API, revoke."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from rich.markup import escape

from athkit.cli.demo.walkthrough import Abort, Walkthrough, guard, mark, scope_table, verdict
from athkit.cli.trace import HTTPTrace, compact_json, shorten_secret
from athkit.client import ATHClient
from athkit.client.errors import ATHError
from athkit.crypto.keys import AgentKey
from athkit.demo.agent import DEVELOPER
from athkit.demo.browser import HTTPBrowser
from athkit.protocol.messages import TokenResponse


@dataclass(frozen=True)
class ApiCall:
    """One API call of step 6 and the scope its route needs (``None``: no rule maps it)."""

    method: str
    path: str
    scope: str | None
    provider: str
    json: Any = None
    via_proxy: bool = False
    api_prefix: str = "/api"

    @property
    def shown(self) -> str:
        prefix = f"/ath/proxy/{self.provider}" if self.via_proxy else ""
        return f"{self.method} {prefix}{self.api_prefix}{self.path}"


def register_agent(
    walk: Walkthrough,
    client: ATHClient,
    *,
    provider: str,
    scopes: list[str],
    want_approved: list[str],
    want_denied: list[str],
    decider: str,
    purpose: str,
) -> list[str]:
    """Phase A: register, show the service's per-scope decision, return the approved scopes."""
    reg = guard(
        walk,
        lambda: client.register(
            developer=DEVELOPER,
            providers=[{"provider_id": provider, "scopes": scopes}],
            purpose=purpose,
        ),
    )
    approval = next((p for p in reg.approved_providers if p.provider_id == provider), None)
    approved = list(approval.approved_scopes) if approval else []
    denied = list(approval.denied_scopes) if approval else []
    walk.show(
        scope_table(
            f"{decider.capitalize()}'s decision for client {escape(reg.client_id)}",
            ["scope", "requested", f"approved by the {decider}"],
            [[s, mark(True), mark(s in approved)] for s in scopes],
        )
    )
    if approval and approval.denial_reason:
        walk.say(f"[dim]denial reason:[/] {escape(approval.denial_reason)}")
    walk.say(f"client_secret {shorten_secret(reg.client_secret)} (kept by the agent)")
    walk.expect(reg.agent_status.value == "approved", "agent_status approved", reg.agent_status)
    walk.expect(approved == want_approved, f"approved {want_approved}", approved)
    walk.expect(
        denied == want_denied,
        f"denied {want_denied} (untrusted agent, {decider} policy)",
        denied,
    )
    if not approved:
        raise Abort
    return approved


def revoke_and_retry(
    walk: Walkthrough, client: ATHClient, provider: str, call: Callable[[], httpx.Response]
) -> None:
    """Revoke the current token (§8), then show the same token refused: 401 TOKEN_REVOKED."""
    old_token = client.access_token
    guard(walk, client.revoke)
    walk.expect(True, "revoke answered 200")
    client.set_token(old_token, provider)
    walk.say("the same call again with the revoked token:")
    try:
        resp = call()
        walk.expect(False, "401 TOKEN_REVOKED", f"HTTP {resp.status_code}")
    except ATHError as exc:
        walk.expect(
            exc.code_str == "TOKEN_REVOKED" and exc.status == 401,
            "401 TOKEN_REVOKED",
            f"{exc.status} {exc.code_str}",
        )


def consent_form(
    walk: Walkthrough, browser: HTTPBrowser, url: str, approved: list[str], untick: str
) -> httpx.Response:
    """Open the consent page (signing in if asked), show it, untick ``untick``, authorize."""
    page = guard(walk, lambda: browser.open_consent(url))
    walk.show(
        scope_table(
            "Consent page",
            ["scope", "offered", "ticked", "blocked"],
            [
                [
                    s,
                    mark(s in page.offered),
                    mark(s in page.preselected),
                    "[red]blocked[/]" if s in page.blocked else "",
                ]
                for s in dict.fromkeys(page.offered + page.blocked)
            ],
        )
    )
    walk.expect(page.offered == approved, f"consent page offers {approved}", page.offered)
    chosen = [s for s in page.preselected if s != untick]
    walk.say(f"{browser.username} [bold]unticks {untick}[/] and authorizes {chosen}:")
    response: httpx.Response = guard(walk, lambda: browser.decide(approve=True, scopes=chosen))
    return response


def show_intersection(
    walk: Walkthrough,
    token: TokenResponse,
    requested: list[str],
    *,
    scopes: list[str],
    want_effective: list[str] | None,
) -> None:
    """The token's scope_intersection as a table, checked (and against ``want_effective``)."""
    inter = token.scope_intersection
    rows = []
    for s in scopes:
        rows.append(
            [
                s,
                mark(s in inter.agent_approved),
                mark(s in inter.user_consented),
                mark(s in requested),
                "[bold green]✓[/]" if s in inter.effective else "[red]✗[/]",
            ]
        )
    walk.show(
        scope_table(
            "Scope intersection (effective = approved ∩ consented ∩ requested)",
            ["scope", "agent_approved", "user_consented", "requested", "effective"],
            rows,
        )
    )
    walk.say(
        f"access_token {shorten_secret(token.access_token)}, expires_in {token.expires_in} s, "
        f"effective_scopes {compact_json(token.effective_scopes)}"
    )
    computed = [s for s in inter.agent_approved if s in inter.user_consented and s in requested]
    walk.expect(
        sorted(token.effective_scopes) == sorted(computed),
        "effective = approved ∩ consented ∩ requested",
        token.effective_scopes,
    )
    if want_effective is not None:
        walk.expect(
            token.effective_scopes == want_effective,
            f"effective scopes {want_effective}",
            token.effective_scopes,
        )


def _why_refused(scope: str, approved: list[str], decider: str) -> str:
    if scope not in approved:
        return f"the {decider} never approved it for this agent"
    return "the user did not consent to it"


def api_call(
    walk: Walkthrough,
    client: ATHClient,
    call: ApiCall,
    effective: set[str],
    approved: list[str],
    *,
    decider: str,
) -> httpx.Response | None:
    """Make ``call``; expect 200/201 within the effective scopes, the right 403 otherwise."""
    if call.scope is None:
        want = "403 ROUTE_NOT_MAPPED"
        what = f"{call.shown} → {want} (no scope rule maps this route: never forwarded)"
    elif call.scope in effective:
        want = f"{201 if call.method == 'POST' else 200}"
        what = f"{call.shown} → {want} (needs {call.scope}: granted)"
    else:
        want = "403 SCOPE_INSUFFICIENT"
        why = _why_refused(call.scope, approved, decider)
        what = f"{call.shown} → {want} (needs {call.scope}: {why})"
    resp: httpx.Response | None = None
    try:
        if call.via_proxy:
            path = (call.api_prefix + call.path).lstrip("/")
            resp = client.proxy_request(call.method, call.provider, path, json=call.json)
        else:
            resp = client.request(call.method, call.path, json=call.json)
        got = str(resp.status_code)
    except ATHError as exc:
        got = f"{exc.status} {exc.code_str}"
    walk.expect(got == want, what, got)
    return resp


def run_agent_steps(
    walk: Walkthrough,
    base_url: str,
    agent_id: str,
    key: AgentKey,
    steps: Callable[[ATHClient, HTTPTrace], None],
    *,
    timeout: float,
    quiet: bool,
) -> int:
    """Run ``steps`` with an ATH client whose every exchange is printed; the exit code.

    A failed step ends the walkthrough (the verdict lists why); Ctrl-C exits 130.
    """
    trace = HTTPTrace(walk.console, verbose=not quiet, label="agent")
    http = httpx.Client(timeout=timeout, trust_env=False, event_hooks=trace.hooks())
    try:
        with ATHClient(base_url, agent_id, key, http_client=http) as client:
            steps(client, trace)
    except Abort:
        pass
    except KeyboardInterrupt:
        walk.console.print("\n[yellow]interrupted[/]")
        return 130
    finally:
        http.close()
    return verdict(walk)

"""``athkit demo --gateway``: the same seven steps through an ATH gateway (§7).

The ATH gateway stands in front of an unchanged OAuth-protected API. Upstream is a real OpenID
provider (node oidc-provider, installed on first use, :mod:`athkit.demo.upstream`) and "Example
Mail", a resource API that only accepts the provider's JWT access tokens
(:mod:`athkit.demo.mail_api`). The user sees two pages: the gateway's consent page (ATH scopes)
and then the provider's own sign-in and consent (upstream scopes).
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from athkit.cli.demo.steps import (
    ApiCall,
    api_call,
    consent_form,
    register_agent,
    revoke_and_retry,
    run_agent_steps,
    show_intersection,
)
from athkit.cli.demo.walkthrough import Abort, DemoOptions, Walkthrough, demo_data_dir, guard
from athkit.cli.trace import HTTPTrace, url_query
from athkit.client import ATHClient
from athkit.client.errors import ATHError
from athkit.crypto.keys import AgentKey
from athkit.crypto.sealing import TokenSealer, new_key_spec
from athkit.demo import mail_gateway
from athkit.demo.agent import create_agent_identity_app, publish
from athkit.demo.browser import HTTPBrowser, complete_upstream_login
from athkit.demo.mail_api import create_resource_api
from athkit.demo.upstream import (
    OIDCProvider,
    ProviderSetupError,
    ensure_installed,
    start_oidc_provider,
)
from athkit.gateway.app import create_gateway_app
from athkit.gateway.config import parse_config
from athkit.gateway.service import GatewayService
from athkit.gateway.service import _owner as upstream_owner
from athkit.web.serving import BackgroundServer, free_port

GW_PROVIDER = mail_gateway.PROVIDER_ID
GW_USER = "alice"
#: The gateway's ATH scopes for Example Mail and the upstream scope each one needs.
GW_SCOPES = {name: upstream[0] for name, (_, upstream) in mail_gateway.SCOPES.items()}
GW_REGISTER_SCOPES = list(GW_SCOPES)
#: The gateway's policy approves every agent, but mail:delete only for trusted agents.
GW_EXPECT_APPROVED = ["mail:read", "mail:send"]
GW_EXPECT_DENIED = ["mail:delete"]
GW_UNTICKED = "mail:send"
GW_SECRET_ENV = "ATHKIT_DEMO_MAIL_CLIENT_SECRET"  # noqa: S105 - the variable's name


def _mail(method: str, path: str, scope: str | None, json: Any = None) -> ApiCall:
    return ApiCall(method, path, scope, GW_PROVIDER, json, via_proxy=True, api_prefix="")


GW_API_CALLS = [
    _mail("GET", "/v1/me", "mail:read"),
    _mail("GET", "/v1/messages", "mail:read"),
    _mail("POST", "/v1/messages", "mail:send", {"to": "bob@example.test", "text": "hi"}),
    _mail("DELETE", "/v1/messages/1", "mail:delete"),
    _mail("GET", "/v1/admin/users", None),  # no scope rule maps it
]


@contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@dataclass
class _GatewayWorld:
    """Everything the gateway walkthrough talks to."""

    url: str
    service: GatewayService
    sealer_kid: str
    op: OIDCProvider
    agent_id: str
    key: AgentKey
    data_dir: str
    temporary: bool


class _StackError(Exception):
    """A demo server could not start (the message says which and why)."""


@contextmanager
def gateway_stack(options: DemoOptions, console: Console) -> Iterator[_GatewayWorld]:
    """Upstream provider, Example Mail, the gateway and an agent host on loopback ports.

    Everything started is stopped, and a temporary data directory removed, on the way out.
    Raises :class:`_StackError` when a server cannot start.
    """
    try:
        ensure_installed(log=lambda line: console.print(f"[dim]{escape(line)}[/]"))
    except ProviderSetupError as exc:
        raise _StackError(f"cannot start the upstream OpenID provider: {exc}") from None
    with demo_data_dir(options.data_dir) as data_dir, ExitStack() as running:
        port = options.port or free_port()
        gw_url = f"http://127.0.0.1:{port}"
        kid = f"demo{secrets.token_hex(2)}"
        try:
            # A random client secret (start_oidc_provider's default), known only to this run.
            op = start_oidc_provider([f"{gw_url}/ath/callback"], access_token_ttl=300)
            running.callback(op.stop)
            api_port = urlsplit(op.resource).port
            api = BackgroundServer(create_resource_api(op.issuer, op.resource), port=api_port)
            running.callback(api.start().stop)
            running.enter_context(_environ(GW_SECRET_ENV, op.client_secret))
            cfg = parse_config(
                mail_gateway.mail_gateway_config(
                    gw_url,
                    issuer=op.issuer,
                    resource=op.resource,
                    client_id=op.client_id,
                    secret_env=GW_SECRET_ENV,
                    data_dir=data_dir,
                )
            )
            # A fresh AES-256-GCM sealing key for this run (a real gateway reads its keyring
            # from ATHKIT_GATEWAY_TOKEN_KEYS).
            service = GatewayService(cfg, sealer=TokenSealer.from_spec(new_key_spec(kid)))
            gateway = BackgroundServer(create_gateway_app(cfg, service=service), port=port)
            running.callback(gateway.start().stop)
            identity_app = create_agent_identity_app()
            identity = BackgroundServer(identity_app).start()
            running.callback(identity.stop)
        except (ProviderSetupError, RuntimeError, ValueError, OSError, ATHError) as exc:
            raise _StackError(f"could not start the demo servers: {exc}") from None
        key = AgentKey.generate("P-256", kid="default")
        agent_id = publish(identity_app, identity.url, key)
        yield _GatewayWorld(
            gw_url, service, kid, op, agent_id, key, str(data_dir), options.data_dir is None
        )


def _stack_panel(world: _GatewayWorld, title: str) -> Panel:
    op = world.op
    return Panel.fit(
        f"ATH gateway       {world.url}  (gateway mode, dev mode, sealing key "
        f"{world.sealer_kid}: new for this run)\n"
        f"Upstream provider {op.issuer}  (node oidc-provider, client {op.client_id}, "
        "random secret)\n"
        f"Example Mail API  {op.resource}  (accepts only the provider's JWTs)\n"
        f"Gateway data      {escape(world.data_dir)}"
        f"{' (temporary, removed afterwards)' if world.temporary else ''}\n"
        f"Agent identity    {world.agent_id}\n"
        f"User              {GW_USER} (signs in at the provider)",
        title=title,
    )


def run_gateway_demo(options: DemoOptions, console: Console) -> int:
    """Start upstream provider, Example Mail, the gateway and the agent host; walk 7 steps."""
    walk = Walkthrough(console, quiet=options.quiet)
    try:
        with gateway_stack(options, console) as world:
            title = "athkit demo --gateway: an ATH gateway in front of an OAuth API"
            walk.show(_stack_panel(world, title))
            return run_agent_steps(
                walk,
                world.url,
                world.agent_id,
                world.key,
                lambda client, _trace: _walk_gateway(walk, client, world, options),
                timeout=15.0,
                quiet=options.quiet,
            )
    except _StackError as exc:
        console.print(f"[bold red]{escape(str(exc))}[/]")
        return 1


def serve_gateway_stack(options: DemoOptions, console: Console) -> int:
    """``athkit demo --gateway --serve``: keep the gateway demo stack up for your own agent."""
    try:
        with gateway_stack(options, console) as world:
            console.print(
                _stack_panel(world, "athkit demo --gateway --serve: the gateway stack, running")
            )
            console.print(
                f"Point an agent at [bold]{world.url}[/] (discovery: "
                f"{world.url}/.well-known/ath.json, provider [bold]{GW_PROVIDER}[/], scopes "
                f"{', '.join(GW_REGISTER_SCOPES)}; agents need --dev / dev_mode for http).\n"
                "At the provider's sign-in page any user name and password sign in.\n"
                "Press Ctrl-C to stop."
            )
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                console.print("\nstopping")
            return 0
    except _StackError as exc:
        console.print(f"[bold red]{escape(str(exc))}[/]")
        return 1


def _walk_gateway(
    walk: Walkthrough, client: ATHClient, world: _GatewayWorld, options: DemoOptions
) -> None:
    gw_url, op = world.url, world.op
    # -- 1 discovery: the gateway's catalog -----------------------------------------------
    walk.step(1, "Discovery", "what can this gateway connect me to?")
    doc = guard(walk, client.discover_gateway)
    listed = {p.provider_id: p for p in doc.supported_providers}
    for p in doc.supported_providers:
        walk.say(
            escape(f"{p.display_name} ({p.provider_id}): {', '.join(p.available_scopes)}; ")
            + f"auth_mode {p.auth_mode}, agent approval required: {p.agent_approval_required}"
        )
    mail = listed.get(GW_PROVIDER)
    walk.expect(mail is not None, f"provider {GW_PROVIDER!r} in the catalog", sorted(listed))
    if mail is None:
        raise Abort
    walk.expect(
        mail.available_scopes == GW_REGISTER_SCOPES,
        f"available_scopes {GW_REGISTER_SCOPES}",
        mail.available_scopes,
    )
    walk.expect(
        doc.agent_registration_endpoint == f"{gw_url}/ath/agents/register",
        "agent_registration_endpoint on the gateway",
        doc.agent_registration_endpoint,
    )

    # -- 2 registration (Phase A: the gateway's policy decides) ---------------------------
    walk.step(2, "Registration", "may I use Example Mail through you? (the gateway decides)")
    approved = register_agent(
        walk,
        client,
        provider=GW_PROVIDER,
        scopes=GW_REGISTER_SCOPES,
        want_approved=GW_EXPECT_APPROVED,
        want_denied=GW_EXPECT_DENIED,
        decider="gateway",
        purpose="AI mail assistant (athkit gateway demo)",
    )

    # -- 3 authorization ----------------------------------------------------------------------
    walk.step(3, "Authorization", "let me ask the user")
    auth = guard(walk, lambda: client.authorize(GW_PROVIDER, approved))
    walk.say(f"send the user to: {escape(auth.authorization_url)}")
    walk.expect(
        auth.authorization_url.startswith(f"{gw_url}/"),
        "the user goes to the gateway's own consent page first",
        auth.authorization_url,
    )

    # -- 4 user consent: the gateway's page, then the provider's ------------------------------
    walk.step(4, "User consent", "the user decides at the gateway, then signs in at the provider")
    browser = HTTPBrowser(GW_USER, "unused")  # the gateway has no login of its own
    HTTPTrace(walk.console, verbose=not options.quiet, label="browser").install(browser.http)
    try:
        _gateway_consent(walk, browser, world, auth.authorization_url, approved)
    finally:
        browser.close()

    # -- 5 token exchange -----------------------------------------------------------------
    walk.step(5, "Token exchange", "here is your scoped access")
    token = guard(walk, lambda: client.exchange_token(auth.ath_session_id))
    want = [s for s in GW_EXPECT_APPROVED if s != GW_UNTICKED]
    show_intersection(walk, token, approved, scopes=GW_REGISTER_SCOPES, want_effective=want)
    info = guard(
        walk,
        lambda: world.service.validate(
            token.access_token, agent_header=client.agent_id, provider_id=GW_PROVIDER
        ),
    )
    key = (info.client_id, info.user_id, GW_PROVIDER)
    row = world.service.store.get_upstream_token(*key)
    sealed = row.access_token if row is not None else ""
    walk.say(
        f"the provider's tokens stay in the gateway, sealed (AES-256-GCM, key {world.sealer_kid}): "
        f"access_token {escape(sealed[:16])}… (operator's view of the gateway store)"
    )
    walk.expect(
        sealed.startswith(f"v1.{world.sealer_kid}.") and info.user_id == GW_USER,
        f"upstream tokens of {GW_USER} stored sealed with this run's key",
        sealed[:12],
    )

    # -- 6 API calls through the proxy ------------------------------------------------------
    walk.step(6, "Using the API", "through the gateway, within the effective scopes only")
    effective = set(token.effective_scopes)
    for call in GW_API_CALLS:
        resp = api_call(walk, client, call, effective, approved, decider="gateway")
        if call.path == "/v1/me" and resp is not None and resp.status_code == 200:
            me = resp.json()
            walk.expect(
                me.get("sub") == GW_USER and me.get("scope") == GW_SCOPES["mail:read"],
                f"Example Mail saw {GW_USER} with the upstream scope "
                f"{GW_SCOPES['mail:read']!r} only (least privilege upstream too)",
                me,
            )

    # -- 7 revocation, reaching the provider ----------------------------------------------------
    walk.step(7, "Revocation", "I'm done (and the provider's grant goes too)")
    refresh = _sealed_refresh_token(world, key)
    revoke_and_retry(
        walk, client, GW_PROVIDER, lambda: client.proxy_request("GET", GW_PROVIDER, "v1/me")
    )
    walk.expect(
        world.service.store.get_upstream_token(*key) is None,
        "the gateway forgot the user's upstream tokens",
    )
    if refresh is None:
        walk.expect(False, "a refresh token from the provider to test", "none stored")
        return
    walk.say(
        "operator check: the refresh token the gateway held, tried at the provider's token "
        "endpoint:"
    )
    operator = HTTPTrace(walk.console, verbose=not options.quiet, label="operator")
    with httpx.Client(timeout=10.0, trust_env=False, event_hooks=operator.hooks()) as http:
        resp = guard(
            walk,
            lambda: http.post(
                op.token_endpoint,
                data={"grant_type": "refresh_token", "refresh_token": refresh},
                auth=(op.client_id, op.client_secret),
            ),
        )
    error = resp.json().get("error") if "json" in resp.headers.get("content-type", "") else None
    walk.expect(
        resp.status_code == 400 and error == "invalid_grant",
        "the provider refuses it: 400 invalid_grant (the upstream grant was revoked)",
        f"{resp.status_code} {error}",
    )


def _gateway_consent(
    walk: Walkthrough, browser: HTTPBrowser, world: _GatewayWorld, url: str, approved: list[str]
) -> None:
    """The gateway's consent page (untick one scope), the provider's pages, the callback."""
    op = world.op
    walk.say(f"{GW_USER}'s browser opens the gateway's consent page:")
    to_provider = consent_form(walk, browser, url, approved, GW_UNTICKED)
    location = to_provider.headers.get("location", "")
    walk.expect(
        to_provider.is_redirect and location.startswith(op.authorization_endpoint),
        "the gateway sends the browser on to the provider's authorization endpoint",
        f"HTTP {to_provider.status_code} {location[:60]}",
    )
    query = url_query(location)
    walk.say(
        f"upstream request: scope={escape(query.get('scope', '?'))} "
        f"code_challenge_method={query.get('code_challenge_method', '?')} "
        "(the code_verifier stays in the gateway)"
    )
    walk.expect(
        bool(query.get("code_challenge"))
        and query.get("code_challenge_method") == "S256"
        and "code_verifier" not in query,
        "PKCE S256 towards the provider",
        query.get("code_challenge_method"),
    )
    kept = [s for s in approved if s != GW_UNTICKED]
    want_upstream = {"openid", "offline_access", *(GW_SCOPES[s] for s in kept)}
    walk.expect(
        set(query.get("scope", "").split()) == want_upstream,
        f"only the upstream scopes {sorted(want_upstream)} are asked for",
        query.get("scope"),
    )
    if not to_provider.is_redirect:
        raise Abort
    walk.say(f"{GW_USER} signs in at the provider and approves its consent page:")
    back = guard(walk, lambda: complete_upstream_login(browser.http, location, GW_USER))
    callback = back.headers.get("location", "")
    walk.expect(
        callback.startswith(f"{world.url}/ath/callback"),
        "the provider redirects back to the gateway's /ath/callback",
        callback[:60],
    )
    if not callback.startswith(f"{world.url}/ath/callback"):
        raise Abort
    walk.say("the gateway exchanges the provider's code itself (with its PKCE verifier):")
    done = guard(walk, lambda: browser.http.get(callback, headers={"Accept": "text/html"}))
    walk.expect(done.status_code == 200, "consent completes (HTTP 200)", done.status_code)


def _sealed_refresh_token(world: _GatewayWorld, key: tuple[str, str, str]) -> str | None:
    """The user's upstream refresh token, opened from the gateway store (operator's view)."""
    row = world.service.store.get_upstream_token(*key)
    if row is None or not row.refresh_token:
        return None
    return world.service.sealer.open(row.refresh_token, upstream_owner(*key))

"""``athkit demo``: the seed walkthrough (ATH Shop, seed 001) run for real, step by step.

``athkit demo --gateway`` walks the same seven steps in gateway mode: an ATH gateway in front of
Example Mail, an OAuth-protected API that knows nothing about ATH, with a real OpenID provider
(node oidc-provider, installed on first use, see :mod:`athkit.demo.upstream`) upstream.

Two real servers start on loopback ports: ATH Shop (native mode, SQLite in a throwaway data
directory) and a host publishing the demo agent's identity document. The agent then drives every
step with the client SDK over HTTP, and every exchange is printed. The user's part (sign in,
consent) is played over HTTP by :class:`~athkit.demo.browser.HTTPBrowser`, or by a person in a
real browser with ``--browser``.

Each step states what it expects; the command exits 0 only when every expectation held.
This module imports the server packages at import time: :mod:`athkit.cli.main` loads it lazily.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from athkit.cli.trace import HTTPTrace, compact_json, shorten_secret, url_query
from athkit.client import ATHClient
from athkit.client.errors import ATHError, SessionNotReadyError, UserDeniedError
from athkit.crypto.keys import AgentKey
from athkit.crypto.sealing import TokenSealer, new_key_spec
from athkit.demo import mail_gateway
from athkit.demo.agent import DEVELOPER, create_agent_identity_app, publish
from athkit.demo.browser import HTTPBrowser, complete_upstream_login
from athkit.demo.mail_api import create_resource_api
from athkit.demo.shop import DEMO_PASSWORD_ENV, DEMO_USER, SHOP_SCOPES, create_shop_app
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
from athkit.protocol.messages import TokenResponse
from athkit.web.serving import BackgroundServer, free_port

PROVIDER = "ath-shop"
#: What the agent asks the shop for at registration (Phase A).
REGISTER_SCOPES = ["products:read", "cart:read", "cart:write", "orders:write"]
#: What the shop's default policy grants an untrusted agent, and what it refuses.
EXPECT_APPROVED = ["products:read", "cart:read", "cart:write"]
EXPECT_DENIED = ["orders:write"]
#: The scope the scripted user unticks on the consent page.
UNTICKED = "cart:read"
DEFAULT_PASSWORD = "wonderland"  # noqa: S105 - the demo shop's documented demo login


@dataclass(frozen=True)
class ApiCall:
    """One API call of step 6 and the scope its route needs (``None``: no rule maps it)."""

    method: str
    path: str
    scope: str | None
    json: Any = None
    via_proxy: bool = False
    provider: str = PROVIDER
    api_prefix: str = "/api"

    @property
    def shown(self) -> str:
        prefix = f"/ath/proxy/{self.provider}" if self.via_proxy else ""
        return f"{self.method} {prefix}{self.api_prefix}{self.path}"


API_CALLS = [
    ApiCall("GET", "/products", "products:read"),
    ApiCall("POST", "/cart/items", "cart:write", {"product_id": "p-100", "quantity": 1}),
    ApiCall("GET", "/cart", "cart:read"),
    ApiCall("POST", "/orders", "orders:write"),
    ApiCall("GET", "/products", "products:read", via_proxy=True),
]


class _Abort(Exception):
    """A step failed in a way the following steps cannot recover from."""


@dataclass
class DemoOptions:
    browser: bool = False
    gateway: bool = False
    data_dir: Path | None = None
    quiet: bool = False
    password: str | None = None
    wait_seconds: float = 300.0
    poll_interval: float = 1.5


@dataclass
class Walkthrough:
    """Prints the steps and collects every expectation that did not hold."""

    console: Console
    quiet: bool = False
    failures: list[str] = field(default_factory=list)
    current: str = ""

    def step(self, number: int, title: str, question: str) -> None:
        self.current = f"step {number} ({title})"
        if not self.quiet:
            self.console.print()
            self.console.rule(f"[bold]Step {number}: {title}[/] [dim]— {question}[/]", align="left")

    def say(self, text: str) -> None:
        if not self.quiet:
            self.console.print(f"  {text}", soft_wrap=True)

    def show(self, renderable: Any) -> None:
        if not self.quiet:
            self.console.print(renderable)

    def expect(self, ok: bool, what: str, got: Any = None) -> bool:
        """Record ``what`` as expected; print a check mark or what differed."""
        if ok:
            self.say(f"[green]✓[/] {escape(what)}")
        else:
            detail = f" (got {got!r})" if got is not None else ""
            self.failures.append(f"{self.current}: expected {what}{detail}")
            self.console.print(f"  [bold red]✗ expected {escape(what)}{escape(detail)}[/]")
        return ok


def _scope_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False, pad_edge=True)
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "center")
    for row in rows:
        table.add_row(*row)
    return table


def _mark(ok: bool) -> str:
    return "[green]✓[/]" if ok else "[red]✗[/]"


@contextmanager
def _data_dir(given: Path | None) -> Iterator[Path]:
    """The given directory (kept), or a fresh temporary one (removed afterwards)."""
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    tmp = Path(tempfile.mkdtemp(prefix="athkit-demo-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_demo(options: DemoOptions, console: Console) -> int:
    """Start both servers, walk the seven steps, return the exit code (0: all as expected)."""
    if options.gateway:
        return run_gateway_demo(options, console)
    password = options.password or os.environ.get(DEMO_PASSWORD_ENV) or DEFAULT_PASSWORD
    walk = Walkthrough(console, quiet=options.quiet)
    with _data_dir(options.data_dir) as data_dir:
        port = free_port()
        shop_url = f"http://127.0.0.1:{port}"
        shop_app = create_shop_app(
            public_url=shop_url, data_dir=data_dir, dev_mode=True, password=password
        )
        identity_app = create_agent_identity_app()
        with ExitStack() as running:
            try:
                identity = BackgroundServer(identity_app).start()
                running.callback(identity.stop)
                shop = BackgroundServer(shop_app, port=port).start()
                running.callback(shop.stop)
            except RuntimeError as exc:
                console.print(f"[bold red]could not start the demo servers: {escape(str(exc))}[/]")
                return 1
            key = AgentKey.generate("P-256", kid="default")
            agent_id = publish(identity_app, identity.url, key)
            walk.show(
                Panel.fit(
                    f"ATH Shop        {shop_url}  (native mode, dev mode)\n"
                    f"Shop data       {escape(str(data_dir))}"
                    f"{'' if options.data_dir else ' (temporary, removed afterwards)'}\n"
                    f"Agent identity  {agent_id}\n"
                    f"Demo user       {DEMO_USER}",
                    title="athkit demo: the ATH Shop walkthrough",
                )
            )
            trace = HTTPTrace(console, verbose=not options.quiet, label="agent")
            http = httpx.Client(timeout=10.0, trust_env=False, event_hooks=trace.hooks())
            try:
                with ATHClient(shop_url, agent_id, key, http_client=http) as client:
                    _walk(walk, client, trace, options, password, shop_url)
            except _Abort:
                pass
            except KeyboardInterrupt:
                console.print("\n[yellow]interrupted[/]")
                return 130
            finally:
                http.close()
    return _verdict(walk)


def _verdict(walk: Walkthrough, steps: int = 7) -> int:
    console = walk.console
    console.print()
    if walk.failures:
        console.print("[bold red]The demo did not behave as expected:[/]")
        for failure in walk.failures:
            console.print(f"  [red]•[/] {escape(failure)}", soft_wrap=True)
        return 1
    console.print(f"[bold green]All {steps} steps behaved as expected.[/]")
    return 0


def _guard(walk: Walkthrough, action: Callable[[], Any]) -> Any:
    """Run one SDK call; an unexpected error ends the walkthrough as a failure."""
    try:
        return action()
    except ATHError as exc:
        walk.failures.append(f"{walk.current}: unexpected {exc.code_str} ({exc.message})")
        walk.console.print(f"  [bold red]✗ {escape(exc.code_str)}: {escape(exc.message)}[/]")
        raise _Abort from exc
    except (httpx.HTTPError, RuntimeError) as exc:
        walk.failures.append(f"{walk.current}: {type(exc).__name__}: {exc}")
        walk.console.print(f"  [bold red]✗ {type(exc).__name__}: {escape(str(exc))}[/]")
        raise _Abort from exc


def _walk(
    walk: Walkthrough,
    client: ATHClient,
    trace: HTTPTrace,
    options: DemoOptions,
    password: str,
    shop_url: str,
) -> None:
    # -- 1 discovery ---------------------------------------------------------------------
    walk.step(1, "Discovery", "what can I connect to?")
    doc = _guard(walk, client.discover)
    walk.say(escape(f"{doc.name} ({doc.app_id}), ATH {doc.ath_version}, API at {doc.api_base}"))
    walk.expect(doc.api_base == f"{shop_url}/api", "api_base under the shop's URL", doc.api_base)
    walk.expect(
        set(SHOP_SCOPES) <= set(doc.auth.scopes_supported),
        "all five shop scopes supported",
        doc.auth.scopes_supported,
    )

    # -- 2 registration (Phase A: the service decides) -----------------------------------
    walk.step(2, "Registration", "may I use your service? (the shop decides)")
    approved = _register(
        walk,
        client,
        provider=PROVIDER,
        scopes=REGISTER_SCOPES,
        want_approved=EXPECT_APPROVED,
        want_denied=EXPECT_DENIED,
        decider="shop",
        purpose="AI shopping assistant (athkit demo)",
    )

    # -- 3 authorization (Phase B begins) ------------------------------------------------
    walk.step(3, "Authorization", "let me ask the user")
    auth = _guard(walk, lambda: client.authorize(PROVIDER, approved))
    query = url_query(auth.authorization_url)
    walk.say(
        f"send the user to: [link={auth.authorization_url}]{escape(auth.authorization_url)}[/]"
    )
    walk.say(
        f"PKCE: code_challenge={query.get('code_challenge', '?')} "
        f"code_challenge_method={query.get('code_challenge_method', '?')} "
        "(the code_verifier never leaves the shop)"
    )
    walk.expect(
        bool(query.get("code_challenge")) and query.get("code_challenge_method") == "S256",
        "authorization URL carries a S256 PKCE challenge",
        query,
    )
    walk.expect("code_verifier" not in query, "no code_verifier in the URL")

    # -- 4 user consent + 5 token exchange -----------------------------------------------
    walk.step(4, "User consent", "the user decides in the shop's own page")
    if options.browser:
        token = _consent_in_real_browser(walk, client, trace, options, password, auth)
        walk.step(5, "Token exchange", "here is your scoped access")
        trace.muted = False
        if trace.last is not None:
            trace.show(trace.last)
    else:
        _consent_scripted(walk, password, auth.authorization_url, approved, options.quiet)
        walk.step(5, "Token exchange", "here is your scoped access")
        token = _guard(walk, lambda: client.exchange_token(auth.ath_session_id))
    want = [s for s in EXPECT_APPROVED if s != UNTICKED] if not options.browser else None
    _show_intersection(walk, token, approved, scopes=REGISTER_SCOPES, want_effective=want)

    # -- 6 API calls ---------------------------------------------------------------------
    walk.step(6, "Using the API", "now I can shop (within the effective scopes only)")
    effective = set(token.effective_scopes)
    for call in API_CALLS:
        _api_call(walk, client, call, effective, approved, decider="shop")

    # -- 7 revocation --------------------------------------------------------------------
    walk.step(7, "Revocation", "I'm done")
    _revoke_and_retry(walk, client, PROVIDER, lambda: client.request("GET", "/products"))


def _register(
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
    reg = _guard(
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
        _scope_table(
            f"{decider.capitalize()}'s decision for client {escape(reg.client_id)}",
            ["scope", "requested", f"approved by the {decider}"],
            [[s, _mark(True), _mark(s in approved)] for s in scopes],
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
        raise _Abort
    return approved


def _revoke_and_retry(
    walk: Walkthrough, client: ATHClient, provider: str, call: Callable[[], httpx.Response]
) -> None:
    """Revoke the current token (§8), then show the same token refused: 401 TOKEN_REVOKED."""
    old_token = client.access_token
    _guard(walk, client.revoke)
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


def _consent_scripted(
    walk: Walkthrough, password: str, url: str, approved: list[str], quiet: bool
) -> None:
    """alice signs in over HTTP, reads the consent page, unticks cart:read, authorizes."""
    browser = HTTPBrowser(DEMO_USER, password)
    HTTPTrace(walk.console, verbose=not quiet, label="browser").install(browser.http)
    try:
        walk.say(f"{DEMO_USER}'s browser opens the authorization URL and signs in:")
        done = _consent_form(walk, browser, url, approved, UNTICKED)
        walk.expect(done.status_code == 200, "consent completes (HTTP 200)", done.status_code)
    finally:
        browser.close()


def _consent_form(
    walk: Walkthrough, browser: HTTPBrowser, url: str, approved: list[str], untick: str
) -> httpx.Response:
    """Open the consent page (signing in if asked), show it, untick ``untick``, authorize."""
    page = _guard(walk, lambda: browser.open_consent(url))
    walk.show(
        _scope_table(
            "Consent page",
            ["scope", "offered", "ticked", "blocked"],
            [
                [
                    s,
                    _mark(s in page.offered),
                    _mark(s in page.preselected),
                    "[red]blocked[/]" if s in page.blocked else "",
                ]
                for s in dict.fromkeys(page.offered + page.blocked)
            ],
        )
    )
    walk.expect(page.offered == approved, f"consent page offers {approved}", page.offered)
    chosen = [s for s in page.preselected if s != untick]
    walk.say(f"{browser.username} [bold]unticks {untick}[/] and authorizes {chosen}:")
    response: httpx.Response = _guard(walk, lambda: browser.decide(approve=True, scopes=chosen))
    return response


def _consent_in_real_browser(
    walk: Walkthrough,
    client: ATHClient,
    trace: HTTPTrace,
    options: DemoOptions,
    password: str,
    auth: Any,
) -> TokenResponse:
    """A person consents; poll the token endpoint until the session is decided."""
    console = walk.console
    console.print()
    console.print("[bold]Your turn.[/] Open this URL in your browser:")
    console.print(auth.authorization_url, soft_wrap=True, highlight=False)
    console.print(
        f"Sign in as [bold]{DEMO_USER}[/] / [bold]{escape(password)}[/], untick "
        f"[bold]{UNTICKED}[/] (or not) and press Authorize (or Deny). "
        f"Waiting up to {options.wait_seconds:.0f} s."
    )
    trace.muted = True  # the "not yet" answers are not interesting
    deadline = time.monotonic() + options.wait_seconds
    with console.status("waiting for your decision (polling POST /ath/token)…"):
        while True:
            try:
                token: TokenResponse = client.exchange_token(auth.ath_session_id)
                return token
            except SessionNotReadyError:
                if time.monotonic() >= deadline:
                    walk.failures.append(
                        f"{walk.current}: no decision within {options.wait_seconds:.0f} s"
                    )
                    console.print("  [bold red]✗ timed out waiting for the user[/]")
                    raise _Abort from None
                time.sleep(options.poll_interval)
            except UserDeniedError as exc:
                trace.muted = False
                walk.failures.append(f"{walk.current}: the user denied the authorization")
                console.print("  [bold red]✗ USER_DENIED: you pressed Deny; no token[/]")
                raise _Abort from exc
            except ATHError as exc:
                trace.muted = False
                walk.failures.append(f"{walk.current}: unexpected {exc.code_str} ({exc.message})")
                console.print(f"  [bold red]✗ {escape(exc.code_str)}: {escape(exc.message)}[/]")
                raise _Abort from exc


def _show_intersection(
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
                _mark(s in inter.agent_approved),
                _mark(s in inter.user_consented),
                _mark(s in requested),
                "[bold green]✓[/]" if s in inter.effective else "[red]✗[/]",
            ]
        )
    walk.show(
        _scope_table(
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


def _api_call(
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


# == athkit demo --gateway ======================================================================
#
# Gateway mode (§7): the ATH gateway in front of an unchanged OAuth-protected API. Upstream is a
# real OpenID provider (node oidc-provider, athkit.demo.upstream) and "Example Mail", a resource
# API that only accepts the provider's JWT access tokens (athkit.demo.mail_api). The user sees
# two pages: the gateway's consent page (ATH scopes) and then the provider's own sign-in and
# consent (upstream scopes).

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
    return ApiCall(method, path, scope, json, via_proxy=True, provider=GW_PROVIDER, api_prefix="")


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


def run_gateway_demo(options: DemoOptions, console: Console) -> int:
    """Start upstream provider, Example Mail, the gateway and the agent host; walk 7 steps."""
    walk = Walkthrough(console, quiet=options.quiet)
    try:
        ensure_installed(log=lambda line: console.print(f"[dim]{escape(line)}[/]"))
    except ProviderSetupError as exc:
        console.print(f"[bold red]cannot start the upstream OpenID provider:[/] {escape(str(exc))}")
        return 1
    with _data_dir(options.data_dir) as data_dir, ExitStack() as running:
        port = free_port()
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
        except (ProviderSetupError, RuntimeError, ValueError, ATHError) as exc:
            console.print(f"[bold red]could not start the demo servers:[/] {escape(str(exc))}")
            return 1
        key = AgentKey.generate("P-256", kid="default")
        agent_id = publish(identity_app, identity.url, key)
        world = _GatewayWorld(gw_url, service, kid, op)
        walk.show(
            Panel.fit(
                f"ATH gateway       {gw_url}  (gateway mode, dev mode, sealing key {kid}: "
                "new for this run)\n"
                f"Upstream provider {op.issuer}  (node oidc-provider, client {op.client_id}, "
                "random secret)\n"
                f"Example Mail API  {op.resource}  (accepts only the provider's JWTs)\n"
                f"Gateway data      {escape(str(data_dir))}"
                f"{'' if options.data_dir else ' (temporary, removed afterwards)'}\n"
                f"Agent identity    {agent_id}\n"
                f"User              {GW_USER} (signs in at the provider)",
                title="athkit demo --gateway: an ATH gateway in front of an OAuth API",
            )
        )
        trace = HTTPTrace(console, verbose=not options.quiet, label="agent")
        http = httpx.Client(timeout=15.0, trust_env=False, event_hooks=trace.hooks())
        try:
            with ATHClient(gw_url, agent_id, key, http_client=http) as client:
                _walk_gateway(walk, client, world, options)
        except _Abort:
            pass
        except KeyboardInterrupt:
            console.print("\n[yellow]interrupted[/]")
            return 130
        finally:
            http.close()
    return _verdict(walk)


def _walk_gateway(
    walk: Walkthrough, client: ATHClient, world: _GatewayWorld, options: DemoOptions
) -> None:
    gw_url, op = world.url, world.op
    # -- 1 discovery: the gateway's catalog -----------------------------------------------
    walk.step(1, "Discovery", "what can this gateway connect me to?")
    doc = _guard(walk, client.discover_gateway)
    listed = {p.provider_id: p for p in doc.supported_providers}
    for p in doc.supported_providers:
        walk.say(
            escape(f"{p.display_name} ({p.provider_id}): {', '.join(p.available_scopes)}; ")
            + f"auth_mode {p.auth_mode}, agent approval required: {p.agent_approval_required}"
        )
    mail = listed.get(GW_PROVIDER)
    walk.expect(mail is not None, f"provider {GW_PROVIDER!r} in the catalog", sorted(listed))
    if mail is None:
        raise _Abort
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
    approved = _register(
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
    auth = _guard(walk, lambda: client.authorize(GW_PROVIDER, approved))
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
    token = _guard(walk, lambda: client.exchange_token(auth.ath_session_id))
    want = [s for s in GW_EXPECT_APPROVED if s != GW_UNTICKED]
    _show_intersection(walk, token, approved, scopes=GW_REGISTER_SCOPES, want_effective=want)
    info = _guard(
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
        resp = _api_call(walk, client, call, effective, approved, decider="gateway")
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
    _revoke_and_retry(
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
        resp = _guard(
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
    to_provider = _consent_form(walk, browser, url, approved, GW_UNTICKED)
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
        raise _Abort
    walk.say(f"{GW_USER} signs in at the provider and approves its consent page:")
    back = _guard(walk, lambda: complete_upstream_login(browser.http, location, GW_USER))
    callback = back.headers.get("location", "")
    walk.expect(
        callback.startswith(f"{world.url}/ath/callback"),
        "the provider redirects back to the gateway's /ath/callback",
        callback[:60],
    )
    if not callback.startswith(f"{world.url}/ath/callback"):
        raise _Abort
    walk.say("the gateway exchanges the provider's code itself (with its PKCE verifier):")
    done = _guard(walk, lambda: browser.http.get(callback, headers={"Accept": "text/html"}))
    walk.expect(done.status_code == 200, "consent completes (HTTP 200)", done.status_code)


def _sealed_refresh_token(world: _GatewayWorld, key: tuple[str, str, str]) -> str | None:
    """The user's upstream refresh token, opened from the gateway store (operator's view)."""
    row = world.service.store.get_upstream_token(*key)
    if row is None or not row.refresh_token:
        return None
    return world.service.sealer.open(row.refresh_token, upstream_owner(*key))

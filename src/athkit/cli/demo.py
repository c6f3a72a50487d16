"""``athkit demo``: the seed walkthrough (ATH Shop, seed 001) run for real, step by step.

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
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from athkit.cli.trace import HTTPTrace, compact_json, shorten_secret, url_query
from athkit.client import ATHClient
from athkit.client.errors import ATHError, SessionNotReadyError, UserDeniedError
from athkit.crypto.keys import AgentKey
from athkit.demo.agent import DEVELOPER, create_agent_identity_app, publish
from athkit.demo.browser import HTTPBrowser
from athkit.demo.shop import DEMO_PASSWORD_ENV, DEMO_USER, SHOP_SCOPES, create_shop_app
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
    method: str
    path: str
    scope: str
    json: Any = None
    via_proxy: bool = False

    @property
    def shown(self) -> str:
        prefix = f"/ath/proxy/{PROVIDER}" if self.via_proxy else ""
        return f"{self.method} {prefix}/api{self.path}"


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


def _verdict(walk: Walkthrough) -> int:
    console = walk.console
    console.print()
    if walk.failures:
        console.print("[bold red]The demo did not behave as expected:[/]")
        for failure in walk.failures:
            console.print(f"  [red]•[/] {escape(failure)}", soft_wrap=True)
        return 1
    console.print("[bold green]All 7 steps behaved as expected.[/]")
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
    reg = _guard(
        walk,
        lambda: client.register(
            developer=DEVELOPER,
            providers=[{"provider_id": PROVIDER, "scopes": REGISTER_SCOPES}],
            purpose="AI shopping assistant (athkit demo)",
        ),
    )
    approval = next((p for p in reg.approved_providers if p.provider_id == PROVIDER), None)
    approved = list(approval.approved_scopes) if approval else []
    denied = list(approval.denied_scopes) if approval else []
    walk.show(
        _scope_table(
            f"Shop's decision for client {escape(reg.client_id)}",
            ["scope", "requested", "approved by the shop"],
            [[s, _mark(True), _mark(s in approved)] for s in REGISTER_SCOPES],
        )
    )
    if approval and approval.denial_reason:
        walk.say(f"[dim]denial reason:[/] {escape(approval.denial_reason)}")
    walk.say(f"client_secret {shorten_secret(reg.client_secret)} (kept by the agent)")
    walk.expect(reg.agent_status.value == "approved", "agent_status approved", reg.agent_status)
    walk.expect(approved == EXPECT_APPROVED, f"approved {EXPECT_APPROVED}", approved)
    walk.expect(
        denied == EXPECT_DENIED, f"denied {EXPECT_DENIED} (untrusted agent, shop policy)", denied
    )
    if not approved:
        raise _Abort

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
    _show_intersection(walk, token, approved, scripted=not options.browser)

    # -- 6 API calls ---------------------------------------------------------------------
    walk.step(6, "Using the API", "now I can shop (within the effective scopes only)")
    effective = set(token.effective_scopes)
    for call in API_CALLS:
        _api_call(walk, client, call, effective, approved)

    # -- 7 revocation --------------------------------------------------------------------
    walk.step(7, "Revocation", "I'm done")
    old_token = token.access_token
    _guard(walk, client.revoke)
    walk.expect(True, "revoke answered 200")
    client.set_token(old_token, PROVIDER)
    walk.say("the same call again with the revoked token:")
    try:
        resp = client.request("GET", "/products")
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
        chosen = [s for s in page.preselected if s != UNTICKED]
        walk.say(f"{DEMO_USER} [bold]unticks {UNTICKED}[/] and authorizes {chosen}:")
        done = _guard(walk, lambda: browser.decide(approve=True, scopes=chosen))
        walk.expect(done.status_code == 200, "consent completes (HTTP 200)", done.status_code)
    finally:
        browser.close()


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
    walk: Walkthrough, token: TokenResponse, requested: list[str], *, scripted: bool
) -> None:
    inter = token.scope_intersection
    rows = []
    for s in REGISTER_SCOPES:
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
    if scripted:
        want = [s for s in EXPECT_APPROVED if s != UNTICKED]
        walk.expect(
            token.effective_scopes == want, f"effective scopes {want}", token.effective_scopes
        )


def _why_refused(scope: str, approved: list[str]) -> str:
    if scope not in approved:
        return "the shop never approved it for this agent"
    return "the user did not consent to it"


def _api_call(
    walk: Walkthrough, client: ATHClient, call: ApiCall, effective: set[str], approved: list[str]
) -> None:
    allowed = call.scope in effective
    if allowed:
        want = f"{201 if call.method == 'POST' else 200}"
        what = f"{call.shown} → {want} (needs {call.scope}: granted)"
    else:
        want = "403 SCOPE_INSUFFICIENT"
        what = f"{call.shown} → {want} (needs {call.scope}: {_why_refused(call.scope, approved)})"
    try:
        if call.via_proxy:
            resp = client.proxy_request(call.method, PROVIDER, "api" + call.path, json=call.json)
        else:
            resp = client.request(call.method, call.path, json=call.json)
        got = str(resp.status_code)
    except ATHError as exc:
        got = f"{exc.status} {exc.code_str}"
    walk.expect(got == want, what, got)

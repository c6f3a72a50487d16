"""``athkit demo``: the seed walkthrough (ATH Shop, seed 001) run for real, seven steps.

Two real servers start on loopback ports: ATH Shop (native mode, SQLite in a throwaway data
directory) and a host publishing the demo agent's identity document. The agent then drives every
step with the client SDK over HTTP, and every exchange is printed. The user's part (sign in,
consent) is played over HTTP by :class:`~athkit.demo.browser.HTTPBrowser`, or by a person in a
real browser with ``--browser``.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from typing import Any

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
from athkit.client.errors import ATHError, SessionNotReadyError, UserDeniedError
from athkit.crypto.keys import AgentKey
from athkit.demo.agent import create_agent_identity_app, publish
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
#: Step 6: the calls the agent makes, and the scope each route needs.
API_CALLS = [
    ApiCall("GET", "/products", "products:read", PROVIDER),
    ApiCall("POST", "/cart/items", "cart:write", PROVIDER, {"product_id": "p-100", "quantity": 1}),
    ApiCall("GET", "/cart", "cart:read", PROVIDER),
    ApiCall("POST", "/orders", "orders:write", PROVIDER),
    ApiCall("GET", "/products", "products:read", PROVIDER, via_proxy=True),
]


def run_native_demo(options: DemoOptions, console: Console) -> int:
    """Start both servers, walk the seven steps, return the exit code (0: all as expected)."""
    password = options.password or os.environ.get(DEMO_PASSWORD_ENV) or DEFAULT_PASSWORD
    walk = Walkthrough(console, quiet=options.quiet)
    with demo_data_dir(options.data_dir) as data_dir:
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
            return run_agent_steps(
                walk,
                shop_url,
                agent_id,
                key,
                lambda client, trace: _walk(walk, client, trace, options, password, shop_url),
                timeout=10.0,
                quiet=options.quiet,
            )


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
    doc = guard(walk, client.discover)
    walk.say(escape(f"{doc.name} ({doc.app_id}), ATH {doc.ath_version}, API at {doc.api_base}"))
    walk.expect(doc.api_base == f"{shop_url}/api", "api_base under the shop's URL", doc.api_base)
    walk.expect(
        set(SHOP_SCOPES) <= set(doc.auth.scopes_supported),
        "all five shop scopes supported",
        doc.auth.scopes_supported,
    )

    # -- 2 registration (Phase A: the service decides) -----------------------------------
    walk.step(2, "Registration", "may I use your service? (the shop decides)")
    approved = register_agent(
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
    auth = guard(walk, lambda: client.authorize(PROVIDER, approved))
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
        token = guard(walk, lambda: client.exchange_token(auth.ath_session_id))
    want = [s for s in EXPECT_APPROVED if s != UNTICKED] if not options.browser else None
    show_intersection(walk, token, approved, scopes=REGISTER_SCOPES, want_effective=want)

    # -- 6 API calls ---------------------------------------------------------------------
    walk.step(6, "Using the API", "now I can shop (within the effective scopes only)")
    effective = set(token.effective_scopes)
    for call in API_CALLS:
        api_call(walk, client, call, effective, approved, decider="shop")

    # -- 7 revocation --------------------------------------------------------------------
    walk.step(7, "Revocation", "I'm done")
    revoke_and_retry(walk, client, PROVIDER, lambda: client.request("GET", "/products"))


def _consent_scripted(
    walk: Walkthrough, password: str, url: str, approved: list[str], quiet: bool
) -> None:
    """alice signs in over HTTP, reads the consent page, unticks cart:read, authorizes."""
    browser = HTTPBrowser(DEMO_USER, password)
    HTTPTrace(walk.console, verbose=not quiet, label="browser").install(browser.http)
    try:
        walk.say(f"{DEMO_USER}'s browser opens the authorization URL and signs in:")
        done = consent_form(walk, browser, url, approved, UNTICKED)
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
                    raise Abort from None
                time.sleep(options.poll_interval)
            except UserDeniedError as exc:
                trace.muted = False
                walk.failures.append(f"{walk.current}: the user denied the authorization")
                console.print("  [bold red]✗ USER_DENIED: you pressed Deny; no token[/]")
                raise Abort from exc
            except ATHError as exc:
                trace.muted = False
                walk.failures.append(f"{walk.current}: unexpected {exc.code_str} ({exc.message})")
                console.print(f"  [bold red]✗ {escape(exc.code_str)}: {escape(exc.message)}[/]")
                raise Abort from exc

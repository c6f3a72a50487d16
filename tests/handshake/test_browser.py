"""The browser approval path in headless Chromium (Debian ``chromium``, Playwright).

The signed-in user links a WebCrypto P-256 key (non-extractable, kept in IndexedDB), signs the
step-0 credential for the agent in the page, then approves a subset on the confirmation page:
every user signature is made in the browser. Skipped when Chromium or Playwright is missing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from athkit.crypto.did import jwk_from_did_key
from tests.handshake.conftest import SCOPES, HSServer
from tests.handshake.support import Flow, Party, Session

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright (``.ci/run`` installs both)."""
    assert CHROMIUM, "install Debian's chromium: apt-get install -y chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield b
        finally:
            b.close()


def sign_in(page: Any, url: str) -> None:
    page.goto(f"{url}/ath/user/keys")
    assert "/login" in page.url
    page.fill("#username", "alice")
    page.fill("#password", "wonderland-test")
    page.click("#signin")
    page.wait_for_url(f"{url}/ath/user/keys")


def test_browser_links_key_signs_credential_and_approves_subset(
    browser: Any, server: HSServer, agent: Party
) -> None:
    ctx = browser.new_context()
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sign_in(page, server.url)
    page.wait_for_selector("#ath-hs[data-ready='1']")
    page.click("#link-key")
    page.wait_for_selector("#ath-hs[data-linked-did]")
    user_did = page.get_attribute("#ath-hs", "data-linked-did")
    assert user_did and user_did.startswith("did:key:zDn")  # P-256 did:key from JS
    assert "Linked: " + user_did in page.inner_text("#status")
    jwk_from_did_key(user_did)  # the JS encoding decodes in Python
    assert [r.user_did for r in server.hs.store.user_keys_of("alice")] == [user_did]
    # the private key really is non-extractable and lives in IndexedDB
    extractable = page.evaluate(
        """() => new Promise((resolve, reject) => {
            const req = indexedDB.open("athkit-user-keys", 1);
            req.onsuccess = () => {
              const tx = req.result.transaction("keys", "readonly");
              const get = tx.objectStore("keys").getAll();
              get.onsuccess = () => resolve(get.result.map((r) => r.privateKey.extractable));
            };
            req.onerror = () => reject(req.error);
        })"""
    )
    assert extractable == [False]

    # step 0 in the browser: the user pre-authorizes the agent for both scopes, 2 hours
    page.fill("#agent-did", agent.did)
    page.fill("#cred-scopes", " ".join(SCOPES))
    page.fill("#cred-ttl", "120")
    page.click("#issue-credential")
    page.wait_for_selector("#credential:not(:empty)")  # (the page's CSP forbids eval)
    signed = json.loads(page.inner_text("#credential"))
    assert signed["credential"]["user_did"] == user_did
    assert signed["credential"]["scopes"] == SCOPES

    # steps 1-5 by the agent, with the browser-signed credential
    f = Flow(server.url, agent, server.clock)
    assert f.step1().status_code == 201
    assert f.step3().status_code == 200
    r = f.step5(SCOPES, signed, ttl=7200)
    assert r.status_code == 202, r.text

    # steps 6-7 out of band: the confirmation page, approve only goods:read
    page.goto(f"{server.url}/ath/confirmations/page")
    section = page.locator(f"#c-{f.request_id}")
    assert section.locator(".agent-name").inner_text() == "AI Shopping Assistant"
    assert section.locator(".developer").inner_text() == "Acme AI"
    assert "goods:read" in section.inner_text() and "order:create" in section.inner_text()
    assert "UTC" in section.locator(".expires").inner_text()
    section.locator("input.scope[value='order:create']").uncheck()
    section.locator("button.approve").click()
    page.wait_for_selector(f"#c-{f.request_id}[data-outcome]")
    assert section.get_attribute("data-outcome") == "approved"
    assert section.locator(".result").inner_text() == "Approved."

    # step 8-9 and a call
    r = f.result(wait=5)
    assert r.status_code == 200
    assert r.json()["scopes_granted"] == ["goods:read"]
    assert r.json()["scopes_denied"] == [{"scope": "order:create", "reason": "user"}]
    r, channel = f.step9()
    assert r.status_code == 200 and channel is not None
    done = r.json()
    s = Session(server.url, agent, done["access_token"], done["session_id"], channel, f.http)
    r, data = s.call("GET", "/api/goods")
    assert r.status_code == 200 and data["goods"]

    # a second request, denied in the browser
    f2 = Flow(server.url, agent, server.clock)
    assert f2.step1().status_code == 201
    assert f2.step3().status_code == 200
    assert f2.step5(["order:create"], signed).status_code == 202
    page.goto(f"{server.url}/ath/confirmations/page")
    section = page.locator(f"#c-{f2.request_id}")
    section.locator("button.deny").click()
    page.wait_for_selector(f"#c-{f2.request_id}[data-outcome]")
    assert section.get_attribute("data-outcome") == "denied"
    r = f2.result()
    assert r.status_code == 403 and r.json()["code"] == "USER_DENIED"
    page.goto(f"{server.url}/ath/confirmations/page")
    assert page.locator("#none").count() == 1
    assert errors == []
    ctx.close()


def test_browser_without_the_key_cannot_answer(
    browser: Any, server: HSServer, agent: Party, user: Party
) -> None:
    """A confirmation for a DID whose key this browser does not hold is shown, not signable."""
    from tests.handshake.test_user_side import link, login

    assert link(login(server.url), server.hs.identity.did, user).status_code == 201
    f = Flow(server.url, agent, server.clock)
    assert f.to_pending(user, SCOPES).status_code == 202
    ctx = browser.new_context()
    page = ctx.new_page()
    sign_in(page, server.url)
    page.goto(f"{server.url}/ath/confirmations/page")
    section = page.locator(f"#c-{f.request_id}")
    section.locator("button.approve").click()
    page.wait_for_selector(f"#c-{f.request_id} .result:not(:empty)")
    assert "does not hold the key" in section.locator(".result").inner_text()
    assert f.result().status_code == 202
    ctx.close()

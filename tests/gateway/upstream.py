"""The upstream side of the gateway tests: a real OpenID provider (node oidc-provider, see
tests/oidc/provider.js) and a plain-HTTP driver for its login and consent pages."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from athkit.web.serving import free_port

OIDC_DIR = Path(__file__).resolve().parents[1] / "oidc"
PROVIDER_JS = OIDC_DIR / "provider.js"
NPM_HINT = "run: npm ci --prefix tests/oidc"
DEFAULT_API_SCOPES = "api:read api:write"


@dataclass
class OIDCProvider:
    """A running oidc-provider with one confidential client and one JWT resource server."""

    issuer: str
    client_id: str
    client_secret: str
    resource: str
    port: int
    process: subprocess.Popen[bytes]
    redirect_uris: list[str] = field(default_factory=list)
    api_scopes: str = DEFAULT_API_SCOPES
    access_token_ttl: int = 60
    metadata: dict[str, Any] = field(default_factory=dict)
    stdout_lines: list[str] = field(default_factory=list, repr=False)
    stderr_path: Path | None = field(default=None, repr=False)
    _reader: threading.Thread | None = field(default=None, repr=False, init=False)

    @property
    def authorization_endpoint(self) -> str:
        return str(self.metadata["authorization_endpoint"])

    @property
    def token_endpoint(self) -> str:
        return str(self.metadata["token_endpoint"])

    @property
    def jwks_uri(self) -> str:
        return str(self.metadata["jwks_uri"])

    @property
    def userinfo_endpoint(self) -> str:
        return str(self.metadata["userinfo_endpoint"])

    @property
    def revocation_endpoint(self) -> str:
        return str(self.metadata["revocation_endpoint"])

    @property
    def introspection_endpoint(self) -> str:
        return str(self.metadata["introspection_endpoint"])

    def stderr(self) -> str:
        """What the node process wrote to stderr so far (warnings, crashes)."""
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.stderr_path is not None:
            self.stderr_path.unlink(missing_ok=True)


class ProviderSetupError(RuntimeError):
    """The provider could not be started (missing node/npm ci, crash, timeout)."""


def check_node_setup() -> str:
    """The node binary to use; raises ProviderSetupError with the fix when unusable."""
    node = shutil.which("node")
    if node is None:
        raise ProviderSetupError("node is not on PATH (Node.js >= 20 is needed for tests/oidc)")
    if not (OIDC_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        raise ProviderSetupError(f"tests/oidc/node_modules is missing: {NPM_HINT}")
    return node


def start_oidc_provider(
    redirect_uris: list[str],
    access_token_ttl: int = 60,
    *,
    resource: str | None = None,
    api_scopes: str = DEFAULT_API_SCOPES,
    client_id: str | None = None,
    client_secret: str | None = None,
    rotate_refresh_tokens: bool = False,
    timeout: float = 20.0,
) -> OIDCProvider:
    """Start tests/oidc/provider.js and return once it printed ``READY <issuer>``.

    ``resource`` defaults to ``http://127.0.0.1:<a free port>`` so that a resource API can
    then be started on exactly that URL. The caller must ``stop()`` the result.
    """
    node = check_node_setup()
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    resource = resource or f"http://127.0.0.1:{free_port()}"
    client_id = client_id or f"gateway-{secrets.token_hex(4)}"
    client_secret = client_secret or secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "PORT": str(port),
        "CLIENT_ID": client_id,
        "CLIENT_SECRET": client_secret,
        "REDIRECT_URIS": ",".join(redirect_uris),
        "RESOURCE": resource,
        "API_SCOPES": api_scopes,
        "ACCESS_TOKEN_TTL": str(access_token_ttl),
        "ROTATE_REFRESH_TOKENS": "1" if rotate_refresh_tokens else "0",
    }
    env.pop("NODE_OPTIONS", None)
    fd, stderr_name = tempfile.mkstemp(prefix="oidc-provider-", suffix=".log")
    stderr_path = Path(stderr_name)
    with os.fdopen(fd, "wb") as stderr_file:
        process = subprocess.Popen(
            [node, str(PROVIDER_JS)],
            cwd=OIDC_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
        )
    provider = OIDCProvider(
        issuer=issuer,
        client_id=client_id,
        client_secret=client_secret,
        resource=resource,
        port=port,
        process=process,
        redirect_uris=list(redirect_uris),
        api_scopes=api_scopes,
        access_token_ttl=access_token_ttl,
        stderr_path=stderr_path,
    )
    ready = threading.Event()
    seen_ready: list[bool] = []

    def drain() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            provider.stdout_lines.append(line)
            if line == f"READY {issuer}":
                seen_ready.append(True)
                ready.set()
        ready.set()  # EOF: the process has exited (or is exiting)

    provider._reader = threading.Thread(target=drain, name=f"oidc-provider:{port}", daemon=True)
    provider._reader.start()
    try:
        if not ready.wait(timeout) or not seen_ready:
            raise ProviderSetupError(
                f"oidc provider did not become ready (exit={process.poll()}); "
                f"stdout={provider.stdout_lines!r}\nstderr:\n{provider.stderr()}"
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=5)
                response.raise_for_status()
                provider.metadata = response.json()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    except BaseException:
        provider.stop()
        raise
    return provider


# --- driving the login and consent pages with plain HTTP -------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str]


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.links: list[str] = []
        self._form: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = Form(a.get("action", ""), a.get("method", "get").lower(), {})
            self.forms.append(self._form)
        elif tag in ("input", "button", "textarea", "select") and self._form is not None:
            if "name" in a and a.get("type", "text").lower() not in ("submit", "button"):
                self._form.fields[a["name"]] = a.get("value", "")
        elif tag == "a" and "href" in a:
            self.links.append(a["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def parse_page(html: str) -> tuple[list[Form], list[str]]:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser.forms, parser.links


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def complete_upstream_login(
    http: httpx.Client, url: str, username: str = "alice", approve: bool = True
) -> httpx.Response:
    """Drive the provider's login + consent pages from ``url`` (at its authorization endpoint).

    Follows redirects within the provider's origin, posts the login form (``username``, any
    password) and the consent form, and returns the first response whose redirect leaves the
    provider's origin (the redirect to the client's redirect_uri), without following it.
    With ``approve=False`` the user logs in and then denies at the consent page (the
    provider's ``/interaction/<uid>/abort``), giving ``error=access_denied``. If the provider
    does not ask for consent (already granted, no prompt=consent), nothing can be denied and
    the success redirect is returned. Cookies stay in ``http``.
    """
    provider = _origin(url)
    response = http.get(url, follow_redirects=False)
    for _ in range(20):
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if _origin(target) != provider:
                return response
            response = http.get(target, follow_redirects=False)
            continue
        if response.status_code != 200 or "html" not in response.headers.get("content-type", ""):
            raise AssertionError(
                f"provider answered {response.status_code} at {response.url}: {response.text[:2000]}"
            )
        forms, links = parse_page(response.text)
        page = next((f for f in forms if f.fields.get("prompt") in ("login", "consent")), None)
        if page is None:
            raise AssertionError(f"no login/consent form at {response.url}: {response.text[:2000]}")
        page_url = str(response.url)
        if page.fields["prompt"] == "consent" and not approve:
            abort = next((link for link in links if link.rstrip("/").endswith("/abort")), None)
            if abort is None:
                raise AssertionError(f"no abort link on the consent page: {response.text[:2000]}")
            response = http.get(urljoin(page_url, abort), follow_redirects=False)
            continue
        data = dict(page.fields)
        if page.fields["prompt"] == "login":
            data["login"] = username
            data["password"] = "any-password"
        action = urljoin(page_url, page.action or page_url)
        if page.method == "post":
            response = http.post(action, data=data, follow_redirects=False)
        else:
            response = http.get(action, params=data, follow_redirects=False)
    raise AssertionError(f"too many steps at the provider, last at {response.url}")

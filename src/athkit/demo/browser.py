"""A user's browser, played over real HTTP: sign in, read the consent page, decide (§5).

``athkit demo`` and the tests use it to walk the consent page exactly as a person would: follow
the authorization URL, sign in at the shop's login page, tick or untick scopes and press a
button. Cookies (login session, browser binding) persist in the httpx client like in a browser.

In gateway mode the gateway's consent page leads on to the upstream provider's own sign-in and
consent pages: :func:`complete_upstream_login` walks those (node oidc-provider's interaction
pages, see :mod:`athkit.demo.upstream`) with the same client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx


@dataclass
class _Form:
    action: str = ""
    method: str = "get"
    fields: list[tuple[str, str]] = field(default_factory=list)
    checkboxes: list[tuple[str, str, bool, bool]] = field(
        default_factory=list
    )  # name, value, on, off
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self.text: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        if tag == "form":
            self.forms.append(_Form(a.get("action", ""), a.get("method", "get").lower()))
        elif not self.forms:
            return
        elif tag == "input":
            kind = a.get("type", "text").lower()
            if kind == "checkbox":
                self.forms[-1].checkboxes.append(
                    (a.get("name", ""), a.get("value", "on"), "checked" in a, "disabled" in a)
                )
            elif kind != "submit":
                self.forms[-1].fields.append((a.get("name", ""), a.get("value", "")))
        elif tag == "button" and "name" in a:
            self.forms[-1].buttons.append((a["name"], a.get("value", "")))

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append(data.strip())


@dataclass(frozen=True)
class ConsentPage:
    url: str
    text: str
    offered: list[str]
    preselected: list[str]
    blocked: list[str]


class HTTPBrowser:
    """Cookie-keeping HTTP client that can sign in and answer a consent page."""

    def __init__(self, username: str, password: str, *, timeout: float = 10.0) -> None:
        self.username = username
        self.password = password
        self.http = httpx.Client(follow_redirects=False, timeout=timeout)
        self._form: _Form | None = None
        self._page_url = ""

    def close(self) -> None:
        self.http.close()

    def _get(self, url: str) -> httpx.Response:
        for _ in range(10):
            resp = self.http.get(url, headers={"Accept": "text/html"})
            if resp.is_redirect:
                url = urljoin(url, resp.headers["location"])
                continue
            return resp
        raise RuntimeError("too many redirects")

    def open_consent(self, authorization_url: str) -> ConsentPage:
        resp = self._get(authorization_url)
        parser = _FormParser()
        parser.feed(resp.text)
        if parser.forms and any(n == "password" for n, _ in parser.forms[0].fields):
            form = parser.forms[0]
            data = dict(form.fields)
            data.update(username=self.username, password=self.password)
            login = self.http.post(urljoin(str(resp.url), form.action), data=data)
            if not login.is_redirect:
                raise RuntimeError(f"sign-in failed: HTTP {login.status_code}")
            resp = self._get(urljoin(str(login.url), login.headers["location"]))
            parser = _FormParser()
            parser.feed(resp.text)
        if resp.status_code != 200 or not parser.forms:
            raise RuntimeError(f"no consent page: HTTP {resp.status_code}: {resp.text[:200]}")
        self._form = parser.forms[0]
        self._page_url = str(resp.url)
        boxes = self._form.checkboxes
        return ConsentPage(
            url=self._page_url,
            text=" ".join(parser.text),
            offered=[v for _, v, _, off in boxes if not off],
            preselected=[v for _, v, on, off in boxes if on and not off],
            blocked=[v for _, v, _, off in boxes if off],
        )

    def decide(self, *, approve: bool, scopes: list[str] | None = None) -> httpx.Response:
        """Press Authorize (with ``scopes`` ticked, default: as preselected) or Deny.

        Follows redirects through ``/ath/callback`` and returns the last response; when the
        agent registered its own ``user_redirect_uri``, stops at that redirect instead.
        """
        if self._form is None:
            raise RuntimeError("open_consent first")
        form = self._form
        data: list[tuple[str, str]] = list(form.fields)
        chosen = scopes if scopes is not None else [v for _, v, on, off in form.checkboxes if on]
        data += [(n, v) for n, v, _, off in form.checkboxes if not off and v in chosen]
        data.append(("decision", "approve" if approve else "deny"))
        body: dict[str, list[str]] = {}
        for name, value in data:
            body.setdefault(name, []).append(value)
        resp = self.http.post(urljoin(self._page_url, form.action), data=body)
        origin = httpx.URL(self._page_url)
        while resp.is_redirect:
            nxt = httpx.URL(urljoin(str(resp.url), resp.headers["location"]))
            if (nxt.host, nxt.port) != (origin.host, origin.port):
                return resp  # the agent's redirect: the agent, not the browser, reads it
            resp = self.http.get(nxt, headers={"Accept": "text/html"})
        return resp


class UpstreamLoginError(RuntimeError):
    """The provider's pages did not lead back to the client (error page, unknown form)."""


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def complete_upstream_login(
    http: httpx.Client, url: str, username: str = "alice", approve: bool = True
) -> httpx.Response:
    """Drive the upstream provider's sign-in and consent pages, starting at ``url``.

    ``url`` is the provider's authorization endpoint (with the client's query). Redirects
    within the provider's origin are followed; the sign-in form gets ``username`` and any
    password, the consent form is submitted. Returns the first response whose redirect leaves
    the provider's origin (to the client's redirect_uri), without following it. With
    ``approve=False`` the user signs in and then denies at the consent page (the provider's
    ``/interaction/<uid>/abort`` link), giving ``error=access_denied``; when the provider asks
    no consent (already granted) the success redirect comes back anyway. Cookies stay in
    ``http``. Raises :class:`UpstreamLoginError` when a page is not one of these.
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
            raise UpstreamLoginError(
                f"provider answered {response.status_code} at {response.url}: "
                f"{response.text[:2000]}"
            )
        parser = _FormParser()
        parser.feed(response.text)
        parser.close()
        page = next(
            (f for f in parser.forms if dict(f.fields).get("prompt") in ("login", "consent")),
            None,
        )
        if page is None:
            raise UpstreamLoginError(
                f"no sign-in or consent form at {response.url}: {response.text[:2000]}"
            )
        page_url = str(response.url)
        data = dict(page.fields)
        if data["prompt"] == "consent" and not approve:
            abort = next((u for u in parser.links if u.rstrip("/").endswith("/abort")), None)
            if abort is None:
                raise UpstreamLoginError(f"no abort link on the consent page at {page_url}")
            response = http.get(urljoin(page_url, abort), follow_redirects=False)
            continue
        if data["prompt"] == "login":
            data["login"] = username
            data["password"] = "any-password"  # noqa: S105 - the local provider takes any
        action = urljoin(page_url, page.action or page_url)
        if page.method == "post":
            response = http.post(action, data=data, follow_redirects=False)
        else:
            response = http.get(action, params=data, follow_redirects=False)
    raise UpstreamLoginError(f"too many steps at the provider, last at {response.url}")

"""Show HTTP exchanges the way the walkthrough reads: method, URL, short JSON, status, answer.

Secrets and tokens are never printed whole: ``ath_tk_dIalq4…``. Long lists and strings are cut.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
from rich.console import Console
from rich.markup import escape

#: JSON keys (and headers) whose values are credentials: shown only as a short prefix.
SECRET_KEYS = frozenset(
    {
        "access_token",
        "agent_attestation",
        "client_secret",
        "code_verifier",
        "token",
        "refresh_token",
        "authorization",
        "cookie",
        "set-cookie",
    }
)
#: Query parameters of shown URLs that carry one-time credentials.
SECRET_PARAMS = frozenset({"code", "code_verifier", "access_token", "token"})
#: How many characters of a secret stay visible after its type prefix (``ath_tk_``).
SECRET_VISIBLE = 4
MAX_STRING = 96
MAX_URL = 140
MAX_ITEMS = 3

# Our own secrets carry a two-part type prefix (``ath_tk_``, ``ath_secret_``); the random part is
# base64url and may itself begin with ``b_``, so the prefix is never taken to be longer than that.
_TYPE_PREFIX = re.compile(r"^ath_[a-z]{1,8}_|^[a-z]{1,12}_")


def shorten_secret(value: str, keep: int = SECRET_VISIBLE) -> str:
    """``ath_tk_dIal…``: enough to recognise the value, never enough to use it."""
    if value.lower().startswith("bearer "):
        return "Bearer " + shorten_secret(value[7:], keep)
    if value.startswith("eyJ"):  # a JWT: its header is public, show a little of it
        keep = 20
    else:
        prefix = _TYPE_PREFIX.match(value)
        keep += len(prefix.group(0)) if prefix else 0
    return value if len(value) <= keep + 4 else value[:keep] + "…"


def display_url(url: str, limit: int = MAX_URL) -> str:
    """``url`` with one-time credentials in its query shortened, cut at ``limit`` characters."""
    parts = urlsplit(url)
    if parts.query:
        fields = []
        for item in parts.query.split("&"):
            name, sep, value = item.partition("=")
            fields.append(f"{name}={shorten_secret(value)}" if name in SECRET_PARAMS else item)
        url = urlunsplit(parts._replace(query="&".join(fields)))
    return url if len(url) <= limit else url[: limit - 1] + "…"


def abbreviate(value: Any, key: str | None = None) -> Any:
    """A copy of a JSON value fit for the screen: secrets shortened, long lists/strings cut."""
    if isinstance(value, dict):
        return {k: abbreviate(v, k) for k, v in value.items()}
    if isinstance(value, list):
        shown = [abbreviate(v) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            shown.append(f"… {len(value) - MAX_ITEMS} more")
        return shown
    if isinstance(value, str):
        if key is not None and key.lower() in SECRET_KEYS:
            return shorten_secret(value)
        if len(value) > MAX_STRING:
            return value[: MAX_STRING - 1] + "…"
    return value


def compact_json(value: Any) -> str:
    return json.dumps(abbreviate(value), ensure_ascii=False)


def url_query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _body_json(content: bytes) -> Any:
    if not content:
        return None
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass
class Exchange:
    """One request and its answer, as printed."""

    method: str
    url: str
    request_json: Any = None
    status: int | None = None
    response_json: Any = None
    content_type: str = ""
    location: str | None = None
    authorization: str | None = None


@dataclass
class HTTPTrace:
    """httpx event hooks that print every exchange (unless muted) and keep the last one."""

    console: Console
    verbose: bool = True
    label: str = ""
    muted: bool = False
    history: deque[Exchange] = field(default_factory=lambda: deque(maxlen=64))

    def hooks(self) -> dict[str, list[Any]]:
        return {"request": [self._on_request], "response": [self._on_response]}

    def install(self, client: httpx.Client) -> None:
        client.event_hooks = self.hooks()

    def _on_request(self, request: httpx.Request) -> None:
        content = request.content if request.method != "GET" else b""
        ex = Exchange(request.method, str(request.url), _body_json(content))
        ex.authorization = request.headers.get("authorization")
        self.history.append(ex)

    def _on_response(self, response: httpx.Response) -> None:
        response.read()
        ex = self.history[-1] if self.history else Exchange("?", str(response.request.url))
        ex.status = response.status_code
        ex.content_type = response.headers.get("content-type", "").split(";")[0]
        ex.response_json = _body_json(response.content) if "json" in ex.content_type else None
        ex.location = response.headers.get("location")
        if not self.muted:
            self.show(ex)

    @property
    def last(self) -> Exchange | None:
        return self.history[-1] if self.history else None

    def show(self, ex: Exchange) -> None:
        if not self.verbose:
            return
        tag = f"[dim]{escape(self.label)}[/dim] " if self.label else ""
        self.console.print(
            f"  {tag}[bold cyan]{ex.method}[/] {escape(display_url(ex.url))}", soft_wrap=True
        )
        if ex.authorization:
            auth = escape(shorten_secret(ex.authorization))
            self.console.print(f"    [dim]Authorization:[/] {auth}", soft_wrap=True)
        if ex.request_json is not None:
            body = escape(compact_json(ex.request_json))
            self.console.print(f"    [dim]body[/] {body}", soft_wrap=True)
        color = "green" if ex.status is not None and ex.status < 400 else "red"
        answer = f"    [bold {color}]← {ex.status}[/]"
        if ex.response_json is not None:
            answer += " " + escape(compact_json(ex.response_json))
        elif ex.location:
            answer += f" [dim]Location:[/] {escape(display_url(ex.location, MAX_STRING))}"
        elif ex.content_type:
            answer += f" [dim]({escape(ex.content_type)})[/]"
        self.console.print(answer, soft_wrap=True)

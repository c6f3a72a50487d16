"""ATH Shop: a small e-commerce API protected by athkit in native mode (seed 001).

It has a real, minimal login (scrypt-hashed password, server-side session cookie) so the consent
page knows which user is deciding. Products are fixed; carts and orders live in memory per user.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field

from athkit.core.clock import Clock, system_clock
from athkit.core.policy import ApprovalPolicy
from athkit.core.tokens import TokenInfo
from athkit.native import ATH, HandshakePolicy, require_scopes
from athkit.protocol.errors import ATHError, ErrorCode

SHOP_SCOPES = {
    "products:read": "View products",
    "cart:read": "See your shopping cart",
    "cart:write": "Manage your shopping cart",
    "orders:read": "See your orders",
    "orders:write": "Place orders",
}

#: Scopes of the 9-step handshake (seed 003), offered through the handshake only.
HANDSHAKE_SCOPES = {
    "goods:read": "Look up goods and prices",
    "order:create": "Create orders on your behalf",
}


def shop_handshake_policy(**overrides: Any) -> HandshakePolicy:
    """ATH Shop's handshake policy: seed 003's two scopes, user confirmation, 100 calls/s."""
    options: dict[str, Any] = {
        "extra_scopes": HANDSHAKE_SCOPES,
        "scopes": list(HANDSHAKE_SCOPES),
        "rate_limit": "100/second",
    }
    options.update(overrides)
    return HandshakePolicy(**options)


PRODUCTS = [
    {"id": "p-100", "name": "Trail running shoes", "price_cents": 8900, "currency": "EUR"},
    {"id": "p-101", "name": "Merino wool socks", "price_cents": 1500, "currency": "EUR"},
    {"id": "p-102", "name": "Water bottle, 750 ml", "price_cents": 1200, "currency": "EUR"},
    {"id": "p-103", "name": "Headlamp", "price_cents": 3400, "currency": "EUR"},
]
_PRODUCT_IDS = {p["id"] for p in PRODUCTS}

DEMO_USER = "alice"
#: The shop's operator account: may use the ATH operator console and read /ath/metrics.
DEMO_OPERATOR = "admin"
DEMO_PASSWORD_ENV = "ATHKIT_SHOP_PASSWORD"


def _hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)


@dataclass
class ShopState:
    """Users, login sessions, carts and orders of one shop process."""

    users: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    logins: dict[str, str] = field(default_factory=dict)
    carts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    orders: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_user(self, name: str, password: str) -> None:
        salt = secrets.token_bytes(16)
        self.users[name] = (salt, _hash_password(password, salt))

    def check_password(self, name: str, password: str) -> bool:
        entry = self.users.get(name)
        salt, expected = entry if entry else (b"\0" * 16, b"\0" * 32)
        ok = hmac.compare_digest(_hash_password(password, salt), expected)
        return ok and entry is not None

    def login(self, name: str) -> str:
        sid = secrets.token_urlsafe(32)
        with self.lock:
            self.logins[hashlib.sha256(sid.encode()).hexdigest()] = name
        return sid

    def user_for(self, sid: str | None) -> str | None:
        if not sid:
            return None
        return self.logins.get(hashlib.sha256(sid.encode()).hexdigest())


class CartItemIn(BaseModel):
    product_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(1, ge=1, le=99)


class OrderIn(BaseModel):
    items: list[CartItemIn] = Field(min_length=1, max_length=50)


LOGIN_COOKIE = "shop_session"


def _login_page(next_url: str, error: str = "") -> str:
    msg = f'<p style="color:#b00020">{escape(error)}</p>' if error else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>ATH Shop sign-in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto}}
input{{display:block;width:100%;margin:.3rem 0 1rem;padding:.5rem}}</style></head><body>
<h1>ATH Shop</h1><p>Sign in to continue.</p>{msg}
<form method="post" action="/login">
<input type="hidden" name="next" value="{escape(next_url)}">
<label>User <input name="username" id="username" autocomplete="username"></label>
<label>Password <input name="password" id="password" type="password"></label>
<button type="submit" id="signin">Sign in</button></form></body></html>"""


def _safe_next(next_url: str) -> str:
    """Only same-site relative targets after login (no open redirect)."""
    parts = urlsplit(next_url)
    if parts.scheme or parts.netloc or not next_url.startswith("/") or next_url.startswith("//"):
        return "/"
    return next_url


def create_shop_app(
    *,
    public_url: str,
    data_dir: str | Path = ".athkit/shop",
    database_url: str | None = None,
    policy: ApprovalPolicy | None = None,
    dev_mode: bool = False,
    password: str | None = None,
    clock: Clock = system_clock,
    redis_url: str | None = None,
    handshake: HandshakePolicy | None = None,
    redis_prefix: str = "athkit:",
    ath_options: dict[str, Any] | None = None,
) -> FastAPI:
    """Build ATH Shop. ``dev_mode`` allows http/loopback agent identity URLs (local use only).

    ``ath_options`` are further :class:`~athkit.core.settings.ATHSettings` fields (timeouts,
    rate limits, purge).
    ``clock`` is ATH's time source (sessions, tokens, attestation windows); tests inject one.
    ``handshake`` replaces the default 9-step handshake policy (:func:`shop_handshake_policy`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.ath.close()

    app = FastAPI(title="ATH Shop", version="0.1", lifespan=lifespan)
    state = ShopState()
    shop_password = password or os.environ.get(DEMO_PASSWORD_ENV) or "wonderland"
    state.add_user(DEMO_USER, shop_password)
    state.add_user(DEMO_OPERATOR, shop_password)
    app.state.shop = state

    def current_user(request: Request) -> str | None:
        return state.user_for(request.cookies.get(LOGIN_COOKIE))

    ath = ATH(
        app,
        current_user=current_user,
        operator=lambda request: current_user(request) == DEMO_OPERATOR,
        policy=policy or ApprovalPolicy(auto_approve=True, scope_rules={"orders:write": "trusted"}),
        public_url=public_url,
        app_id="com.ath-shop.ecommerce",
        app_name="ATH Shop E-Commerce API",
        provider_id="ath-shop",
        scopes=SHOP_SCOPES,
        data_dir=Path(data_dir),
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        dev_mode=dev_mode,
        secure_cookies=public_url.startswith("https"),
        clock=clock,
        handshake=handshake or shop_handshake_policy(),
        **(ath_options or {}),
    )
    app.state.ath = ath

    # The sign-in pages are for browsers, not part of the shop's API document.
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home(request: Request) -> str:
        who = current_user(request)
        return (
            f"<h1>ATH Shop</h1><p>{'Signed in as ' + escape(who) if who else 'Not signed in'}</p>"
        )

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(next: str = "/") -> str:
        return _login_page(_safe_next(next))

    @app.post("/login", include_in_schema=False)
    def login(
        username: str = Form(max_length=128),
        password: str = Form(max_length=256),
        next: str = Form("/", max_length=4096),
    ) -> Any:
        if not state.check_password(username, password):
            return HTMLResponse(_login_page(_safe_next(next), "Wrong user or password"), 401)
        resp = RedirectResponse(_safe_next(next), status_code=303)
        resp.set_cookie(
            LOGIN_COOKIE,
            state.login(username),
            httponly=True,
            samesite="lax",
            secure=public_url.startswith("https"),
        )
        return resp

    # Read-only handlers are async: they only read memory, and a sync handler costs two
    # thread hops per call in FastAPI (the endpoint and its response serialization).
    @app.get("/api/products")
    async def products(_: TokenInfo = Depends(require_scopes("products:read"))) -> dict[str, Any]:
        return {"products": PRODUCTS}

    @app.get("/api/cart")
    async def cart(t: TokenInfo = Depends(require_scopes("cart:read"))) -> dict[str, Any]:
        return {"items": state.carts.get(t.user_id, [])}

    @app.post("/api/cart/items", status_code=201)
    def add_to_cart(
        item: CartItemIn, t: TokenInfo = Depends(require_scopes("cart:write"))
    ) -> dict[str, Any]:
        if item.product_id not in _PRODUCT_IDS:
            raise ATHError(ErrorCode.NOT_FOUND, "no such product", {"product_id": item.product_id})
        with state.lock:
            items = state.carts.setdefault(t.user_id, [])
            items.append(item.model_dump())
        return {"items": items}

    @app.get("/api/orders")
    async def orders(t: TokenInfo = Depends(require_scopes("orders:read"))) -> dict[str, Any]:
        return {"orders": state.orders.get(t.user_id, [])}

    @app.post("/api/orders", status_code=201)
    def place_order(t: TokenInfo = Depends(require_scopes("orders:write"))) -> dict[str, Any]:
        with state.lock:
            items = state.carts.pop(t.user_id, [])
            if not items:
                raise ATHError(ErrorCode.INVALID_REQUEST, "cart is empty")
            order = {"id": "o-" + secrets.token_hex(4), "items": items, "status": "placed"}
            state.orders.setdefault(t.user_id, []).append(order)
        return order

    # -- seed 003: the APIs behind the 9-step handshake -----------------------------------

    @app.get("/api/goods")
    async def goods(_: TokenInfo = Depends(require_scopes("goods:read"))) -> dict[str, Any]:
        return {"goods": PRODUCTS}

    @app.post("/api/orders/create", status_code=201)
    def create_order(
        body: OrderIn, t: TokenInfo = Depends(require_scopes("order:create"))
    ) -> dict[str, Any]:
        unknown = [i.product_id for i in body.items if i.product_id not in _PRODUCT_IDS]
        if unknown:
            raise ATHError(ErrorCode.NOT_FOUND, "no such product", {"product_ids": unknown})
        order = {
            "id": "o-" + secrets.token_hex(4),
            "items": [i.model_dump() for i in body.items],
            "status": "placed",
        }
        with state.lock:
            state.orders.setdefault(t.user_id, []).append(order)
        return order

    return app

"""Shared setup for the athkit benchmarks: real servers, one real ATH flow, figures.

Everything runs on 127.0.0.1: an agent identity host and ATH Shop, each a real uvicorn in a
background thread of this process (:class:`athkit.web.serving.BackgroundServer`), the shop on a
SQLite file in a temporary directory that is removed afterwards. Client and servers share one
interpreter (and so one GIL): absolute latencies include the client's own work, which is the
same for every route compared.

Not a package: the scripts next to this file do ``from common import ...`` (``sys.path[0]`` is
``bench/`` when a script is run as ``python bench/NAME.py``).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from fastapi import FastAPI

from athkit.client import AgentKey, ATHClient
from athkit.core.service import ATHService
from athkit.demo.agent import DEVELOPER, create_agent_identity_app, publish
from athkit.demo.browser import HTTPBrowser
from athkit.demo.shop import DEMO_USER, create_shop_app
from athkit.web.serving import BackgroundServer, free_port

# Benchmarks send thousands of requests a minute from one address on purpose: the per-IP abuse
# limits (README "Operations") are off for them, and for the servers they start as processes.
os.environ.setdefault("ATHKIT_RATE_LIMITS_ENABLED", "false")

SHOP_PASSWORD = "bench-" + secrets.token_hex(8)
PROVIDER_ID = "ath-shop"
FLOW_SCOPES = ["products:read", "cart:read"]
STEPS = ("register", "authorize", "consent", "token")
#: Parts of the consent step, also in ``FlowResult.steps``.
CONSENT_PARTS = ("consent: open page", "consent: decide")


# -- figures ----------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0–100) with linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [headers, *rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        parts = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def header(title: str, args: argparse.Namespace) -> None:
    import athkit

    version = getattr(athkit, "__version__", "?")
    print(f"== {title} ==")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs "
        f"(usable {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'})"
        f", {platform.system()} {platform.release()}"
    )
    print(
        f"python:  {platform.python_implementation()} {platform.python_version()}"
        f" ({sys.executable})"
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(
        f"athkit {version}, httpx {httpx.__version__}, mode: {'quick' if args.quick else 'full'}"
        f", load average at start: {load}"
    )
    print()


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="short run (< 15 s)")
    return p


@contextmanager
def no_gc() -> Iterator[None]:
    """Collect once, then keep the cyclic GC out of a timed loop."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# -- servers ----------------------------------------------------------------------------------


@dataclass
class Agent:
    key: AgentKey
    agent_id: str


@dataclass
class Env:
    """A running identity host and ATH Shop, plus a temp data dir; see :func:`environment`."""

    shop_url: str
    shop_app: FastAPI
    shop_server: BackgroundServer
    id_app: FastAPI
    id_server: BackgroundServer
    data_dir: Path
    agent_http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))

    @property
    def service(self) -> ATHService:
        svc = self.shop_app.state.athkit
        assert isinstance(svc, ATHService)
        return svc

    def new_agent(self, name: str = "bench") -> Agent:
        """Publish a fresh P-256 agent identity on the identity host (one agent_id = one
        registration)."""
        key = AgentKey.generate("P-256", kid="default")
        path = f"/agents/{name}-{secrets.token_hex(8)}/agent.json"
        return Agent(key, publish(self.id_app, self.id_server.url, key, path=path))

    def browser(self) -> HTTPBrowser:
        return HTTPBrowser(DEMO_USER, SHOP_PASSWORD)


@contextmanager
def environment(customize: Callable[[FastAPI], None] | None = None) -> Iterator[Env]:
    """Start the identity host and ATH Shop (dev mode, SQLite in a temp dir); stop both after.

    ``customize(app)`` runs on the shop app before its server starts (e.g. to add a route).
    """
    with tempfile.TemporaryDirectory(prefix="athkit-bench-") as tmp:
        id_app = create_agent_identity_app()
        id_server = BackgroundServer(id_app).start()
        shop_server: BackgroundServer | None = None
        env: Env | None = None
        try:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            app = create_shop_app(
                public_url=url,
                data_dir=Path(tmp) / "shop",
                dev_mode=True,
                password=SHOP_PASSWORD,
            )
            if customize is not None:
                customize(app)
            shop_server = BackgroundServer(app, port=port).start()
            env = Env(url, app, shop_server, id_app, id_server, Path(tmp))
            yield env
        finally:
            if env is not None:
                env.agent_http.close()
            if shop_server is not None:
                shop_server.stop()
            id_server.stop()


# -- one ATH flow -----------------------------------------------------------------------------


@dataclass
class FlowResult:
    agent: Agent
    access_token: str
    effective_scopes: list[str]
    steps: dict[str, float]  # seconds per step, keys = STEPS + CONSENT_PARTS
    total: float


def run_flow(
    env: Env,
    *,
    browser: HTTPBrowser | None = None,
    scopes: list[str] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> FlowResult:
    """One full §4–§6 flow for a new agent: register → authorize → consent → token.

    The agent side is :class:`athkit.client.ATHClient` over ``env.agent_http`` (keep-alive);
    the user side is an :class:`HTTPBrowser` (a fresh one signs in first; pass a signed-in one
    to reuse its session cookie). ``on_step(name)`` is called at the end of each step (names
    from STEPS and CONSENT_PARTS; "consent" is reported after its parts), outside the timings.
    """
    scopes = scopes or FLOW_SCOPES
    agent = env.new_agent()
    own_browser = browser is None
    b = browser or env.browser()
    client = ATHClient(env.shop_url, agent.agent_id, agent.key, http_client=env.agent_http)
    mark = on_step or (lambda _name: None)
    try:
        t0 = time.perf_counter()
        reg = client.register(
            developer=DEVELOPER,
            providers=[{"provider_id": PROVIDER_ID, "scopes": scopes}],
            purpose="benchmark",
        )
        t1 = time.perf_counter()
        mark("register")
        if reg.agent_status.value != "approved":
            raise RuntimeError(f"agent not approved: {reg.agent_status}")
        auth = client.authorize(PROVIDER_ID, scopes)
        t2 = time.perf_counter()
        mark("authorize")
        b.open_consent(auth.authorization_url)
        t2b = time.perf_counter()
        mark(CONSENT_PARTS[0])
        done = b.decide(approve=True, scopes=scopes)
        t3 = time.perf_counter()
        mark(CONSENT_PARTS[1])
        mark("consent")
        if done.status_code != 200:
            raise RuntimeError(f"consent failed: HTTP {done.status_code}")
        token = client.exchange_token(auth.ath_session_id)
        t4 = time.perf_counter()
        mark("token")
    finally:
        client.close()
        if own_browser:
            b.close()
    steps = {"register": t1 - t0, "authorize": t2 - t1, "consent": t3 - t2, "token": t4 - t3}
    steps.update({CONSENT_PARTS[0]: t2b - t2, CONSENT_PARTS[1]: t3 - t2b})
    return FlowResult(agent, token.access_token, list(token.effective_scopes), steps, t4 - t0)


def api_headers(flow: FlowResult) -> dict[str, str]:
    """The §7 headers an agent sends on an API call."""
    return {"Authorization": f"Bearer {flow.access_token}", "X-ATH-Agent-ID": flow.agent.agent_id}

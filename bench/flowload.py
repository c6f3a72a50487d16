"""The load behind ``flows_per_s``: user processes and a static agent identity host.

Not a package (see ``common.py``). Each user runs full signed-in flows in a loop: a new agent
(fresh P-256 key, its identity document published), register → authorize → consent (the
signed-in user's browser opens the page and decides, then follows the redirect to the
callback) → token. The shop's work per flow is that of ``bench/flow.py``; only the load
generator is made cheap so that it is not the bottleneck on a small machine:

* the users run in ``procs`` processes, as tasks on one event loop each, on athkit's pooled
  httptools HTTP client (``flowclient.py``): the same requests as ``common.run_flow``, without
  httpx's and html.parser's cost or threads queueing for one interpreter lock;
  ``ATHKIT_BENCH_FLOW_CLIENT=sdk`` runs ``common.run_flow`` (``ATHClient`` + ``HTTPBrowser``
  over httpx) in threads instead, as before;
* identity documents are static files served by nginx (how an agent developer would host
  them), written by the users, so the shop's fetches cost the load generator nothing; without
  nginx, ``python -m http.server`` serves the same directory.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx
from common import Agent, run_flow
from loadgen import NGINX_PREAMBLE, Nginx

from athkit.client import AgentKey
from athkit.demo.agent import identity_document
from athkit.demo.browser import HTTPBrowser
from athkit.demo.shop import DEMO_USER
from athkit.web.serving import free_port

IDENTITY_CONF = NGINX_PREAMBLE + """\
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    location /agents/ {{ default_type application/json; }}
  }}
}}
"""


class IdentityHost:
    """A directory of identity documents behind a static web server on a free port."""

    def __init__(self, tmp: Path) -> None:
        # Its own world-readable directory: nginx's workers run as an unprivileged user.
        self.root = Path(tempfile.mkdtemp(prefix="athkit-identity-"))
        self.root.chmod(0o755)
        (self.root / "agents").mkdir(mode=0o755)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._nginx: Nginx | None = None
        self._server: subprocess.Popen[bytes] | None = None
        probe = self.root / "agents" / "probe.json"
        probe.write_text("{}")
        if shutil.which("nginx") or Path("/usr/sbin/nginx").exists():
            conf = IDENTITY_CONF.format(tmp=tmp / "nginx", root=self.root, port=self.port)
            self._nginx = Nginx.start(conf, tmp / "nginx", [f"{self.url}/agents/probe.json"])
            self.server_name = "nginx"
        else:
            self._server = subprocess.Popen(  # noqa: S603 - this interpreter's own http.server
                [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1"]
                + ["--directory", str(self.root)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _wait_up(f"{self.url}/agents/probe.json", self._server)
            self.server_name = "python -m http.server"

    def stop(self) -> None:
        if self._nginx is not None:
            self._nginx.stop()
        if self._server is not None:
            self._server.terminate()
            self._server.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.05)


@dataclass
class FlowEnv:
    """What :func:`common.run_flow` needs of its environment, for one user."""

    shop_url: str
    id_root: Path
    id_url: str
    password: str
    agent_http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))

    def new_agent(self, name: str = "bench") -> Agent:
        """A fresh P-256 key and its identity document, published as a static file."""
        key = AgentKey.generate("P-256", kid="default")
        rel = f"agents/{name}-{secrets.token_hex(8)}.json"
        agent_id = f"{self.id_url}/{rel}"
        path = self.id_root / rel
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(identity_document(agent_id, key)))
        os.replace(tmp, path)
        return Agent(key, agent_id)

    def browser(self) -> HTTPBrowser:
        return HTTPBrowser(DEMO_USER, self.password)


@dataclass(frozen=True)
class _Job:
    shop_url: str
    id_root: str
    id_url: str
    password: str
    users: int


#: ``lean`` (default): asyncio users on the httptools client; ``sdk``: run_flow in threads.
FLOW_CLIENT = os.environ.get("ATHKIT_BENCH_FLOW_CLIENT", "lean")


def _user_process(job: _Job, ready: Any, go: Event, stop_at: Any, out: Any) -> None:
    """One process of users: warm up, wait for ``go``, run flows until ``stop_at``."""
    if FLOW_CLIENT == "lean":
        _lean_user_process(job, ready, go, stop_at, out)
    else:
        _sdk_user_process(job, ready, go, stop_at, out)


def _lean_user_process(job: _Job, ready: Any, go: Event, stop_at: Any, out: Any) -> None:
    import asyncio

    from flowclient import LeanUser

    from athkit.gateway.upstream_http import UpstreamClient

    try:
        import uvloop

        uvloop.install()
    except ImportError:  # the stdlib loop then
        pass

    async def main() -> tuple[int, float, list[str]]:
        http = UpstreamClient(read_timeout=30.0)
        users = [
            LeanUser(job.shop_url, Path(job.id_root), job.id_url, job.password, http)
            for _ in range(job.users)
        ]
        for u in users:
            await u.sign_in()
            await u.flow()  # warm up
        done = [0] * job.users
        errors: list[str] = []
        ready.put(os.getpid())
        await asyncio.to_thread(go.wait)
        cpu0 = time.process_time()

        async def user(i: int) -> None:
            try:
                while time.monotonic() < stop_at.value:
                    await users[i].flow()
                    done[i] += 1
            except Exception as exc:  # reported to the parent
                errors.append(repr(exc))

        await asyncio.gather(*(user(i) for i in range(job.users)))
        cpu = time.process_time() - cpu0
        await http.close()
        return sum(done), cpu, errors

    out.put(asyncio.run(main()))


def _sdk_user_process(job: _Job, ready: Any, go: Event, stop_at: Any, out: Any) -> None:
    envs = [
        FlowEnv(job.shop_url, Path(job.id_root), job.id_url, job.password) for _ in range(job.users)
    ]
    browsers = [e.browser() for e in envs]
    for e, b in zip(envs, browsers, strict=True):
        run_flow(e, browser=b)  # type: ignore[arg-type]  # sign in, warm up
    done = [0] * job.users
    errors: list[str] = []
    ready.put(os.getpid())
    go.wait()
    cpu0 = time.process_time()

    def user(i: int) -> None:
        try:
            while time.monotonic() < stop_at.value:
                run_flow(envs[i], browser=browsers[i])  # type: ignore[arg-type]
                done[i] += 1
        except BaseException as exc:  # reported to the parent
            errors.append(repr(exc))

    threads = [threading.Thread(target=user, args=(i,)) for i in range(job.users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((sum(done), time.process_time() - cpu0, errors))
    for b in browsers:
        b.close()
    for e in envs:
        e.agent_http.close()


@dataclass(frozen=True)
class LoadResult:
    flows: int
    wall: float
    users_cpu: float  # CPU seconds of the user processes in the timed section


def run_users(
    shop_url: str,
    host: IdentityHost,
    password: str,
    *,
    users: int,
    procs: int,
    seconds: float,
    on_start: Any = None,
) -> LoadResult:
    """``users`` concurrent users over ``procs`` processes for ``seconds``; ``on_start()`` runs
    just before the timed section."""
    ctx = mp.get_context("spawn")
    ready, out = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    stop_at = ctx.Value("d", 0.0)
    shares = [users // procs + (1 if i < users % procs else 0) for i in range(procs)]
    workers = [
        ctx.Process(
            target=_user_process,
            args=(_Job(shop_url, str(host.root), host.url, password, n), ready, go, stop_at, out),
            daemon=True,
        )
        for n in shares
        if n
    ]
    for w in workers:
        w.start()
    try:
        for _ in workers:
            ready.get(timeout=120)
        if on_start is not None:
            on_start()
        start = time.monotonic()
        stop_at.value = start + seconds
        go.set()
        results = [out.get(timeout=seconds + 60) for _ in workers]
        wall = time.monotonic() - start
    finally:
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.terminate()
    errors = [e for r in results for e in r[2]]
    if errors:
        raise RuntimeError(f"flow failed: {errors[0]}")
    return LoadResult(sum(r[0] for r in results), wall, sum(r[1] for r in results))

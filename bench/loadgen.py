"""Load generation and the real proxies for ``bench/compare.py``: wrk, nginx, small servers.

Not a package (see ``common.py``). wrk and nginx are Debian's; nginx runs as our own process
with its configuration, pid file and temp paths in a temporary directory, on free ports.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50: float  # seconds
    p99: float
    requests: int
    errors: int  # non-2xx/3xx answers plus socket errors


def _duration(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, headers: dict[str, str], *, connections: int, seconds: int) -> WrkResult:
    """One wrk run (``--latency``); one thread per 25 connections, at most 2 (2 cores here)."""
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    threads = max(1, min(2, connections // 25))
    cmd = [exe, "--latency", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    cmd.append("--timeout=10s")
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(  # noqa: S603 - wrk with our own arguments
        [*cmd, url], capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (
        sum(int(g) for g in sock.groups()) if sock else 0
    )
    if "50" not in lat or "99" not in lat:  # nothing completed: count the run as failed
        print(f"  !! wrk {url} c{connections}: no latency distribution\n{out}", flush=True)
        return WrkResult(rps, float("nan"), float("nan"), done, errors + 1)
    return WrkResult(rps, _duration(lat["50"]), _duration(lat["99"]), done, errors)


#: The start of every bench nginx config: one worker, in the foreground, all files in ``{tmp}``
#: (a ``str.format`` template, like the configs that continue it inside ``http {{``).
NGINX_PREAMBLE = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 2048; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
"""

NGINX_CONF = NGINX_PREAMBLE + """\
  proxy_max_temp_file_size 0;
  upstream mail_api {{ server 127.0.0.1:{api_port}; keepalive 64; }}
  upstream noop_decider {{ server 127.0.0.1:{noop_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{plain_port};
    location / {{
      proxy_pass http://mail_api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffers 32 32k;
    }}
  }}
  server {{
    listen 127.0.0.1:{noop_auth_port};
    location / {{
      auth_request /_noop_auth;
      proxy_pass http://mail_api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffers 32 32k;
    }}
    location = /_noop_auth {{
      internal;
      proxy_pass http://noop_decider/;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
{forward_auth}
}}
"""


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    tmp: Path

    @classmethod
    def start(cls, conf: str, tmp: Path, probe_urls: list[str]) -> Nginx:
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        tmp.mkdir(parents=True, exist_ok=True)
        path = tmp / "nginx.conf"
        path.write_text(conf)
        log = open(tmp / "stderr.log", "wb")  # noqa: SIM115 - kept open for the child
        proc = subprocess.Popen(  # noqa: S603 - Debian's nginx with our own config file
            [exe, "-c", str(path), "-p", str(tmp), "-e", str(tmp / "error.log")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        pending = list(probe_urls)
        while pending:
            if proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(tmp / 'stderr.log').read_text()}")
            try:
                httpx.get(pending[0], timeout=2)
                pending.pop(0)
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError("nginx did not start") from None
                time.sleep(0.05)
        return cls(proc, tmp)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


async def noop_decider(scope: dict[str, object], receive: object, send: object) -> None:
    """A raw ASGI app that answers every request 200 with no body: the decider's floor."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

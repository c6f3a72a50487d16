"""A development server for an agent's identity documents (``athkit agent serve-identity``).

Standard library only (the agent-side install has no web framework). It serves, on a loopback
address, the identity document at the ``agent_id`` path and the Client ID Metadata Document,
both read afresh from a callable on every request, so a key rotated by another process is
published at once. GET and HEAD only; anything else is 405, unknown paths 404.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from athkit.client.identity import IDENTITY_CACHE_CONTROL

Documents = Callable[[], dict[str, dict[str, Any]]]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _handler(documents: Documents) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "athkit-identity"
        sys_version = ""

        def _send(self, status: int, body: dict[str, Any], *, head: bool = False) -> None:
            data = json.dumps(body, indent=2).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Content-Type-Options", "nosniff")
            if status == 200:
                self.send_header("Cache-Control", IDENTITY_CACHE_CONTROL)
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _serve(self, head: bool) -> None:
            path = urlsplit(self.path).path
            try:
                doc = documents().get(path)
            except Exception:
                self._send(503, {"error": "identity unavailable"}, head=head)
                return
            if doc is None:
                self._send(404, {"error": "not found"}, head=head)
            else:
                self._send(200, doc, head=head)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._serve(False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(True)

        def _refuse(self) -> None:
            self._send(405, {"error": "method not allowed"})

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return  # quiet: the CLI prints its own line

    return Handler


class IdentityServer:
    """Serve ``documents()`` on ``host:port`` (loopback only) in a background thread."""

    def __init__(self, documents: Documents, host: str = "127.0.0.1", port: int = 0) -> None:
        if not _is_loopback(host):
            raise ValueError("the development identity server listens on loopback only")
        self.httpd = ThreadingHTTPServer((host, port), _handler(documents))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> IdentityServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> IdentityServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

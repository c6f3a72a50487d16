"""The webhook sender of step 6: the confirmation request POSTed, signed by the server key."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import httpx

from athkit.core.handshake_keys import ServerIdentity
from athkit.crypto.signing import sign

log = logging.getLogger("athkit.handshake")


class WebhookSender:
    """POSTs step 6 to the configured URL, signed with the server key (one thread per send)."""

    def __init__(self, url: str, identity: ServerIdentity, timeout: float, clock: Any) -> None:
        self.url = url
        self.identity = identity
        self.timeout = timeout
        self.clock = clock
        self.threads: list[threading.Thread] = []

    def signed_request(self, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        ts = str(int(self.clock()))
        signature = sign(self.identity.key, ts.encode() + b"." + body)
        headers = {
            "Content-Type": "application/json",
            "X-ATH-Webhook-Timestamp": ts,
            "X-ATH-Signature": signature,
            "X-ATH-Server-DID": self.identity.did,
        }
        return body, headers

    def send(self, payload: dict[str, Any]) -> None:
        body, headers = self.signed_request(payload)

        def run() -> None:
            try:
                with httpx.Client(timeout=self.timeout, follow_redirects=False) as c:
                    resp = c.post(self.url, content=body, headers=headers)
                if resp.status_code >= 300:
                    log.warning("confirmation webhook answered HTTP %s", resp.status_code)
            except httpx.HTTPError as exc:
                log.warning("confirmation webhook failed: %s", type(exc).__name__)

        t = threading.Thread(target=run, name="ath-webhook", daemon=True)
        self.threads = [x for x in self.threads if x.is_alive()] + [t]
        t.start()

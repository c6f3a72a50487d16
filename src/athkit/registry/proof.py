"""Proof that a submitter controls an origin.

The registry derives one challenge token per origin from its own secret::

    token = "athreg-" + base64url(HMAC-SHA256(secret, origin))[:32]

(the secret is generated at first start and kept in the registry's database, so tokens survive
restarts and are the same for every registry process sharing that database). The owner proves
control by serving the token at::

    {origin}/.well-known/ath-registry-verification.txt

as ``text/plain``: one token per line (several registries can share the file), blank lines and
lines starting with ``#`` ignored, at most 16 KiB. The file is fetched through the SSRF guard and
redirects must stay on the same origin. Re-validation checks the file again, so taking the token
down (or losing the domain) drops the listing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from athkit.registry.documents import DocumentFetcher, FetchFailed

VERIFICATION_PATH = "/.well-known/ath-registry-verification.txt"
MAX_VERIFICATION_BYTES = 16 * 1024
TOKEN_PREFIX = "athreg-"


def challenge_token(secret: str, origin: str) -> str:
    mac = hmac.new(secret.encode(), origin.encode(), hashlib.sha256).digest()
    return TOKEN_PREFIX + base64.urlsafe_b64encode(mac).decode().rstrip("=")[:32]


def published_tokens(body: bytes) -> set[str]:
    text = body.decode("utf-8", errors="replace")
    return {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}


def check_proof(fetcher: DocumentFetcher, origin: str, token: str) -> str | None:
    """None when ``origin`` publishes ``token``; otherwise the reason it does not.

    Raises FetchFailed only for network-level failures that say nothing either way.
    """
    try:
        body = fetcher.get(
            origin + VERIFICATION_PATH, max_bytes=MAX_VERIFICATION_BYTES, same_origin=True
        )
    except FetchFailed as exc:
        if exc.definite:
            return f"verification file: {exc.reason}"
        raise
    if token not in published_tokens(body):
        return "verification file does not contain the token"
    return None

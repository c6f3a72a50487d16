"""The server's own handshake key and DID, and the key that seals session keys at rest.

Both are configured explicitly or, when not, generated once and persisted under
``<data_dir>/handshake/`` with mode 0600 (``server_key.jwk``, ``sealing.key``), so that a restart
keeps the same DID and can still open the sessions it sealed. Production deployments should pass
``server_key``/``server_key_path`` and ``sealing_keys`` (or ``ATHKIT_HANDSHAKE_SEALING_KEYS``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from athkit.crypto.did import did_document, did_key_from_jwk
from athkit.crypto.keys import AgentKey
from athkit.crypto.sealing import TokenSealer, new_key_spec

log = logging.getLogger("athkit.handshake")

SEALING_ENV = "ATHKIT_HANDSHAKE_SEALING_KEYS"
_lock = threading.Lock()


def did_web_for(public_url: str) -> str:
    """The ``did:web`` of an origin: ``https://shop.example:8443`` →
    ``did:web:shop.example%3A8443``."""
    parts = urlsplit(public_url)
    if parts.path not in ("", "/"):
        raise ValueError("did:web is supported for a public_url without a path only")
    return "did:web:" + quote(parts.netloc, safe="")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


@dataclass(frozen=True)
class ServerIdentity:
    """The server's signing key, public JWK and DID."""

    key: AgentKey
    did: str

    @property
    def public_jwk(self) -> dict[str, Any]:
        jwk = self.key.public_jwk()
        return {k: jwk[k] for k in ("kty", "crv", "x", "y", "alg") if k in jwk}

    @property
    def kid(self) -> str:
        return self.did + "#key-1"

    @property
    def algorithm(self) -> str:
        return self.key.algorithm

    def did_document(self) -> dict[str, Any]:
        return did_document(self.did, self.public_jwk)

    @classmethod
    def load(
        cls,
        *,
        data_dir: Path,
        public_url: str,
        key: dict[str, Any] | None = None,
        key_path: Path | None = None,
        use_did_web: bool = False,
    ) -> ServerIdentity:
        if key is not None:
            agent_key = AgentKey.from_jwk(dict(key))
        else:
            path = key_path or Path(data_dir) / "handshake" / "server_key.jwk"
            with _lock:
                if not path.exists():
                    fresh = AgentKey.generate("P-256")
                    try:
                        fresh.save(path)
                        log.info("generated the handshake server key at %s", path)
                    except FileExistsError:  # pragma: no cover - another process won
                        pass
                agent_key = AgentKey.load(path)
        if agent_key.key.as_dict(private=True).get("d") is None:
            raise ValueError("the server key must be a private JWK")
        did = did_web_for(public_url) if use_did_web else did_key_from_jwk(agent_key.public_jwk())
        return cls(agent_key, did)


def load_sealer(spec: str | None, data_dir: Path, *, dev_mode: bool) -> TokenSealer:
    """The sealer for session keys: ``spec``, else the environment, else a persisted dev key."""
    spec = spec or os.environ.get(SEALING_ENV)
    if spec:
        return TokenSealer.from_spec(spec)
    path = Path(data_dir) / "handshake" / "sealing.key"
    with _lock:
        if not path.exists():
            if not dev_mode:
                log.warning(
                    "no handshake sealing key configured (%s); generating one at %s",
                    SEALING_ENV,
                    path,
                )
            with contextlib.suppress(FileExistsError):  # another process won
                _write_private(path, new_key_spec("k1") + "\n")
        return TokenSealer.from_spec(path.read_text().strip())

"""Where an agent keeps its registrations: ``{base_url: {client_id, client_secret, agent_id}}``.

A JSON file readable by its owner only (mode 0600), written atomically. The client secret is a
credential (§4): keep the file out of version control.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FILE_MODE = 0o600


def default_credentials_path() -> Path:
    """``$XDG_CONFIG_HOME/athkit/credentials.json`` (``~/.config`` when unset)."""
    root = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(root) / "athkit" / "credentials.json"


@dataclass(frozen=True)
class StoredCredentials:
    """One registration at one service."""

    client_id: str
    client_secret: str
    agent_id: str


class CredentialStore:
    """Load and save :class:`StoredCredentials` keyed by service base URL."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_credentials_path()

    @staticmethod
    def _key(base_url: str) -> str:
        return base_url.rstrip("/")

    def load(self) -> dict[str, StoredCredentials]:
        """Every stored registration; an absent file is an empty store."""
        try:
            raw: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        if not isinstance(raw, dict):
            raise ValueError(f"{self.path}: expected a JSON object")
        out: dict[str, StoredCredentials] = {}
        for base_url, entry in raw.items():
            if not isinstance(entry, dict):
                raise ValueError(f"{self.path}: entry for {base_url!r} is not an object")
            out[str(base_url)] = StoredCredentials(
                client_id=str(entry["client_id"]),
                client_secret=str(entry["client_secret"]),
                agent_id=str(entry["agent_id"]),
            )
        return out

    def get(self, base_url: str) -> StoredCredentials | None:
        return self.load().get(self._key(base_url))

    def save(self, base_url: str, credentials: StoredCredentials) -> None:
        """Add or replace the entry for ``base_url``."""
        entries = self.load()
        entries[self._key(base_url)] = credentials
        self._write(entries)

    def delete(self, base_url: str) -> bool:
        """Remove the entry for ``base_url``; ``True`` if there was one."""
        entries = self.load()
        if entries.pop(self._key(base_url), None) is None:
            return False
        self._write(entries)
        return True

    def _write(self, entries: dict[str, StoredCredentials]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {url: asdict(creds) for url, creds in sorted(entries.items())}
        # mkstemp creates the file with mode 0600; os.replace keeps readers from a half file.
        fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)
                f.write("\n")
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# -- user credentials for the 9-step handshake (PROTOCOL.md §10, step 0) ----------------------


def default_user_credentials_path() -> Path:
    """``$XDG_CONFIG_HOME/athkit/user_credentials.json`` (``~/.config`` when unset)."""
    return default_credentials_path().with_name("user_credentials.json")


class UserCredentialStore:
    """The user-signed credentials an agent holds, per service: ``{base_url: [{credential,
    signature}, ...]}``, mode 0600. Expired entries are dropped when the store is written."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_user_credentials_path()

    def load(self) -> dict[str, list[dict[str, Any]]]:
        try:
            raw: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        if not isinstance(raw, dict):
            raise ValueError(f"{self.path}: expected a JSON object")
        return {
            str(url): [e for e in entries if isinstance(e, dict)]
            for url, entries in raw.items()
            if isinstance(entries, list)
        }

    def add(self, base_url: str, signed: Any, *, now: float | None = None) -> None:
        """Store ``signed`` (a ``SignedCredential`` or its dict) for ``base_url``."""
        entry = signed.to_dict() if hasattr(signed, "to_dict") else dict(signed)
        entries = self.load()
        key = base_url.rstrip("/")
        entries[key] = [e for e in entries.get(key, []) if e != entry] + [entry]
        self._write(entries, now)

    def find(
        self,
        base_url: str,
        *,
        client_did: str | None = None,
        scopes: list[str] | None = None,
        now: float | None = None,
    ) -> dict[str, Any] | None:
        """The unexpired credential for ``base_url`` (and ``client_did``) covering ``scopes``
        that expires last; ``None`` when there is none."""
        import time

        t = time.time() if now is None else now
        best: dict[str, Any] | None = None
        for entry in self.load().get(base_url.rstrip("/"), []):
            cred = entry.get("credential")
            if not isinstance(cred, dict) or not isinstance(cred.get("expires_at"), int):
                continue
            if cred["expires_at"] <= t:
                continue
            if client_did is not None and cred.get("client_did") != client_did:
                continue
            if scopes is not None and not set(scopes) <= set(cred.get("scopes") or []):
                continue
            if best is None or cred["expires_at"] > best["credential"]["expires_at"]:
                best = entry
        return best

    def _write(self, entries: dict[str, list[dict[str, Any]]], now: float | None) -> None:
        import time

        t = time.time() if now is None else now

        def alive(e: dict[str, Any]) -> bool:
            cred = e.get("credential")
            return isinstance(cred, dict) and int(cred.get("expires_at") or 0) > t

        data = {url: [e for e in es if alive(e)] for url, es in sorted(entries.items())}
        data = {url: es for url, es in data.items() if es}
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".user-credentials-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2)
                f.write("\n")
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

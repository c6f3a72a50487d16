"""The credential vault: one store for everything secret an agent holds.

* the agent's own profile and private keys (partition ``agent``),
* its client registrations per service (§4, ``client_id`` + ``client_secret``),
* per end user (partition ``user:<id>``): grants (access and refresh tokens, §6), pending
  consents (§5), user pre-authorization credentials (§10 step 0) and handshake sessions.

The backend decides where it lives: :func:`default_vault` is the encrypted file under the
user's config directory; :class:`~athkit.client.vault.backends.MemoryBackend` and
:class:`~athkit.client.vault.sql.SQLBackend` serve servers and multi-user backends.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from athkit.client.vault.backends import Data, FileBackend, MemoryBackend, VaultBackend
from athkit.client.vault.records import (
    ClientRecord,
    GrantRecord,
    PendingAuthorization,
    service_key,
)
from athkit.client.vault.sealing import KeySource, PassphrasePrompt

T = TypeVar("T")
AGENT_PARTITION = "agent"
DEFAULT_USER = "local"
VAULT_ENV = "ATHKIT_VAULT"


def config_dir() -> Path:
    """The user's config directory for athkit (platformdirs; honours ``XDG_CONFIG_HOME``)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("athkit", appauthor=False))


def default_vault_path() -> Path:
    """``$ATHKIT_VAULT``, else ``<config dir>/athkit/vault.json``."""
    override = os.environ.get(VAULT_ENV)
    return Path(override) if override else config_dir() / "vault.json"


def _user(user: str) -> str:
    if not user or len(user) > 200:
        raise ValueError("a user id is 1 to 200 characters")
    return f"user:{user}"


class Vault:
    """Typed access to a :class:`VaultBackend`; every change is one atomic mutation."""

    def __init__(self, backend: VaultBackend | None = None) -> None:
        self.backend: VaultBackend = backend if backend is not None else MemoryBackend()

    # -- agent profile and registrations -------------------------------------------------

    def profile(self) -> dict[str, Any] | None:
        prof = self.backend.read(AGENT_PARTITION).get("profile")
        return dict(prof) if isinstance(prof, dict) else None

    def save_profile(self, profile: dict[str, Any]) -> None:
        def change(data: Data) -> None:
            data["profile"] = profile

        self.backend.mutate(AGENT_PARTITION, change)

    def update_profile(self, change: Callable[[dict[str, Any] | None], dict[str, Any]]) -> Any:
        def run(data: Data) -> dict[str, Any]:
            data["profile"] = change(data.get("profile"))
            return dict(data["profile"])

        return self.backend.mutate(AGENT_PARTITION, run)

    def client(self, service: str) -> ClientRecord | None:
        entry = self.backend.read(AGENT_PARTITION).get("clients", {}).get(service_key(service))
        return ClientRecord.from_dict(entry) if isinstance(entry, dict) else None

    def clients(self) -> list[ClientRecord]:
        entries = self.backend.read(AGENT_PARTITION).get("clients", {})
        return [ClientRecord.from_dict(e) for _, e in sorted(entries.items())]

    def save_client(self, record: ClientRecord) -> None:
        record.service = service_key(record.service)

        def change(data: Data) -> None:
            data.setdefault("clients", {})[record.service] = record.to_dict()

        self.backend.mutate(AGENT_PARTITION, change)

    def delete_client(self, service: str) -> bool:
        def change(data: Data) -> bool:
            return data.setdefault("clients", {}).pop(service_key(service), None) is not None

        return self.backend.mutate(AGENT_PARTITION, change)

    # -- grants (per end user) ----------------------------------------------------------

    def grants(self, user: str = DEFAULT_USER) -> list[GrantRecord]:
        entries = self.backend.read(_user(user)).get("grants", {})
        return [GrantRecord.from_dict(e) for _, e in sorted(entries.items())]

    def find_grant(
        self, provider_id: str, *, service: str | None = None, user: str = DEFAULT_USER
    ) -> GrantRecord | None:
        """The grant for ``provider_id`` (at ``service`` if given); ``None`` if absent.

        Raises ``LookupError`` when several services hold a grant for that provider id.
        """
        found = [
            g
            for g in self.grants(user)
            if g.provider_id == provider_id
            and (service is None or service_key(g.service) == service_key(service))
        ]
        if len(found) > 1:
            raise LookupError(f"several services hold a grant for {provider_id!r}; name one")
        return found[0] if found else None

    def save_grant(self, grant: GrantRecord, *, user: str = DEFAULT_USER) -> None:
        grant.service = service_key(grant.service)

        def change(data: Data) -> None:
            data.setdefault("grants", {})[grant.key] = grant.to_dict()

        self.backend.mutate(_user(user), change)

    def delete_grant(self, grant: GrantRecord, *, user: str = DEFAULT_USER) -> bool:
        def change(data: Data) -> bool:
            return data.setdefault("grants", {}).pop(grant.key, None) is not None

        return self.backend.mutate(_user(user), change)

    def mutate_grant(
        self,
        key: str,
        change: Callable[[GrantRecord | None], GrantRecord | None],
        *,
        user: str = DEFAULT_USER,
    ) -> GrantRecord | None:
        """Read, change and write one grant with no other writer in between (refresh)."""

        def run(data: Data) -> GrantRecord | None:
            grants = data.setdefault("grants", {})
            current = grants.get(key)
            result = change(GrantRecord.from_dict(current) if isinstance(current, dict) else None)
            if result is None:
                grants.pop(key, None)
            else:
                grants[key] = result.to_dict()
            return result

        return self.backend.mutate(_user(user), run)

    # -- pending consents ----------------------------------------------------------------

    def save_pending(self, pending: PendingAuthorization, *, user: str = DEFAULT_USER) -> None:
        now = time.time()

        def change(data: Data) -> None:
            entries = data.setdefault("pending", {})
            for sid, entry in list(entries.items()):
                if PendingAuthorization.from_dict(entry).expired(now):
                    del entries[sid]
            entries[pending.ath_session_id] = pending.to_dict()

        self.backend.mutate(_user(user), change)

    def pending(self, user: str = DEFAULT_USER) -> list[PendingAuthorization]:
        entries = self.backend.read(_user(user)).get("pending", {})
        found = [PendingAuthorization.from_dict(e) for e in entries.values()]
        return sorted((p for p in found if not p.expired()), key=lambda p: p.created_at)

    def drop_pending(self, ath_session_id: str, *, user: str = DEFAULT_USER) -> None:
        def change(data: Data) -> None:
            data.setdefault("pending", {}).pop(ath_session_id, None)

        self.backend.mutate(_user(user), change)

    # -- user pre-authorization credentials and handshake sessions (§10) -----------------

    def add_user_credential(
        self, service: str, signed: Any, *, user: str = DEFAULT_USER
    ) -> None:
        """Keep a user-signed credential (``SignedCredential`` or its dict) for ``service``."""
        entry = signed.to_dict() if hasattr(signed, "to_dict") else dict(signed)
        now = time.time()

        def change(data: Data) -> None:
            creds = data.setdefault("credentials", {})
            alive = [
                e
                for e in creds.get(service_key(service), [])
                if e != entry and int(e.get("credential", {}).get("expires_at") or 0) > now
            ]
            creds[service_key(service)] = [*alive, entry]

        self.backend.mutate(_user(user), change)

    def find_user_credential(
        self,
        service: str,
        *,
        scopes: list[str] | None = None,
        client_did: str | None = None,
        user: str = DEFAULT_USER,
    ) -> dict[str, Any] | None:
        """The unexpired credential covering ``scopes`` that expires last, or ``None``."""
        now = time.time()
        best: dict[str, Any] | None = None
        for entry in self.backend.read(_user(user)).get("credentials", {}).get(
            service_key(service), []
        ):
            cred = entry.get("credential") if isinstance(entry, dict) else None
            if not isinstance(cred, dict) or int(cred.get("expires_at") or 0) <= now:
                continue
            if client_did is not None and cred.get("client_did") != client_did:
                continue
            if scopes is not None and not set(scopes) <= set(cred.get("scopes") or []):
                continue
            if best is None or cred["expires_at"] > best["credential"]["expires_at"]:
                best = entry
        return best

    def save_handshake(
        self, service: str, session: dict[str, Any], *, user: str = DEFAULT_USER
    ) -> None:
        """Keep a completed handshake's exported session (token, expiry, restrictions)."""

        def change(data: Data) -> None:
            data.setdefault("handshakes", {})[service_key(service)] = session

        self.backend.mutate(_user(user), change)

    def handshake(self, service: str, *, user: str = DEFAULT_USER) -> dict[str, Any] | None:
        entry = self.backend.read(_user(user)).get("handshakes", {}).get(service_key(service))
        return dict(entry) if isinstance(entry, dict) else None

    def users(self) -> list[str]:
        return [p[5:] for p in self.backend.partitions() if p.startswith("user:")]

    # -- migration from the plain JSON files of earlier releases ------------------------

    def migrate_plain_files(self, credentials: Path, user_credentials: Path) -> list[Path]:
        """Import the old plain ``credentials.json`` / ``user_credentials.json`` once, then
        delete them (they held secrets in clear text). Returns the files imported."""
        done: list[Path] = []
        if credentials.is_file():
            raw = json.loads(credentials.read_text(encoding="utf-8"))
            for service, entry in (raw.items() if isinstance(raw, dict) else []):
                if isinstance(entry, dict) and self.client(service) is None:
                    self.save_client(
                        ClientRecord(
                            service=service,
                            client_id=str(entry["client_id"]),
                            client_secret=str(entry["client_secret"]),
                            agent_id=str(entry["agent_id"]),
                        )
                    )
            credentials.unlink()
            done.append(credentials)
        if user_credentials.is_file():
            raw = json.loads(user_credentials.read_text(encoding="utf-8"))
            for service, entries in (raw.items() if isinstance(raw, dict) else []):
                for entry in entries if isinstance(entries, list) else []:
                    if isinstance(entry, dict):
                        self.add_user_credential(service, entry)
            user_credentials.unlink()
            done.append(user_credentials)
        return done

    def describe(self) -> dict[str, str]:
        return self.backend.describe()


def default_vault(
    path: str | Path | None = None, *, prompt: PassphrasePrompt | None = None
) -> Vault:
    """The encrypted file vault (``default_vault_path()`` unless ``path``), after importing
    the plain JSON credential files of earlier releases found beside it."""
    target = Path(path) if path is not None else default_vault_path()
    vault = Vault(FileBackend(target, KeySource(prompt)))
    legacy = target.parent
    old, old_users = legacy / "credentials.json", legacy / "user_credentials.json"
    if old.is_file() or old_users.is_file():
        vault.migrate_plain_files(old, old_users)
    return vault

"""The credential vault: sealed at rest, 0600, one store for every secret, safe under
concurrent writers (threads and processes), memory and SQL backends, migration of plain files."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from athkit.client.credentials import CredentialStore, StoredCredentials, UserCredentialStore
from athkit.client.vault import (
    KEY_ENV,
    PASSPHRASE_ENV,
    ClientRecord,
    FileBackend,
    GrantRecord,
    KeySource,
    MemoryBackend,
    Vault,
    VaultError,
    VaultLockedError,
    default_vault,
)
from athkit.client.vault.sealing import usable_keyring
from athkit.client.vault.sql import SQLBackend
from tests.agent.conftest import AgentHome

SECRET = "cs_" + "s3cr3t" * 6
TOKEN = "ath_tok_" + "x" * 40


def _grant(provider: str = "ath-shop", token: str = TOKEN, **kw: Any) -> GrantRecord:
    fields: dict[str, Any] = {
        "service": "http://127.0.0.1:9/",
        "provider_id": provider,
        "scopes": ["products:read"],
        "access_token": token,
        "expires_at": time.time() + 3600,
        "agent_id": "http://127.0.0.1:1/.well-known/agent.json",
    }
    fields.update(kw)
    return GrantRecord(**fields)


def _fill(vault: Vault) -> None:
    vault.save_client(
        ClientRecord("http://127.0.0.1:9", "ath_client", SECRET, "http://a/.well-known/agent.json")
    )
    vault.save_grant(_grant(refresh_token="rt_" + "r" * 30), user="alice")


def test_file_vault_is_sealed_and_private(agent_home: AgentHome) -> None:
    vault = default_vault()
    _fill(vault)
    raw = agent_home.vault_path.read_bytes()
    assert SECRET.encode() not in raw and TOKEN.encode() not in raw and b"rt_rrr" not in raw
    assert stat.S_IMODE(agent_home.vault_path.stat().st_mode) == 0o600
    envelope = json.loads(raw)
    assert envelope["format"] == "athkit-vault" and envelope["key_source"] == "env"
    # another process (a new object) with the same key reads everything back
    again = default_vault()
    assert again.client("http://127.0.0.1:9/").client_secret == SECRET  # type: ignore[union-attr]
    [grant] = again.grants("alice")
    assert grant.access_token == TOKEN and grant.refreshable is False  # no token endpoint
    assert again.grants("bob") == []
    assert "ATHKIT_VAULT_KEY" in again.describe()["encryption"]


def test_wrong_key_or_passphrase_refuses(agent_home: AgentHome, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple")
    path = agent_home.config / "pp.json"
    _fill(default_vault(path))
    header = json.loads(path.read_bytes())
    assert header["key_source"] == "passphrase" and header["kdf"]["name"] == "scrypt"
    assert "passphrase (scrypt)" in default_vault(path).describe()["encryption"]
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong horse")
    with pytest.raises(VaultLockedError, match="wrong key or passphrase"):
        default_vault(path).grants("alice")
    monkeypatch.delenv(PASSPHRASE_ENV)
    with pytest.raises(VaultLockedError, match=PASSPHRASE_ENV):
        default_vault(path).grants("alice")
    # a prompt (the CLI asks on a terminal) opens it too
    vault = Vault(FileBackend(path, KeySource(prompt=lambda creating: "correct horse battery staple")))
    assert vault.grants("alice")[0].access_token == TOKEN


def test_tampered_vault_is_an_error_not_a_crash(agent_home: AgentHome) -> None:
    _fill(default_vault())
    data = json.loads(agent_home.vault_path.read_bytes())
    data["key_source"] = "passphrase"  # header is associated data: any change breaks the tag
    agent_home.vault_path.write_text(json.dumps(data))
    with pytest.raises(VaultError):
        default_vault().grants("alice")
    agent_home.vault_path.write_text("{not json")
    with pytest.raises(VaultError, match="not a sealed athkit vault"):
        default_vault().grants("alice")


def test_no_key_anywhere_says_what_to_set(agent_home: AgentHome, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import keyring
    from keyring.backends import fail

    monkeypatch.delenv(KEY_ENV)
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())  # as on a server with no Secret Service / keychain
    try:
        assert usable_keyring() is None
        with pytest.raises(VaultLockedError, match=f"{PASSPHRASE_ENV}.*{KEY_ENV}"):
            _fill(default_vault())
        assert not agent_home.vault_path.exists()
    finally:
        keyring.set_keyring(previous)


class _MemoryKeyring:
    """Stands in for the OS keyring (no Secret Service/D-Bus on this machine): the keyring
    package's own backend API, holding passwords in a dict."""

    def __init__(self) -> None:
        from keyring.backend import KeyringBackend

        class Backend(KeyringBackend):
            priority = 5  # type: ignore[assignment]
            store: dict[tuple[str, str], str] = {}

            def get_password(self, service: str, username: str) -> str | None:
                return self.store.get((service, username))

            def set_password(self, service: str, username: str, password: str) -> None:
                self.store[(service, username)] = password

            def delete_password(self, service: str, username: str) -> None:
                self.store.pop((service, username), None)

        self.backend = Backend()


def test_keyring_key_when_a_backend_exists(agent_home: AgentHome, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import keyring

    monkeypatch.delenv(KEY_ENV)
    previous = keyring.get_keyring()
    fake = _MemoryKeyring().backend
    keyring.set_keyring(fake)
    try:
        _fill(default_vault())
        assert json.loads(agent_home.vault_path.read_bytes())["key_source"] == "keyring"
        assert len(fake.store) == 1  # one random key, stored under the vault's path
        assert "OS keyring" in default_vault().describe()["encryption"]
        assert default_vault().grants("alice")[0].access_token == TOKEN
        fake.store.clear()
        with pytest.raises(VaultLockedError, match="keyring holds no key"):
            default_vault().grants("alice")
    finally:
        keyring.set_keyring(previous)


def test_plain_json_files_are_migrated_once(agent_home: AgentHome) -> None:
    folder = agent_home.config / "athkit"
    CredentialStore(folder / "credentials.json").save(
        "http://127.0.0.1:9", StoredCredentials("ath_old", SECRET, "http://a/agent.json")
    )
    cred = {"credential": {"client_did": "did:key:z", "scopes": ["a"],
                           "expires_at": int(time.time()) + 600}, "signature": "sig"}
    UserCredentialStore(folder / "user_credentials.json").add("http://127.0.0.1:9", cred)
    vault = default_vault()
    assert not (folder / "credentials.json").exists()  # plain secrets are gone from disk
    assert not (folder / "user_credentials.json").exists()
    assert vault.client("http://127.0.0.1:9").client_id == "ath_old"  # type: ignore[union-attr]
    found = vault.find_user_credential("http://127.0.0.1:9", scopes=["a"])
    assert found == cred
    assert SECRET.encode() not in agent_home.vault_path.read_bytes()


def _writer(path: str, key: str, who: int, count: int, start: float) -> None:
    os.environ[KEY_ENV] = key
    vault = Vault(FileBackend(path))
    while time.time() < start:
        time.sleep(0.001)
    for i in range(count):
        vault.save_grant(_grant(provider=f"p{who}-{i}", token=f"t{who}-{i}"), user="alice")


def test_concurrent_processes_lose_no_write(agent_home: AgentHome) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = time.time() + 2.0
    procs = [
        ctx.Process(
            target=_writer,
            args=(str(agent_home.vault_path), agent_home.env[KEY_ENV], who, 15, start),
        )
        for who in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    grants = default_vault().grants("alice")
    assert sorted(g.provider_id for g in grants) == sorted(
        f"p{w}-{i}" for w in range(3) for i in range(15)
    )


def test_memory_backend_partitions_users() -> None:
    vault = Vault(MemoryBackend())
    _fill(vault)
    vault.save_grant(_grant(token="bob-token"), user="bob")
    assert sorted(vault.users()) == ["alice", "bob"]
    assert vault.grants("bob")[0].access_token == "bob-token"
    assert vault.grants("alice")[0].access_token == TOKEN
    assert vault.describe()["kind"] == "memory"


def _sql_counter(url: str, rounds: int) -> None:
    import threading

    backend = SQLBackend(url)
    vault = Vault(backend)

    def bump() -> None:
        for _ in range(rounds):
            backend.mutate("user:carol", lambda d: d.__setitem__("n", d.get("n", 0) + 1))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert backend.read("user:carol")["n"] == 4 * rounds
    _fill(vault)
    vault.save_grant(_grant(token="dave-token"), user="dave")
    assert set(backend.partitions()) >= {"agent", "user:alice", "user:carol", "user:dave"}
    assert vault.grants("dave")[0].access_token == "dave-token"
    with backend.engine.connect() as conn:
        rows = conn.execute(backend.table.select()).fetchall()
    assert all(TOKEN.encode() not in bytes(r.envelope) for r in rows)  # sealed per row


def test_sql_vault_sqlite(agent_home: AgentHome, tmp_path: Path) -> None:
    _sql_counter(f"sqlite:///{tmp_path / 'vault.db'}", 10)


def test_sql_vault_postgres(agent_home: AgentHome, pg_url: str) -> None:
    _sql_counter(pg_url, 10)

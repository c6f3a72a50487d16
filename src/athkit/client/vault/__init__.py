"""The agent's credential vault: registrations, tokens, consents, user credentials, sessions.

``default_vault()`` is an AES-256-GCM sealed file (mode 0600) under the user's config
directory, safe for several processes at once; ``Vault(MemoryBackend())`` keeps everything in
memory (servers, tests); ``Vault(SQLBackend(url))`` keeps one sealed row per end user
(``athkit.client.vault.sql``, needs the ``vault-sql`` extra).
"""

from athkit.client.vault.backends import FileBackend, MemoryBackend, VaultBackend
from athkit.client.vault.records import ClientRecord, GrantRecord, PendingAuthorization
from athkit.client.vault.refresh import (
    ReauthorizationNeeded,
    RefreshFailed,
    ensure_fresh,
    oauth_refresher,
)
from athkit.client.vault.sealing import (
    KEY_ENV,
    PASSPHRASE_ENV,
    KeySource,
    VaultError,
    VaultLockedError,
    generate_env_key,
)
from athkit.client.vault.vault import (
    DEFAULT_USER,
    Vault,
    config_dir,
    default_vault,
    default_vault_path,
)

__all__ = [
    "DEFAULT_USER",
    "KEY_ENV",
    "PASSPHRASE_ENV",
    "ClientRecord",
    "FileBackend",
    "GrantRecord",
    "KeySource",
    "MemoryBackend",
    "PendingAuthorization",
    "ReauthorizationNeeded",
    "RefreshFailed",
    "Vault",
    "VaultBackend",
    "VaultError",
    "VaultLockedError",
    "config_dir",
    "default_vault",
    "default_vault_path",
    "ensure_fresh",
    "generate_env_key",
    "oauth_refresher",
]

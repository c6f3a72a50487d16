"""Where a vault's data lives: one JSON object per *partition* (the agent, or one end user).

Every backend offers the same three calls: :meth:`read` a partition, :meth:`mutate` it
atomically (read, change, write, with no other writer in between, across threads and
processes), and list :meth:`partitions`. :class:`MemoryBackend` is for servers that keep
nothing on disk; :class:`FileBackend` is the encrypted file of a developer's machine; the SQL
backend (one row per end user) is in :mod:`athkit.client.vault.sql`.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from filelock import FileLock, Timeout

from athkit.client.vault.sealing import (
    KeySource,
    VaultError,
    read_header,
    seal,
    unseal,
)

T = TypeVar("T")
Data = dict[str, Any]
FILE_MODE = 0o600
#: How long a writer waits for another process holding the vault lock.
LOCK_TIMEOUT = 30.0


class VaultBackend(Protocol):
    def read(self, partition: str) -> Data: ...

    def mutate(self, partition: str, change: Callable[[Data], T]) -> T: ...

    def partitions(self) -> list[str]: ...

    def describe(self) -> dict[str, str]: ...


class MemoryBackend:
    """Partitions in this process's memory (servers, tests); a lock serializes writers."""

    def __init__(self) -> None:
        self._data: dict[str, Data] = {}
        self._lock = threading.RLock()

    def read(self, partition: str) -> Data:
        with self._lock:
            return copy.deepcopy(self._data.get(partition, {}))

    def mutate(self, partition: str, change: Callable[[Data], T]) -> T:
        with self._lock:
            data = copy.deepcopy(self._data.get(partition, {}))
            result = change(data)
            self._data[partition] = data
            return result

    def partitions(self) -> list[str]:
        with self._lock:
            return sorted(self._data)

    def describe(self) -> dict[str, str]:
        return {"kind": "memory", "location": "this process", "encryption": "none (in memory)"}


class FileBackend:
    """One AES-GCM sealed file (mode 0600) holding every partition.

    Writers take an exclusive lock file (``filelock``) next to the vault, re-read the current
    file under it, and replace it atomically (``os.replace`` of a 0600 temp file), so two
    processes changing the vault at once never lose each other's change or leave half a file.
    """

    def __init__(self, path: str | Path, keys: KeySource | None = None) -> None:
        self.path = Path(path)
        self.keys = keys or KeySource()
        self._lock = FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT, mode=FILE_MODE)
        self._thread_lock = threading.RLock()

    @property
    def vault_id(self) -> str:
        return str(self.path.resolve())

    # -- sealed document ----------------------------------------------------------------

    def _load(self, *, creating: bool = False) -> tuple[dict[str, Any] | None, dict[str, Data]]:
        try:
            envelope = self.path.read_bytes()
        except FileNotFoundError:
            return None, {}
        header = read_header(envelope)
        key = self.keys.key_for(header, self.vault_id, creating=creating)
        try:
            doc = json.loads(unseal(envelope, key))
        except ValueError as exc:
            raise VaultError("the vault's content is damaged") from exc
        parts = doc.get("partitions") if isinstance(doc, dict) else None
        if not isinstance(parts, dict):
            raise VaultError("the vault's content is damaged")
        return header, parts

    def _store(self, header: dict[str, Any], parts: dict[str, Data]) -> None:
        key = self.keys.key_for(header, self.vault_id, creating=True)
        plaintext = json.dumps({"partitions": parts}, sort_keys=True).encode()
        envelope = seal(header, key, plaintext)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".vault-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(envelope)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- backend API --------------------------------------------------------------------

    def read(self, partition: str) -> Data:
        _, parts = self._load()
        return copy.deepcopy(parts.get(partition, {}))

    def mutate(self, partition: str, change: Callable[[Data], T]) -> T:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._thread_lock:
            try:
                with self._lock:
                    header, parts = self._load(creating=True)
                    if header is None:
                        header = self.keys.new_header(self.keys.choose())
                    data = copy.deepcopy(parts.get(partition, {}))
                    result = change(data)
                    parts[partition] = data
                    self._store(header, parts)
                    return result
            except Timeout as exc:
                busy = f"another process holds the vault lock ({self._lock.lock_file})"
                raise VaultError(busy) from exc

    def partitions(self) -> list[str]:
        return sorted(self._load()[1])

    def key_source(self) -> str | None:
        try:
            return str(read_header(self.path.read_bytes()).get("key_source"))
        except FileNotFoundError:
            return None

    def describe(self) -> dict[str, str]:
        source = self.key_source()
        if source is None:
            try:
                source = self.keys.choose()
                pending = " (when first written)"
            except VaultError as exc:
                return {"kind": "file", "location": str(self.path), "encryption": str(exc)}
        else:
            pending = ""
        text = "AES-256-GCM with " + self.keys.describe(source) + pending
        return {"kind": "file", "location": str(self.path), "encryption": text}

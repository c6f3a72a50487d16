"""The registry's database: the shared :class:`~athkit.store.db.Database` engine set-up with
the registry's own Alembic environment (version table ``registry_alembic_version``)."""

from __future__ import annotations

from pathlib import Path

from athkit.store.db import Database, default_sqlite_url


def default_registry_url(data_dir: str | Path) -> str:
    return default_sqlite_url(data_dir, "registry.db")


class RegistryDatabase(Database):
    """A :class:`Database` upgraded with the registry's own migrations."""

    MIGRATIONS = str(Path(__file__).parent / "migrations")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

"""The registry's database: the shared :class:`~athkit.store.db.Database` engine set-up with
the registry's own Alembic environment (version table ``registry_alembic_version``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from athkit.store.db import Database

_MIGRATIONS = str(Path(__file__).parent / "migrations")
_migrate_lock = threading.Lock()


def default_registry_url(data_dir: str | Path) -> str:
    path = Path(data_dir).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / 'registry.db'}"


def registry_alembic_config(connection: Any = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", _MIGRATIONS)
    cfg.attributes["connection"] = connection
    return cfg


class RegistryDatabase(Database):
    """A :class:`Database` whose migrations are the registry's."""

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self) -> None:
        with _migrate_lock, self.engine.begin() as conn:
            command.upgrade(registry_alembic_config(conn), "head")

"""Persistence: SQLAlchemy 2 models, repositories and Alembic migrations.

SQLite under the data dir by default; any ``postgresql+psycopg://`` URL works the same.
"""

# Tables kept in modules of their own, imported so that Base.metadata knows every table.
from athkit.store import operators as _operators  # noqa: E402, F401
from athkit.store import provider_versions as _provider_versions  # noqa: E402, F401
from athkit.store.db import Database
from athkit.store.repositories import Store

__all__ = ["Database", "Store"]

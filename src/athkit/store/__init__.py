"""Persistence: SQLAlchemy 2 models, repositories and Alembic migrations.

SQLite under the data dir by default; any ``postgresql+psycopg://`` URL works the same.
"""

from athkit.store.db import Database
from athkit.store.repositories import Store

__all__ = ["Database", "Store"]

"""Alembic environment of the registry: own metadata, own version table.

Always run with a connection handed in by :class:`athkit.registry.db.RegistryDatabase`; the
version table is ``registry_alembic_version`` so a registry can share a database with an ATH
service without the two migration histories meeting.
"""

from __future__ import annotations

from alembic import context

from athkit.registry.models import metadata

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table="registry_alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

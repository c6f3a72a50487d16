"""registry: operator accounts and sessions (athkit admin create-operator --registry)

Revision ID: r0003
Revises: r0002
Create Date: 2026-12-01 09:30:00
"""

from __future__ import annotations

from athkit.store.migrations.operator_tables import create_operator_tables, drop_operator_tables

revision = "r0003"
down_revision = "r0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_operator_tables()


def downgrade() -> None:
    drop_operator_tables()

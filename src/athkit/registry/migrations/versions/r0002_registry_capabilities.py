"""registry: capability fields per entry (scope descriptions, operations, example intents)

Entries embedded by the previous scheme (one float32 vector of name, description and categories)
keep their rows; the registry re-embeds them under the new model tag when it starts.

Revision ID: r0002
Revises: r0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0002"
down_revision = "r0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registry_entries") as batch:
        batch.add_column(sa.Column("capabilities", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("registry_entries") as batch:
        batch.drop_column("capabilities")

"""Agents: who took the last decision (policy or operator) and why

Revision ID: 0005_agent_decisions
Revises: 0004_oauth
Create Date: 2026-12-01 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_agent_decisions"
down_revision = "0004_oauth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ath_agents") as b:
        b.add_column(
            sa.Column("decided_by", sa.String(length=16), nullable=False, server_default="policy")
        )
        b.add_column(sa.Column("decision_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ath_agents") as b:
        b.drop_column("decision_reason")
        b.drop_column("decided_by")

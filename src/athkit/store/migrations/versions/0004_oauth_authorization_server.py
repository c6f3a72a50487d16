"""OAuth 2.1 authorization server: client kinds, client PKCE, token audience, refresh tokens

Revision ID: 0004_oauth
Revises: 0003
Create Date: 2026-12-01 09:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_oauth"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ath_agents") as b:
        b.add_column(
            sa.Column("client_kind", sa.String(length=16), nullable=False, server_default="ath")
        )
        b.add_column(sa.Column("token_endpoint_auth_method", sa.String(length=32), nullable=True))
        b.add_column(sa.Column("client_metadata", sa.JSON(), nullable=True))
    with op.batch_alter_table("ath_sessions") as b:
        b.add_column(sa.Column("client_code_challenge", sa.String(length=128), nullable=True))
        b.create_index("ix_ath_sessions_agent_code_hash", ["agent_code_hash"])
    with op.batch_alter_table("ath_tokens") as b:
        b.add_column(sa.Column("audience", sa.String(length=2048), nullable=True))
        b.add_column(
            sa.Column("agent_bound", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        b.add_column(sa.Column("family_id", sa.String(length=64), nullable=True))
        b.create_index("ix_ath_tokens_family_id", ["family_id"])
    op.create_table(
        "ath_refresh_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=2048), nullable=False),
        sa.Column("user_id", sa.String(length=512), nullable=False),
        sa.Column("provider_id", sa.String(length=512), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("audience", sa.String(length=2048), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("family_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_ath_refresh_tokens_family_id", "ath_refresh_tokens", ["family_id"])
    op.create_index("ix_ath_refresh_tokens_client_id", "ath_refresh_tokens", ["client_id"])


def downgrade() -> None:
    op.drop_index("ix_ath_refresh_tokens_client_id", table_name="ath_refresh_tokens")
    op.drop_index("ix_ath_refresh_tokens_family_id", table_name="ath_refresh_tokens")
    op.drop_table("ath_refresh_tokens")
    with op.batch_alter_table("ath_tokens") as b:
        b.drop_index("ix_ath_tokens_family_id")
        b.drop_column("family_id")
        b.drop_column("agent_bound")
        b.drop_column("audience")
    with op.batch_alter_table("ath_sessions") as b:
        b.drop_index("ix_ath_sessions_agent_code_hash")
        b.drop_column("client_code_challenge")
    with op.batch_alter_table("ath_agents") as b:
        b.drop_column("client_metadata")
        b.drop_column("token_endpoint_auth_method")
        b.drop_column("client_kind")

"""the 9-step handshake: handshakes, confirmations, sessions, user keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ath_handshakes",
        sa.Column("handshake_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("client_did", sa.String(length=2048), nullable=False),
        sa.Column("client_pubkey", sa.JSON(), nullable=False),
        sa.Column("server_did", sa.String(length=2048), nullable=False),
        sa.Column("version", sa.String(length=16), nullable=False),
        sa.Column("nonce_a", sa.String(length=128), nullable=False),
        sa.Column("nonce_b", sa.String(length=128), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("requested_scopes", sa.JSON(), nullable=True),
        sa.Column("requested_ttl", sa.Integer(), nullable=True),
        sa.Column("context", sa.JSON(), nullable=True),
        sa.Column("credentials", sa.JSON(), nullable=True),
        sa.Column("user_did", sa.String(length=2048), nullable=True),
        sa.Column("credential_scopes", sa.JSON(), nullable=True),
        sa.Column("credential_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("scope_result", sa.JSON(), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("handshake_id"),
    )
    op.create_index("ix_ath_handshakes_expires_at", "ath_handshakes", ["expires_at"])
    op.create_table(
        "ath_confirmations",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("handshake_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("user_did", sa.String(length=2048), nullable=False),
        sa.Column("client_did", sa.String(length=2048), nullable=False),
        sa.Column("client_info", sa.JSON(), nullable=False),
        sa.Column("requested_scopes", sa.JSON(), nullable=False),
        sa.Column("approved_scopes", sa.JSON(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
        sa.UniqueConstraint("handshake_id"),
    )
    op.create_index("ix_ath_confirmations_user_did", "ath_confirmations", ["user_did"])
    op.create_table(
        "ath_handshake_sessions",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("handshake_id", sa.String(length=64), nullable=False),
        sa.Column("client_did", sa.String(length=2048), nullable=False),
        sa.Column("user_did", sa.String(length=2048), nullable=False),
        sa.Column("account", sa.String(length=512), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("restrictions", sa.JSON(), nullable=False),
        sa.Column("sealed_keys", sa.Text(), nullable=False),
        sa.Column("last_seq_c2s", sa.BigInteger(), nullable=False),
        sa.Column("rate_window", sa.BigInteger(), nullable=False),
        sa.Column("rate_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("session_id"),
        sa.UniqueConstraint("handshake_id"),
    )
    op.create_table(
        "ath_user_keys",
        sa.Column("user_did", sa.String(length=2048), nullable=False),
        sa.Column("account", sa.String(length=512), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_did"),
    )
    op.create_index("ix_ath_user_keys_account", "ath_user_keys", ["account"])


def downgrade() -> None:
    op.drop_index("ix_ath_user_keys_account", table_name="ath_user_keys")
    op.drop_table("ath_user_keys")
    op.drop_table("ath_handshake_sessions")
    op.drop_index("ix_ath_confirmations_user_did", table_name="ath_confirmations")
    op.drop_table("ath_confirmations")
    op.drop_index("ix_ath_handshakes_expires_at", table_name="ath_handshakes")
    op.drop_table("ath_handshakes")

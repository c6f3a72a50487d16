"""Operator tables, created by the core's migration 0005 and the registry's r0003 alike."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def create_operator_tables() -> None:
    op.create_table(
        "ath_operators",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=False),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "ath_operator_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("operator", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_ath_operator_sessions_operator", "ath_operator_sessions", ["operator"])


def drop_operator_tables() -> None:
    op.drop_table("ath_operator_sessions")
    op.drop_table("ath_operators")

"""Operator tables, created by the core's migration 0006 and the registry's r0003 alike.

A deployment may keep the gateway and the registry in one database: whichever migration runs
second finds the tables there (same definition) and leaves them, so both share the accounts.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def create_operator_tables() -> None:
    if sa.inspect(op.get_bind()).has_table("ath_operators"):
        return
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
    """Drops them (in a shared database this removes the accounts for both)."""
    op.drop_table("ath_operator_sessions")
    op.drop_table("ath_operators")

"""operator accounts and sessions, provider versions, audit event names of the ATH guidance

Revision ID: 0006
Revises: 0005_agent_decisions
Create Date: 2026-12-01 09:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from athkit.store.migrations.operator_tables import create_operator_tables, drop_operator_tables

revision = "0006"
down_revision = "0005_agent_decisions"
branch_labels = None
depends_on = None

# Frozen copy of the renaming at the time of this migration (athkit.core.audit_events.LEGACY):
# (old event, outcome or None for any) -> new event.
_RENAMES = [
    ("agent.register", "denied", "agent_registration_denied"),
    ("agent.register", None, "agent_registered"),
    ("agent.decision", "approved", "agent_approved"),
    ("agent.decision", "denied", "agent_registration_denied"),
    ("agent.decision", "suspended", "agent_suspended"),
    ("authorize", "refused", "access_denied"),
    ("authorize", None, "authorization_started"),
    ("consent", "denied", "access_denied"),
    ("consent", None, "consent_granted"),
    ("token.issue", None, "access_granted"),
    ("token.revoke", None, "token_revoked"),
    ("upstream.exchange", None, "upstream_exchange_failed"),
    ("upstream.refresh", None, "upstream_refresh"),
    ("upstream.revoke", None, "upstream_revoke_failed"),
    ("user.sign_in", None, "user_signed_in"),
    ("user.key_link", None, "user_key_linked"),
]


def upgrade() -> None:
    create_operator_tables()
    op.create_table(
        "ath_provider_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("sealed_secret", sa.Text(), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("operator", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_ath_provider_versions_provider_id", "ath_provider_versions", ["provider_id"]
    )
    op.create_index("ix_ath_audit_event_time", "ath_audit", ["event", "timestamp"])
    op.create_index("ix_ath_audit_time", "ath_audit", ["timestamp"])
    audit = sa.table("ath_audit", sa.column("event", sa.String), sa.column("outcome", sa.String))
    for old, outcome, new in _RENAMES:
        cond = audit.c.event == old
        if outcome is not None:
            cond = sa.and_(cond, audit.c.outcome == outcome)
        op.execute(audit.update().where(cond).values(event=new))
    op.execute(
        audit.update()
        .where(audit.c.event.like("handshake.%"))
        .values(event=sa.func.replace(audit.c.event, ".", "_"))
    )


def downgrade() -> None:
    op.drop_index("ix_ath_audit_time", table_name="ath_audit")
    op.drop_index("ix_ath_audit_event_time", table_name="ath_audit")
    op.drop_table("ath_provider_versions")
    drop_operator_tables()

"""registry: listings, entries, meta and the keyword index

Revision ID: r0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_listings",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("origin", sa.String(512), nullable=False),
        sa.Column("document_url", sa.String(2048), nullable=False),
        sa.Column("protocol", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("submitted_description", sa.Text(), nullable=True),
        sa.Column("submitted_categories", sa.Text(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_registry_listings_origin", "registry_listings", ["origin"], unique=True)
    op.create_index("ix_registry_listings_status", "registry_listings", ["status"])
    op.create_table(
        "registry_entries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "listing_id",
            sa.String(40),
            sa.ForeignKey("registry_listings.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("provider_id", sa.String(256), nullable=True),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("issuer", sa.String(2048), nullable=False),
        sa.Column("protocol", sa.String(32), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("embedding_model", sa.String(128), nullable=True),
    )
    op.create_index("ix_registry_entries_listing_id", "registry_entries", ["listing_id"])
    op.create_table(
        "registry_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("text_value", sa.Text(), nullable=True),
        sa.Column("int_value", sa.Integer(), nullable=False),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        # BM25 over name, description, categories and scopes; rowid = registry_entries.id.
        op.execute(
            "CREATE VIRTUAL TABLE registry_entries_fts USING fts5("
            "name, description, categories, scopes, tokenize='porter unicode61')"
        )
    elif dialect == "postgresql":
        op.execute(
            "CREATE INDEX ix_registry_entries_tsv ON registry_entries "
            "USING gin (to_tsvector('english', search_text))"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TABLE IF EXISTS registry_entries_fts")
    op.drop_table("registry_meta")
    op.drop_table("registry_entries")
    op.drop_table("registry_listings")

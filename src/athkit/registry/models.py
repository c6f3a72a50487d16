"""The registry's tables, on their own SQLAlchemy metadata (separate from the ATH service's).

``registry_listings`` is the unit of ownership: one origin, its discovery document and the
state of its proof. ``registry_entries`` is the unit of search: one row per provider the
document describes (one for a service or an Agent Auth server, one per provider of a gateway).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

metadata = MetaData()


class RegistryBase(DeclarativeBase):
    metadata = metadata


class Listing(RegistryBase):
    __tablename__ = "registry_listings"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    origin: Mapped[str] = mapped_column(String(512), unique=True, index=True)
    document_url: Mapped[str] = mapped_column(String(2048))
    protocol: Mapped[str] = mapped_column(String(32))
    #: pending (awaiting proof), listed (searchable), delisted (dropped by re-validation)
    status: Mapped[str] = mapped_column(String(16), index=True)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    submitted_description: Mapped[str | None] = mapped_column(Text, nullable=True)
    submitted_categories: Mapped[str] = mapped_column(Text, default="[]")
    document: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class Entry(RegistryBase):
    __tablename__ = "registry_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    listing_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("registry_listings.id", ondelete="CASCADE"), index=True
    )
    provider_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    name: Mapped[str] = mapped_column(String(512))
    description: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(String(2048))
    issuer: Mapped[str] = mapped_column(String(2048))
    protocol: Mapped[str] = mapped_column(String(32))
    scopes: Mapped[str] = mapped_column(Text, default="[]")
    categories: Mapped[str] = mapped_column(Text, default="[]")
    search_text: Mapped[str] = mapped_column(Text)
    #: JSON ``{scope_descriptions, operations, examples}`` from the owner's document
    capabilities: Mapped[str] = mapped_column(Text, default="{}")
    #: float16 little-endian rows, L2-normalised: the main text, then one per phrase
    #: (``vectors.py``); NULL when no embedding model was available
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    embedding_model: Mapped[str | None] = mapped_column(String(128), nullable=True)


class Meta(RegistryBase):
    __tablename__ = "registry_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    text_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    int_value: Mapped[int] = mapped_column(Integer, default=0)

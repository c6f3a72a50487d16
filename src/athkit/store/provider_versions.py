"""Gateway providers changed at run time: every change is a new, numbered row (never an update).

The newest row per ``provider_id`` is that provider's live configuration (or, when ``disabled``,
its removal); the TOML file is only the bootstrap. Nodes poll :meth:`ProviderVersionStore.latest_id`
(one indexed ``max(id)``) and reload when it moves, so a change reaches every node without a
restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, mapped_column

from athkit.store.db import Database
from athkit.store.models import Base, UTCDateTime


class ProviderVersionRow(Base):
    """One version of one provider's configuration, as an operator saved it."""

    __tablename__ = "ath_provider_versions"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    provider_id: Mapped[str] = mapped_column(String(64), index=True)
    #: The provider's table exactly as the TOML would hold it (validated by ProviderConfig).
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The upstream client secret, sealed with the gateway keyring (None: read the env var).
    sealed_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    operator: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProviderVersionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, row: ProviderVersionRow) -> int:
        with self.db.transaction() as s:
            s.add(row)
            s.flush()
            return row.id

    def latest_id(self) -> int:
        with self.db.read() as s:
            return int(s.execute(select(func.max(ProviderVersionRow.id))).scalar() or 0)

    def current(self) -> Sequence[ProviderVersionRow]:
        """The newest row of every provider ever changed at run time, oldest provider first."""
        newest = (
            select(func.max(ProviderVersionRow.id))
            .group_by(ProviderVersionRow.provider_id)
            .scalar_subquery()
        )
        q = select(ProviderVersionRow).where(ProviderVersionRow.id.in_(newest))
        with self.db.read() as s:
            return s.scalars(q.order_by(ProviderVersionRow.id)).all()

    def history(self, provider_id: str, limit: int = 50) -> Sequence[ProviderVersionRow]:
        q = (
            select(ProviderVersionRow)
            .where(ProviderVersionRow.provider_id == provider_id)
            .order_by(ProviderVersionRow.id.desc())
            .limit(limit)
        )
        with self.db.read() as s:
            return s.scalars(q).all()

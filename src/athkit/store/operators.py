"""Operator accounts and their sign-in sessions (gateway, registry and, optionally, native).

Passwords are argon2id hashes (never the password); a session is a random token kept only as
its SHA-256 hash, so a database read gives no usable cookie. The tables live in whichever
database the deployment already has (the core's and the registry's migrations both create them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Boolean, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from athkit.store.db import Database
from athkit.store.models import Base, UTCDateTime


class OperatorRow(Base):
    """One person allowed into the operator console."""

    __tablename__ = "ath_operators"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    #: Base32 TOTP secret (RFC 6238) when two-factor sign-in is on. It cannot be hashed: it is
    #: needed to check each code. Protect the database (docs/deploy.md, "Backups").
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OperatorSessionRow(Base):
    """A signed-in operator: the cookie's SHA-256 hash, whose it is, until when."""

    __tablename__ = "ath_operator_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator: Mapped[str] = mapped_column(String(128), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OperatorExistsError(Exception):
    """An operator with that name already exists."""


class OperatorStore:
    """Operator rows and sessions; each method is one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, row: OperatorRow) -> None:
        try:
            with self.db.transaction() as s:
                s.add(row)
        except IntegrityError as exc:
            raise OperatorExistsError(row.name) from exc

    def set_password(self, name: str, password_hash: str, totp_secret: str | None) -> bool:
        with self.db.transaction() as s:
            row = s.get(OperatorRow, name)
            if row is None:
                return False
            row.password_hash = password_hash
            row.totp_secret = totp_secret
            s.execute(delete(OperatorSessionRow).where(OperatorSessionRow.operator == name))
            return True

    def get(self, name: str) -> OperatorRow | None:
        with self.db.read() as s:
            return s.get(OperatorRow, name)

    def all(self) -> Sequence[OperatorRow]:
        with self.db.read() as s:
            return s.scalars(select(OperatorRow).order_by(OperatorRow.name)).all()

    def add_session(self, row: OperatorSessionRow) -> None:
        with self.db.transaction() as s:
            s.add(row)

    def session_operator(self, token_hash: str, now: datetime) -> str | None:
        """The live, enabled operator behind a session hash, or None."""
        q = (
            select(OperatorSessionRow.operator)
            .join(OperatorRow, OperatorRow.name == OperatorSessionRow.operator)
            .where(
                OperatorSessionRow.token_hash == token_hash,
                OperatorSessionRow.expires_at > now,
                OperatorRow.disabled.is_(False),
            )
        )
        with self.db.read() as s:
            return s.execute(q).scalar_one_or_none()

    def end_session(self, token_hash: str) -> None:
        with self.db.transaction() as s:
            s.execute(delete(OperatorSessionRow).where(OperatorSessionRow.token_hash == token_hash))

    def purge_sessions(self, now: datetime) -> int:
        with self.db.transaction() as s:
            res = s.execute(delete(OperatorSessionRow).where(OperatorSessionRow.expires_at <= now))
            return int(res.rowcount)  # type: ignore[attr-defined]

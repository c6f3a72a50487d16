"""Deleting what has expired, so no table grows without bound (README "Operations").

Authorization sessions (with their codes), access and refresh tokens (a refresh token once its
whole family has expired), attestation replay entries and handshake nonces, handshakes, their
confirmations and sessions all carry an expiry. A row is
deleted once it is past its expiry by more than ``grace`` (so a late caller still hears
"expired" rather than "unknown" for a while). Agents, upstream grants (kept alive by refresh
tokens), user keys and the audit log are records, not leftovers, and are kept.

:class:`PeriodicPurge` runs :func:`purge_expired` every ``interval`` seconds in a daemon thread
(every node may run it: each DELETE is idempotent); ``athkit db purge`` runs it once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import InstrumentedAttribute

from athkit.store.db import Database
from athkit.store.models import (
    ConfirmationRow,
    HandshakeRow,
    HandshakeSessionRow,
    RefreshTokenRow,
    ReplayRow,
    SessionRow,
    TokenRow,
)

log = logging.getLogger("athkit.store.purge")

#: Table name → the column whose time, plus the grace, ends the row's life. Tables added by
#: later features append here.
EXPIRING: dict[str, InstrumentedAttribute[datetime]] = {
    "ath_sessions": SessionRow.expires_at,
    "ath_tokens": TokenRow.expires_at,
    # a refresh token goes with its family: a used one must stay to catch its replay
    "ath_refresh_tokens": RefreshTokenRow.family_expires_at,
    "ath_replay": ReplayRow.expires_at,
    "ath_handshakes": HandshakeRow.expires_at,
    "ath_confirmations": ConfirmationRow.expires_at,
    "ath_handshake_sessions": HandshakeSessionRow.expires_at,
}


def purge_expired(db: Database, now: datetime, grace: timedelta = timedelta(0)) -> dict[str, int]:
    """Delete every row past its expiry by more than ``grace``; rows deleted per table."""
    cutoff = now - grace
    counts: dict[str, int] = {}
    for table, column in EXPIRING.items():
        with db.transaction() as s:  # one table per transaction: short locks
            result = s.execute(delete(column.class_).where(column < cutoff))
            counts[table] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    return counts


class PeriodicPurge:
    """Runs :func:`purge_expired` every ``interval`` seconds until :meth:`stop`."""

    def __init__(
        self,
        db: Database,
        *,
        interval: float,
        grace: timedelta,
        now: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.interval = interval
        self.grace = grace
        self.now = now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="athkit-purge", daemon=True)

    def start(self) -> PeriodicPurge:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                counts = purge_expired(self.db, self.now(), self.grace)
            except Exception as exc:  # noqa: BLE001 - a failed purge is retried next time
                log.warning("purge of expired rows failed: %s", type(exc).__name__)
                continue
            if any(counts.values()):
                log.info("purged expired rows: %s", counts)

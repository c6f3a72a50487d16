"""Item 10: expired sessions, tokens, replay entries and handshakes are deleted, periodically by
the service and on demand by ``athkit db purge``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from athkit.core.service import ATHService
from athkit.core.settings import ATHSettings
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
from athkit.store.purge import EXPIRING, purge_expired

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MODELS = [
    SessionRow,
    TokenRow,
    RefreshTokenRow,
    ReplayRow,
    HandshakeRow,
    ConfirmationRow,
    HandshakeSessionRow,
]


def _row(model: type, key: str, expires: datetime) -> object:
    common = {"created_at": expires - timedelta(minutes=10), "expires_at": expires}
    if model is SessionRow:
        return SessionRow(
            session_id=key, client_id="c", agent_id="a", provider_id="p", requested_scopes=[],
            agent_state="s", oauth_state=key, code_verifier="v", code_challenge="c",
            status="pending", **common,
        )
    if model is TokenRow:
        return TokenRow(
            token_hash=key, client_id="c", agent_id="a", user_id="u", provider_id="p",
            scopes=[], session_id="s", **common,
        )
    if model is RefreshTokenRow:
        return RefreshTokenRow(
            token_hash=key, family_id="f", client_id="c", agent_id="a", user_id="u",
            provider_id="p", scopes=[], family_expires_at=expires, **common,
        )
    if model is ReplayRow:
        return ReplayRow(key=key, expires_at=expires)
    if model is HandshakeRow:
        return HandshakeRow(
            handshake_id=key, status="started", client_did="d", client_pubkey={},
            server_did="d", version="1", nonce_a="a", nonce_b="b", updated_at=expires,
            **common,
        )
    if model is ConfirmationRow:
        return ConfirmationRow(
            request_id=key, handshake_id=key, status="pending", user_did="u", client_did="d",
            client_info={}, requested_scopes=[], **common,
        )
    return HandshakeSessionRow(
        session_id=key, handshake_id=key, client_did="d", user_did="u", scopes=[],
        restrictions={}, sealed_keys="x", token_expires_at=expires, **common,
    )


def _seed(db: Database, now: datetime = NOW) -> None:
    """One expired row (two hours ago) and one live row (in two hours) in every table."""
    with db.transaction() as s:
        for model in MODELS:
            s.add(_row(model, f"old-{model.__name__}", now - timedelta(hours=2)))
            s.add(_row(model, f"new-{model.__name__}", now + timedelta(hours=2)))


def _counts(db: Database) -> dict[str, int]:
    with db.transaction() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) or 0 for m in MODELS}


def test_every_expiring_table_is_purged(tmp_path: Path) -> None:
    assert set(EXPIRING) == {m.__tablename__ for m in MODELS}
    db = Database(f"sqlite:///{tmp_path / 'athkit.db'}")
    _seed(db)
    assert set(_counts(db).values()) == {2}
    # Within the grace period nothing goes; past it, only the expired rows go.
    assert set(purge_expired(db, NOW, grace=timedelta(hours=3)).values()) == {0}
    deleted = purge_expired(db, NOW, grace=timedelta(hours=1))
    assert set(deleted.values()) == {1}
    assert set(_counts(db).values()) == {1}
    db.dispose()


def test_the_service_purges_periodically(tmp_path: Path) -> None:
    clock_now = [NOW.timestamp()]
    svc = ATHService(
        ATHSettings(
            public_url="http://127.0.0.1:9", data_dir=tmp_path, purge_interval=0.2, purge_grace=0
        ),
        clock=lambda: clock_now[0],
    )
    try:
        _seed(svc.store.db)

        def settles_at(expected: int) -> set[int]:
            deadline = time.monotonic() + 20  # a purge every 0.2 s; room for a busy box
            while set(_counts(svc.store.db).values()) != {expected}:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            return set(_counts(svc.store.db).values())

        assert settles_at(1) == {1}  # the expired rows are gone, the live ones stay
        clock_now[0] += 3 * 3600  # three hours later the others have expired too
        assert settles_at(0) == {0}
    finally:
        svc.close()


def test_athkit_db_purge(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'athkit.db'}")
    _seed(db, datetime.now(UTC))
    db.dispose()
    proc = subprocess.run(
        [sys.executable, "-m", "athkit.cli", "db", "purge", "--data-dir", str(tmp_path),
         "--grace", "0"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ath_tokens: 1" in proc.stdout and "purged 7 expired row(s)" in proc.stdout
    db = Database(f"sqlite:///{tmp_path / 'athkit.db'}")
    assert set(_counts(db).values()) == {1}  # the live rows stay
    db.dispose()

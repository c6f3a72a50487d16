"""The store on SQLite and PostgreSQL: migrations, atomic writes, compare-and-set transitions."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text

from athkit.client import ATHClient, errors
from athkit.core.audit import audit_row
from athkit.core.clock import as_utc
from athkit.demo.agent import DEVELOPER
from athkit.demo.browser import HTTPBrowser
from athkit.store.db import Database, alembic_config
from athkit.store.models import AgentRow, AuditRow, Base, ReplayRow, SessionRow, TokenRow
from athkit.store.repositories import DuplicateError, Store
from tests.conftest import AgentIdentity, start_shop

T0 = datetime(2030, 5, 17, 12, 0, 0, tzinfo=UTC)
TABLES = {"ath_agents", "ath_sessions", "ath_tokens", "ath_replay", "ath_audit"}


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def audit(event: str = "test", agent_id: str | None = None, **kw: Any) -> AuditRow:
    return audit_row(T0.timestamp(), event, "ok", agent_id=agent_id, **kw)


def agent_row(agent_id: str | None = None, client_id: str | None = None) -> AgentRow:
    return AgentRow(
        client_id=client_id or "ath_c_" + secrets.token_hex(8),
        client_secret_hash="0" * 64,
        agent_id=agent_id or f"https://{secrets.token_hex(4)}.example/.well-known/agent.json",
        name="Agent",
        developer_name="Dev",
        developer_id="dev-1",
        purpose=None,
        redirect_uris=[],
        requested_providers=[{"provider_id": "shop", "scopes": ["products:read"]}],
        approved_providers=[{"provider_id": "shop", "approved_scopes": ["products:read"]}],
        status="approved",
        approval_expires=T0 + timedelta(days=90),
        created_at=T0,
        updated_at=T0,
    )


def session_row(client_id: str = "c1", status: str = "pending") -> SessionRow:
    return SessionRow(
        session_id="ath_s_" + secrets.token_hex(8),
        client_id=client_id,
        agent_id="https://a.example/.well-known/agent.json",
        provider_id="shop",
        requested_scopes=["products:read", "cart:write"],
        agent_state=secrets.token_urlsafe(16),
        oauth_state=secrets.token_urlsafe(16),
        code_verifier=secrets.token_urlsafe(48),
        code_challenge=secrets.token_urlsafe(32),
        status=status,
        created_at=T0,
        expires_at=T0 + timedelta(minutes=10),
    )


def token_row(session_id: str, client_id: str = "c1") -> TokenRow:
    return TokenRow(
        token_hash=secrets.token_hex(32),
        client_id=client_id,
        agent_id="https://a.example/.well-known/agent.json",
        user_id="alice",
        provider_id="shop",
        scopes=["products:read"],
        session_id=session_id,
        created_at=T0,
        expires_at=T0 + timedelta(hours=1),
    )


def count(db: Database, model: type[Base]) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


# -- migrations -------------------------------------------------------------------------------


def test_migrations_create_all_tables_at_open(db: Database) -> None:
    names = set(inspect(db.engine).get_table_names())
    assert names >= TABLES | {"alembic_version"}
    with db.engine.connect() as conn:
        assert (
            conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            == head_revision()
        )


def test_migrated_schema_matches_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []


def test_reopen_is_idempotent_and_keeps_data(db: Database, db_url: str) -> None:
    store = Store(db)
    row = agent_row()
    store.add_agent(row, audit(agent_id=row.agent_id))
    for _ in range(2):
        again = Database(db_url)
        try:
            with again.engine.connect() as conn:
                versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            assert [v[0] for v in versions] == [head_revision()]
            got = Store(again).get_agent(row.client_id)
            assert got is not None and got.agent_id == row.agent_id
        finally:
            again.dispose()


def test_migrate_false_creates_nothing(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}", migrate=False)
    try:
        assert inspect(db.engine).get_table_names() == []
        db.upgrade()
        assert set(inspect(db.engine).get_table_names()) >= TABLES
    finally:
        db.dispose()


# -- agents -----------------------------------------------------------------------------------


def test_add_agent_and_read_back(db: Database) -> None:
    store = Store(db)
    row = agent_row()
    store.add_agent(row, audit("register", row.agent_id))
    got = store.get_agent(row.client_id)
    assert got is not None
    assert got.requested_providers == [{"provider_id": "shop", "scopes": ["products:read"]}]
    by_id = store.get_agent_by_agent_id(row.agent_id)
    assert by_id is not None and by_id.client_id == row.client_id
    assert store.get_agent("nope") is None
    assert [a.client_id for a in store.list_agents("approved")] == [row.client_id]
    assert store.list_agents("pending") == []


def test_duplicate_agent_id_is_refused_and_nothing_half_written(db: Database) -> None:
    store = Store(db)
    first = agent_row()
    store.add_agent(first, audit("register", first.agent_id, details={"n": 1}))
    dup = agent_row(agent_id=first.agent_id)
    with pytest.raises(DuplicateError) as err:
        store.add_agent(dup, audit("register", first.agent_id, details={"n": 2}))
    assert str(err.value) == first.agent_id
    assert store.get_agent(dup.client_id) is None
    assert count(db, AgentRow) == 1
    rows = store.list_audit(agent_id=first.agent_id)
    assert [r.details for r in rows] == [{"n": 1}]  # the failed insert left no audit row
    # the store still works after the failed transaction
    other = agent_row()
    store.add_agent(other, audit("register", other.agent_id))
    assert count(db, AgentRow) == 2


def test_per_call_audit_batch_reads_back_as_written(db: Database) -> None:
    """The batch writer's bulk INSERT (store/bulk_insert.py) stores what the ORM reads back:
    timestamps in UTC, JSON lists and mappings, NULLs, mixed with ORM rows in one batch."""
    from athkit.core.audit_writer import call_row

    store = Store(db)
    when = T0.timestamp()
    rows: list[Any] = [
        call_row(
            when + i,
            "proxy_request",
            "forwarded",
            agent_id=f"https://agent.example/{i}",
            provider_id="mail",
            details={"method": "GET", "path": f"/ath/proxy/mail/v1/{i}", "ms": 0.5, "n": i},
        )
        for i in range(3)
    ]
    rows.append(call_row(when + 3, "scope_violation", "refused", reason="SCOPE_INSUFFICIENT"))
    rows.append(audit(agent_id="https://agent.example/orm", requested=["mail:read"]))
    store.add_audit_many(rows)
    back = {r.agent_id: r for r in store.list_audit(limit=10)}
    assert len(back) == 5
    first = back["https://agent.example/0"]
    assert as_utc(first.timestamp) == T0
    assert first.details == {"method": "GET", "path": "/ath/proxy/mail/v1/0", "ms": 0.5, "n": 0}
    assert first.requested_scopes == [] and first.denial_reason is None
    refused = back[None]
    assert refused.event == "scope_violation" and refused.details == {}
    assert refused.denial_reason == "SCOPE_INSUFFICIENT" and refused.provider_id is None
    assert back["https://agent.example/orm"].requested_scopes == ["mail:read"]


def test_duplicate_client_id_is_refused(db: Database) -> None:
    store = Store(db)
    first = agent_row()
    store.add_agent(first, audit())
    with pytest.raises(DuplicateError):
        store.add_agent(agent_row(client_id=first.client_id), audit())
    assert count(db, AgentRow) == 1 and count(db, AuditRow) == 1


def test_set_agent_decision_revokes_tokens(db: Database) -> None:
    store = Store(db)
    row = agent_row()
    store.add_agent(row, audit())
    sess = session_row(row.client_id, status="consented")
    store.add_session(sess, audit())
    tok = token_row(sess.session_id, row.client_id)
    assert store.consume_session_issue_token(sess.session_id, tok, audit())
    later = T0 + timedelta(minutes=5)
    assert store.set_agent_decision(
        row.client_id,
        status="revoked",
        approved_providers=None,
        now=later,
        audit=audit("agent_revoked"),
        revoke_tokens=True,
    )
    got = store.get_agent(row.client_id)
    assert got is not None and got.status == "revoked"
    assert got.approved_providers == row.approved_providers
    revoked = store.get_token(tok.token_hash)
    assert revoked is not None and revoked.revoked_at is not None
    assert as_utc(revoked.revoked_at) == later
    assert not store.set_agent_decision(
        "unknown", status="approved", approved_providers=[], now=later, audit=audit("x")
    )
    assert [r.event for r in store.list_audit(limit=1)] == ["agent_revoked"]


# -- sessions ---------------------------------------------------------------------------------


def test_transition_session_compare_and_set(db: Database) -> None:
    store = Store(db)
    sess = session_row()
    store.add_session(sess, audit("authorize"))
    assert store.transition_session(
        sess.session_id, "pending", audit("consent"), status="consented", user_id="alice"
    )
    assert not store.transition_session(
        sess.session_id, "pending", audit("consent-2"), status="denied", user_id="mallory"
    )
    got = store.get_session(sess.session_id)
    assert got is not None and got.status == "consented" and got.user_id == "alice"
    assert [r.event for r in store.list_audit()] == ["consent_granted", "authorization_started"]
    assert not store.transition_session("no-such-session", "pending", status="consented")
    # a list of accepted statuses
    assert store.transition_session(sess.session_id, ["pending", "consented"], status="consumed")


def test_transition_session_races_have_one_winner(db: Database) -> None:
    store = Store(db)
    sess = session_row()
    store.add_session(sess, audit())
    barrier = threading.Barrier(8)
    wins: list[str] = []

    def attempt(i: int) -> None:
        barrier.wait()
        if store.transition_session(
            sess.session_id, "pending", status="consented", user_id=f"u{i}"
        ):
            wins.append(f"u{i}")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    got = store.get_session(sess.session_id)
    assert got is not None and got.user_id == wins[0]


def test_session_lookups(db: Database) -> None:
    store = Store(db)
    sess = session_row()
    store.add_session(sess, audit())
    by_state = store.get_session_by_oauth_state(sess.oauth_state)
    assert by_state is not None and by_state.session_id == sess.session_id
    assert store.get_session_by_oauth_state("other") is None
    assert store.transition_session(sess.session_id, "pending", oauth_code_hash="h" * 64)
    by_code = store.get_session_by_oauth_code("h" * 64)
    assert by_code is not None and by_code.session_id == sess.session_id


# -- tokens -----------------------------------------------------------------------------------


def test_consume_session_issue_token_only_once(db: Database) -> None:
    store = Store(db)
    sess = session_row(status="consented")
    store.add_session(sess, audit())
    first, second = token_row(sess.session_id), token_row(sess.session_id)
    assert store.consume_session_issue_token(sess.session_id, first, audit("token"))
    assert not store.consume_session_issue_token(sess.session_id, second, audit("token-2"))
    assert store.get_token(first.token_hash) is not None
    assert store.get_token(second.token_hash) is None
    assert count(db, TokenRow) == 1
    assert [r.event for r in store.list_audit()] == ["token", "test"]
    got = store.get_session(sess.session_id)
    assert got is not None and got.status == "consumed"


def test_token_needs_a_consented_session(db: Database) -> None:
    store = Store(db)
    for status in ("pending", "denied", "consumed"):
        sess = session_row(status=status)
        store.add_session(sess, audit())
        assert not store.consume_session_issue_token(
            sess.session_id, token_row(sess.session_id), audit()
        )
    assert count(db, TokenRow) == 0


def test_concurrent_token_exchanges_issue_one_token(db: Database) -> None:
    store = Store(db)
    sess = session_row(status="consented")
    store.add_session(sess, audit())
    barrier = threading.Barrier(6)
    results: list[bool] = []

    def attempt() -> None:
        barrier.wait()
        results.append(
            store.consume_session_issue_token(sess.session_id, token_row(sess.session_id), audit())
        )

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True]
    assert count(db, TokenRow) == 1


def test_revoke_token_only_by_owner(db: Database) -> None:
    store = Store(db)
    sess = session_row("owner", status="consented")
    store.add_session(sess, audit())
    tok = token_row(sess.session_id, "owner")
    assert store.consume_session_issue_token(sess.session_id, tok, audit())
    when = T0 + timedelta(minutes=1)
    assert not store.revoke_token(tok.token_hash, "someone-else", when, audit("revoke-other"))
    got = store.get_token(tok.token_hash)
    assert got is not None and got.revoked_at is None
    assert store.revoke_token(tok.token_hash, "owner", when, audit("revoke"))
    assert not store.revoke_token(tok.token_hash, "owner", when, audit("revoke-again"))
    assert not store.revoke_token("unknown", "owner", when, audit("revoke-unknown"))
    got = store.get_token(tok.token_hash)
    assert got is not None and as_utc(got.revoked_at) == when  # type: ignore[arg-type]
    events = [r.event for r in store.list_audit()]
    assert "revoke" in events
    assert not {"revoke-other", "revoke-again", "revoke-unknown"} & set(events)


# -- replay cache -----------------------------------------------------------------------------


def test_remember_once_replay_semantics(db: Database) -> None:
    store = Store(db)
    exp = T0 + timedelta(hours=1)
    assert store.remember_once("k1", exp, T0)
    assert not store.remember_once("k1", exp, T0)
    assert not store.remember_once("k1", exp, T0 + timedelta(minutes=59))
    assert store.remember_once("k2", exp, T0)  # other keys are independent
    # once the entry expired the key may be stored again (with its new expiry)
    assert store.remember_once("k1", exp + timedelta(hours=1), exp + timedelta(seconds=1))
    assert not store.remember_once("k1", exp + timedelta(hours=1), exp + timedelta(seconds=2))
    assert count(db, ReplayRow) == 2


def test_remember_once_is_atomic_under_races(db: Database) -> None:
    store = Store(db)
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def attempt() -> None:
        barrier.wait()
        results.append(store.remember_once("race", T0 + timedelta(hours=1), T0))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1


def test_purge_expired(db: Database) -> None:
    store = Store(db)
    for i in range(5):
        assert store.remember_once(f"k{i}", T0 + timedelta(minutes=i), T0)
    assert store.purge_expired(T0 + timedelta(minutes=2, seconds=30)) == 3
    assert count(db, ReplayRow) == 2
    assert store.purge_expired(T0 + timedelta(minutes=2, seconds=30)) == 0
    # the survivors are still replays
    assert not store.remember_once("k3", T0 + timedelta(hours=1), T0 + timedelta(minutes=3))
    assert store.remember_once("k0", T0 + timedelta(hours=1), T0 + timedelta(minutes=3))


# -- audit ------------------------------------------------------------------------------------


def test_list_audit_newest_first_with_filter_and_limit(db: Database) -> None:
    store = Store(db)
    a, b = "https://a.example/agent.json", "https://b.example/agent.json"
    for i in range(6):
        store.add_audit(
            audit(
                f"e{i}",
                a if i % 2 == 0 else b,
                requested=["products:read", "orders:write"],
                effective=["products:read"],
                denied=["orders:write"],
                reason="policy",
                user_id="alice",
                provider_id="shop",
            )
        )
    assert [r.event for r in store.list_audit()] == ["e5", "e4", "e3", "e2", "e1", "e0"]
    assert [r.event for r in store.list_audit(agent_id=a)] == ["e4", "e2", "e0"]
    assert [r.event for r in store.list_audit(agent_id=b, limit=2)] == ["e5", "e3"]
    assert store.list_audit(agent_id="https://c.example/agent.json") == []
    row = store.list_audit(limit=1)[0]
    assert (row.agent_id, row.user_id, row.provider_id) == (b, "alice", "shop")
    assert row.requested_scopes == ["products:read", "orders:write"]
    assert row.effective_scopes == ["products:read"]
    assert row.denied_scopes == ["orders:write"]
    assert row.denial_reason == "policy"
    assert as_utc(row.timestamp) == T0


# -- datetimes --------------------------------------------------------------------------------


def test_datetimes_round_trip_as_utc(db: Database) -> None:
    store = Store(db)
    sess = session_row()
    # A timestamp given in another zone is the same instant once read back, and in UTC.
    plus_two = timezone(timedelta(hours=2))
    sess.created_at = datetime(2030, 5, 17, 14, 0, 0, 123456, tzinfo=plus_two)
    sess.expires_at = T0 + timedelta(minutes=10)
    store.add_session(sess, audit())
    got = store.get_session(sess.session_id)
    assert got is not None
    for value, expected in (
        (got.created_at, datetime(2030, 5, 17, 12, 0, 0, 123456, tzinfo=UTC)),
        (got.expires_at, T0 + timedelta(minutes=10)),
    ):
        assert value.tzinfo is not None
        assert value.utcoffset() == timedelta(0)
        assert value == expected


# -- end to end on PostgreSQL -----------------------------------------------------------------


def test_full_flow_on_postgresql(
    tmp_path: Path, pg_url: str, new_agent: Callable[..., AgentIdentity]
) -> None:
    agent = new_agent("pg-flow")
    shop = start_shop(tmp_path, database_url=pg_url)
    try:
        with ATHClient(shop.url, agent.agent_id, agent.key) as client:
            client.discover()
            reg = client.register(
                developer=DEVELOPER,
                providers=[{"provider_id": "ath-shop", "scopes": ["products:read", "cart:write"]}],
                purpose="PostgreSQL-backed flow",
            )
            assert reg.agent_status.value == "approved"
            auth = client.authorize("ath-shop", ["products:read", "cart:write"])
            browser = HTTPBrowser("alice", shop.password)
            try:
                browser.open_consent(auth.authorization_url)
                done = browser.decide(approve=True, scopes=["products:read"])
            finally:
                browser.close()
            assert done.status_code == 200
            token = client.exchange_token(auth.ath_session_id)
            assert token.effective_scopes == ["products:read"]
            products = client.request("GET", "/products").json()["products"]
            assert {p["id"] for p in products} >= {"p-100", "p-101"}
            with pytest.raises(errors.ATHError) as refused:
                client.request("POST", "/cart/items", json={"product_id": "p-100", "quantity": 1})
            assert refused.value.status == 403
    finally:
        shop.server.stop()

    # Everything above was persisted in PostgreSQL, in the UTC instants the service used.
    pg = Store(Database(pg_url))
    try:
        row = pg.get_agent_by_agent_id(agent.agent_id)
        assert row is not None and row.client_id == reg.client_id and row.status == "approved"
        assert row.created_at.utcoffset() == timedelta(0)
        events = [a.event for a in pg.list_audit(agent_id=agent.agent_id)]
        assert len(events) >= 3
        with pg.db.transaction() as s:
            tokens = s.scalars(select(TokenRow).where(TokenRow.agent_id == agent.agent_id)).all()
        assert [t.scopes for t in tokens] == [["products:read"]]
        assert tokens[0].user_id == "alice" and tokens[0].revoked_at is None
    finally:
        pg.db.dispose()


def test_url_options_survive_the_statement_timeout(pg_schema_url: str) -> None:
    # The URL's own libpq options (here the test schema's search_path) must not be replaced by
    # the statement timeout athkit adds: both apply.
    database = Database(pg_schema_url)
    try:
        with database.engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar()
            timeout = conn.execute(text("SHOW statement_timeout")).scalar()
        assert schema and str(schema).startswith("athkit_store_")
        assert timeout not in (None, "0")
    finally:
        database.dispose()

"""Protocol steps on the event loop (SQLite): inline when nothing waits, else in a worker.

Real ATH Shop on a SQLite file; the "other writer" is a second real sqlite3 connection holding
the write lock, as another process would. Inline, a step never waits: it reruns in a worker
thread (``athkit_steps_rerun_in_worker_total``), which waits with the usual busy timeout and
answers 503 if the lock stays, or completes once it is released: exactly one write either way,
and the step's attestation is recorded once (a replay is still refused).
"""

from __future__ import annotations

import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from athkit.core.audit_events import AGENT_REGISTERED
from athkit.core.metrics import STEPS_RERUN
from athkit.store import on_loop
from athkit.store.db import Database
from athkit.store.models import AgentRow, AuditRow
from athkit.store.statements import select_one
from tests.conftest import AgentIdentity, Shop, start_shop
from tests.integration.support import consented_session, register_body

DB = "athkit.db"


def reruns() -> float:
    return STEPS_RERUN._value.get()


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    s = start_shop(tmp_path, ath_options={"db_statement_timeout": 1.5})
    try:
        yield s
    finally:
        s.server.stop()


def _lock(tmp_path: Path) -> sqlite3.Connection:
    """Another writer: holds SQLite's write lock until rolled back."""
    locker = sqlite3.connect(tmp_path / "shop" / DB, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN IMMEDIATE")
    return locker


def page_latencies(shop: Shop, n: int = 5) -> list[float]:
    """Seconds for each of ``n`` sign-in pages: the loop's responsiveness meanwhile."""
    samples = []
    with httpx.Client(base_url=shop.url, timeout=30) as h:
        for _ in range(n):
            start = time.monotonic()
            assert h.get("/login").status_code == 200
            samples.append(time.monotonic() - start)
    return samples


def _rows(shop: Shop, agent_id: str) -> tuple[int, int]:
    store = shop.app.state.athkit.store
    with store.db.read() as s:
        agents = s.query(AgentRow).filter(AgentRow.agent_id == agent_id).count()
        audits = (
            s.query(AuditRow)
            .filter(AuditRow.agent_id == agent_id, AuditRow.event == AGENT_REGISTERED)
            .count()
        )
    return agents, audits


def test_a_whole_flow_runs_inline(shop: Shop, agent: AgentIdentity) -> None:
    assert shop.app.state.athkit.steps_on_loop
    before = reruns()
    grant = consented_session(shop, agent)
    token = grant.client.exchange_token(grant.session_id).access_token
    headers = {"Authorization": f"Bearer {token}", "X-ATH-Agent-ID": agent.agent_id}
    assert httpx.get(f"{shop.url}/api/products", headers=headers).status_code == 200
    assert reruns() == before


def test_a_locked_database_reruns_in_a_worker_and_answers_503(
    shop: Shop, agent: AgentIdentity, tmp_path: Path
) -> None:
    before = reruns()
    locker = _lock(tmp_path)
    try:
        result: list[tuple[float, httpx.Response]] = []

        def register() -> None:
            start = time.monotonic()
            resp = httpx.post(
                f"{shop.url}/ath/agents/register", json=register_body(agent, shop.url), timeout=30
            )
            result.append((time.monotonic() - start, resp))

        t = threading.Thread(target=register)
        t.start()
        time.sleep(0.2)  # the step now waits in a worker thread, not on the loop
        samples = page_latencies(shop)
        t.join()
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    elapsed, resp = result[0]
    assert resp.status_code == 503, resp.text
    assert resp.json()["code"] == "SERVICE_UNAVAILABLE"
    assert elapsed < 5.0
    assert statistics.median(samples) < 0.5, samples  # the loop kept serving meanwhile
    assert reruns() == before + 1
    assert _rows(shop, agent.agent_id) == (0, 0)


def test_a_lock_released_meanwhile_completes_the_step_once(
    shop: Shop, agent: AgentIdentity, tmp_path: Path
) -> None:
    before = reruns()
    body = register_body(agent, shop.url)
    locker = _lock(tmp_path)
    release = threading.Timer(0.4, lambda: (locker.execute("ROLLBACK"), locker.close()))
    release.start()
    resp = httpx.post(f"{shop.url}/ath/agents/register", json=body, timeout=30)
    release.join()
    assert resp.status_code == 201, resp.text
    assert reruns() == before + 1
    assert _rows(shop, agent.agent_id) == (1, 1)
    # The worker's run recorded the attestation: the same one is refused now.
    again = httpx.post(f"{shop.url}/ath/agents/register", json=body, timeout=30)
    assert again.status_code == 401 and "replay" in again.json()["message"], again.text


def test_steps_on_loop_can_be_turned_off(tmp_path: Path, agent: AgentIdentity) -> None:
    s = start_shop(tmp_path, ath_options={"steps_on_loop": False, "db_statement_timeout": 1.0})
    try:
        assert not s.app.state.athkit.steps_on_loop
        before = reruns()
        locker = _lock(tmp_path)
        try:
            resp = httpx.post(
                f"{s.url}/ath/agents/register", json=register_body(agent, s.url), timeout=30
            )
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert resp.status_code == 503
        assert reruns() == before  # it went to a worker directly
    finally:
        s.server.stop()


def test_an_inline_step_never_waits_for_a_pooled_connection(tmp_path: Path) -> None:
    """Every pooled connection busy: inline reads and writes refuse to wait (the step then
    runs in a worker, which waits up to the pool timeout as before)."""
    db = Database(f"sqlite:///{tmp_path / 'pool.db'}")
    held = [db.engine.connect() for _ in range(db.engine.pool.size())]  # type: ignore[attr-defined]
    try:
        with on_loop.inline(), pytest.raises(on_loop.WouldBlock), db.begin():
            pass
        with on_loop.inline(), pytest.raises(on_loop.WouldBlock):
            select_one(db.engine, AgentRow, client_id="nobody")
        assert select_one(db.engine, AgentRow, client_id="nobody") is None  # not inline: fine
    finally:
        for conn in held:
            conn.close()
        db.dispose()


def test_a_refused_step_that_meets_a_lock_reruns_in_a_worker_not_on_the_loop(
    shop: Shop, agent: AgentIdentity, tmp_path: Path
) -> None:
    """A step refused after its attestation was checked still records the attestation; when
    the write lock is taken, that record waits in a worker too, never on the loop."""
    first = httpx.post(f"{shop.url}/ath/agents/register", json=register_body(agent, shop.url))
    assert first.status_code == 201, first.text
    # A fresh attestation for an agent_id already registered: refused after the check.
    plain = httpx.post(
        f"{shop.url}/ath/agents/register", json=register_body(agent, shop.url), timeout=30
    )
    assert plain.status_code == 409, plain.text
    expected = (plain.status_code, plain.json()["code"])

    before = reruns()
    body = register_body(agent, shop.url)
    locker = _lock(tmp_path)
    release = threading.Timer(0.8, lambda: (locker.execute("ROLLBACK"), locker.close()))
    result: list[httpx.Response] = []
    t = threading.Thread(
        target=lambda: result.append(
            httpx.post(f"{shop.url}/ath/agents/register", json=body, timeout=30)
        )
    )
    release.start()
    t.start()
    time.sleep(0.2)
    samples = page_latencies(shop)
    t.join()
    release.join()
    assert max(samples) < 0.45, samples  # the loop never stalled on the lock
    assert (result[0].status_code, result[0].json()["code"]) == expected, result[0].text
    assert reruns() == before + 1
    again = httpx.post(f"{shop.url}/ath/agents/register", json=body, timeout=30)
    assert again.status_code == 401 and "replay" in again.json()["message"], again.text

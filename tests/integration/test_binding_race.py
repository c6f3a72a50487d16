"""Browser binding under a race (PROTOCOL.md §5): when several browsers open one consent URL
at the same moment, the first binding stands (compare-and-set on the binding column), on
SQLite and on real PostgreSQL. Each browser is its own cookie jar on real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import AgentIdentity, Shop, start_shop
from tests.integration.support import PROVIDER, registered_client

BROWSERS = 8
ROUNDS = 4


@pytest.fixture(params=["sqlite", "postgresql"])
def race_shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    s = start_shop(tmp_path, database_url=url)
    try:
        yield s
    finally:
        s.server.stop()


def _signed_in_browser(shop: Shop) -> httpx.Client:
    http = httpx.Client(follow_redirects=False, timeout=30)
    resp = http.post(
        f"{shop.url}/login", data={"username": "alice", "password": shop.password, "next": "/"}
    )
    assert resp.status_code == 303, resp.text
    return http


def test_first_browser_binding_stands_when_many_open_the_url_at_once(
    race_shop: Shop, agent: AgentIdentity
) -> None:
    client = registered_client(race_shop, agent)
    browsers = [_signed_in_browser(race_shop) for _ in range(BROWSERS)]
    try:
        for _ in range(ROUNDS):
            auth = client.authorize(PROVIDER, ["products:read"])
            barrier = threading.Barrier(BROWSERS)
            results: list[httpx.Response | None] = [None] * BROWSERS

            def open_page(i: int, url: str = auth.authorization_url) -> None:
                barrier.wait()
                results[i] = browsers[i].get(url, headers={"Accept": "text/html"})

            threads = [threading.Thread(target=open_page, args=(i,)) for i in range(BROWSERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            answered = [r for r in results if r is not None]
            assert len(answered) == BROWSERS
            winners = [i for i, r in enumerate(answered) if r.status_code == 200]
            assert len(winners) == 1, [r.status_code for r in answered]
            for i, r in enumerate(answered):
                if i not in winners:
                    assert r.status_code == 400 and "STATE_MISMATCH" in r.text, r.text[:300]
            # The winner's binding is the one stored: a reload in the winning browser still
            # works, every other browser is still refused.
            winner = browsers[winners[0]]
            again = winner.get(auth.authorization_url, headers={"Accept": "text/html"})
            assert again.status_code == 200, again.text[:300]
            loser = browsers[(winners[0] + 1) % BROWSERS]
            assert loser.get(auth.authorization_url).status_code == 400
    finally:
        for b in browsers:
            b.close()

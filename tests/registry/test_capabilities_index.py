"""Capability fields of a listing, the in-place ANN index, search modes and concurrent
re-validation, against real registries and real fake-origin servers (real model)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from athkit.registry import ranking
from athkit.registry.documents import SERVICE_PATH
from athkit.registry.service import RegistryService, RegistrySettings
from tests.registry.conftest import FakeService, Registry, service_doc

StartService = Callable[[str, Any], FakeService]

CHAT = "Workplace chat with channels, threads and huddles for companies"
CI = "Continuous integration and delivery: builds, test runs and deployments"


def _listed(reg: Registry, start_service: StartService, app_id: str, **extra: Any) -> FakeService:
    svc = start_service(SERVICE_PATH, None)
    svc.doc = service_doc(svc.url, app_id, app_id.title(), **extra)
    reg.list_with_proof(svc)
    return svc


def test_example_intents_and_operations_are_indexed(
    embedder: ranking.Embedder,
    start_registry: Callable[..., Registry],
    start_service: StartService,
) -> None:
    """Two listings with the same description: the one whose owner published an example close
    to the intent ranks first."""
    reg = start_registry(embedder=embedder)
    common: dict[str, Any] = {
        "description": CHAT,
        "operations": ["post to a channel", "start a huddle"],
        "scope_descriptions": {"mail:read": "read channels", "mail:send": "post messages"},
    }
    _listed(reg, start_service, "plainchat", **common)
    _listed(
        reg,
        start_service,
        "teamtalk",
        example_intents=["tell the team the release is out", "post in the engineering channel"],
        **common,
    )
    _listed(reg, start_service, "pipecheck", description=CI, operations=["trigger a build"])
    hit = reg.search("let the team know the release went out", mode="semantic")
    assert hit["mode"] == "semantic"
    ranked = [p["provider_id"] for p in hit["providers"]]
    assert ranked.index("teamtalk") < ranked.index("plainchat")
    # no similarity floor: a weak best match is still returned, with its score
    far = reg.search("adopt a kitten", mode="semantic")
    assert len(far["providers"]) == 3


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("example_intents", "not a list", "must be a list"),
        ("example_intents", ["ok", 3], "only strings"),
        ("example_intents", ["x" * 201], "at most 200 characters"),
        ("example_intents", [f"intent {i}" for i in range(21)], "at most 20 entries"),
        ("operations", ["send\x00mail"], "control characters"),
        ("scope_descriptions", ["mail:read"], "must be an object"),
    ],
)
def test_malformed_capability_fields_make_the_document_invalid(
    start_registry: Callable[..., Registry],
    start_service: StartService,
    field: str,
    value: Any,
    problem: str,
) -> None:
    reg = start_registry()
    svc = start_service(SERVICE_PATH, None)
    svc.doc = service_doc(svc.url, "bad", "Bad", **{field: value})
    resp = reg.submit(svc.url)
    assert resp.status_code == 422
    body = resp.json()
    assert body["code"] == "DISCOVERY_DOCUMENT_INVALID"
    assert field in str(body["details"]) and problem in str(body["details"])


def test_semantic_mode_needs_the_model(
    start_registry: Callable[..., Registry], start_service: StartService
) -> None:
    reg = start_registry()
    _listed(reg, start_service, "postbox", description="Email for teams")
    assert reg.search("email")["mode"] == "keyword"
    for mode in ("semantic", "hybrid"):
        resp = reg.http.get("/api/search", params={"intent": "email", "mode": mode})
        assert resp.status_code == 503
        assert resp.json()["code"] == "SERVICE_UNAVAILABLE"
    assert reg.http.get("/api/search", params={"intent": "x", "mode": "vector"}).status_code == 422


def test_index_follows_adds_and_removals_in_place(
    embedder: ranking.Embedder,
    start_registry: Callable[..., Registry],
    start_service: StartService,
) -> None:
    reg = start_registry(embedder=embedder)
    _listed(reg, start_service, "postbox", description="Email: read messages and send replies")
    index = reg.service.vectors
    before = index.generation
    svc = _listed(reg, start_service, "nimbus", description="Weather forecasts and rain radar")
    assert reg.service.vectors is index and index.generation == before + 1
    assert len(index) == 2
    found = reg.search("will it rain tomorrow", mode="semantic")["providers"]
    assert found[0]["provider_id"] == "nimbus"
    lid = found[0]["listing_id"]
    gone = reg.http.delete(
        f"/api/admin/listings/{lid}", headers={"Authorization": "Bearer admin-test-token"}
    )
    assert gone.status_code == 204
    assert len(index) == 1
    ids = [p["provider_id"] for p in reg.search("will it rain", mode="semantic")["providers"]]
    assert ids == ["postbox"]
    assert svc.url not in [p["url"] for p in reg.search("rain")["providers"]]


def test_search_during_an_own_add_starts_no_catch_up_sync(
    embedder: ranking.Embedder,
    start_registry: Callable[..., Registry],
    start_service: StartService,
) -> None:
    """A search that lands after this process committed a listing and before the index holds
    it sees the change counter ahead of the index; it must not take that for another process's
    change (a catch-up diffs every id: seconds at 1M entries)."""
    reg = start_registry(embedder=embedder)
    _listed(reg, start_service, "postbox", description="Email: read messages and send replies")
    service = reg.service
    syncs: list[int] = []
    service.sync_index = lambda: syncs.append(1)  # type: ignore[method-assign]
    index = service.vectors
    add = index.add
    mid_add: list[list[str]] = []

    def add_with_a_search_first(*args: Any, **kwargs: Any) -> None:
        hits = service.search("will it rain tomorrow", 10, "semantic").providers
        mid_add.append([h.provider_id or "" for h in hits])
        add(*args, **kwargs)

    index.add = add_with_a_search_first  # type: ignore[method-assign]
    _listed(reg, start_service, "nimbus", description="Weather forecasts and rain radar")
    assert mid_add == [["postbox"]]  # committed, not yet in the index: not found yet
    found = reg.search("will it rain tomorrow", mode="semantic")["providers"]
    assert found[0]["provider_id"] == "nimbus"
    time.sleep(0.2)  # a sync thread, had one started, would have run by now
    assert syncs == []


def test_second_process_catches_up_without_reload(
    tmp_path: Path,
    embedder: ranking.Embedder,
    start_registry: Callable[..., Registry],
    start_service: StartService,
) -> None:
    """Two registry processes on one database: a listing made by one is found by the other."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    reg = start_registry(embedder=embedder, database_url=url)
    other = RegistryService(
        RegistrySettings(database_url=url, data_dir=tmp_path, revalidate_interval=0),
        embedder=embedder,
    )
    try:
        assert other.search("check my inbox", mode="semantic").providers == []
        _listed(reg, start_service, "postbox", description="Email: read messages, send replies")
        deadline = time.monotonic() + 20
        hits: list[Any] = []
        while time.monotonic() < deadline:
            hits = other.search("check my inbox", mode="semantic").providers
            if hits:
                break
            time.sleep(0.05)
        assert hits and hits[0].provider_id == "postbox"
    finally:
        other.close()


def test_revalidation_checks_origins_concurrently(
    start_registry: Callable[..., Registry], start_service: StartService
) -> None:
    """Eight origins that each take 1 s per answer: re-validated together, not one by one
    (serially that is at least 8 x 3 requests = 24 s)."""
    reg = start_registry(revalidate_workers=8)
    slow = [
        _listed(reg, start_service, f"svc{i}", description="Email for teams") for i in range(8)
    ]
    for s in slow:
        s.delay = 1.0
    t = time.monotonic()
    report = reg.revalidate()
    took = time.monotonic() - t
    assert report["checked"] == 8 and report["kept"] == 8 and not report["dropped"]
    assert took < 12, took


def test_search_answers_while_an_origin_hangs(
    start_registry: Callable[..., Registry], start_service: StartService
) -> None:
    """Re-validation stuck on a slow origin does not hold searches back."""
    import threading

    reg = start_registry()
    svc = _listed(reg, start_service, "postbox", description="Email for teams")
    svc.delay = 4.0
    with httpx.Client(base_url=reg.url, timeout=10) as other:
        worker = threading.Thread(target=reg.revalidate)
        worker.start()
        while not svc.hits.get("/.well-known/ath-registry-verification.txt", 0) > 1:
            time.sleep(0.02)  # the re-validation's fetch is now hanging
        assert other.get("/api/search", params={"intent": "email"}).status_code == 200
        assert worker.is_alive()  # answered while the re-validation still waits
        worker.join()

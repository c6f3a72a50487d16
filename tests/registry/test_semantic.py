"""Semantic and hybrid ranking with the real all-MiniLM-L6-v2 model (the semantic extra)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.responses import PlainTextResponse

from athkit.registry import ranking
from athkit.registry.documents import SERVICE_PATH
from athkit.registry.proof import VERIFICATION_PATH
from tests.conftest import start_shop
from tests.registry.conftest import FakeService, Registry, agent_auth_doc, gateway_doc, service_doc
from tests.registry.test_registry import MAIL_DESCRIPTION, SHOP_DESCRIPTION

StartService = Callable[[str, Any], FakeService]


def _populate(reg: Registry, start_service: StartService) -> None:
    mail = start_service(SERVICE_PATH, None)
    mail.doc = service_doc(mail.url, "postbox", "Postbox", description=MAIL_DESCRIPTION)
    gw = start_service("/.well-known/ath.json", None)
    gw.doc = gateway_doc(gw.url)
    aa = start_service("/.well-known/agent-configuration", None)
    aa.doc = agent_auth_doc(aa.url)
    for svc in (mail, gw, aa):
        reg.list_with_proof(svc)


def test_intent_finds_services_without_shared_words(
    tmp_path: Path,
    embedder: ranking.Embedder,
    start_registry: Callable[..., Registry],
    start_service: StartService,
) -> None:
    shop = start_shop(tmp_path)
    try:
        reg = start_registry(embedder=embedder)
        _populate(reg, start_service)
        token = reg.service.token_for(shop.url)
        shop.app.add_api_route(VERIFICATION_PATH, lambda: PlainTextResponse(token), methods=["GET"])
        assert reg.submit(shop.url, description=SHOP_DESCRIPTION).status_code == 201

        shoes = reg.search("buy running shoes")
        assert shoes["mode"] == "semantic"
        assert shoes["providers"][0]["url"] == shop.url
        inbox = reg.search("check my inbox")
        assert inbox["providers"][0]["name"] == "Postbox"
        assert reg.search("is it going to rain tomorrow")["providers"][0]["name"] == "weatherly"
        assert reg.search("pay my rent from checking")["providers"][0]["name"] == "Ledgerly Bank"
        # keyword ranking alone cannot bridge the vocabulary gap
        kw = reg.search("buy running shoes", mode="keyword")
        assert kw["mode"] == "keyword"
        assert not kw["providers"] or kw["providers"][0]["url"] != shop.url
    finally:
        shop.server.stop()


def test_model_loaded_later_backfills_embeddings(
    embedder: ranking.Embedder,
    start_registry: Callable[..., Registry],
    start_service: StartService,
) -> None:
    reg = start_registry()
    _populate(reg, start_service)
    assert reg.search("check my inbox")["mode"] == "keyword"
    reg.service.set_embedder(embedder)
    result = reg.search("check my inbox")
    assert result["mode"] == "semantic"
    assert result["providers"][0]["name"] == "Postbox"
    hybrid = reg.search("check my inbox", mode="hybrid")
    assert hybrid["mode"] == "hybrid"
    assert hybrid["providers"][0]["name"] == "Postbox"

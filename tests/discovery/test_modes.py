"""Every §2 discovery mode against real servers on 127.0.0.1; version rules; HTTP caching."""

from __future__ import annotations

import asyncio
import json
import warnings
from pathlib import Path

import pytest

from athkit.client import AgentKey, ATHClient
from athkit.client.discovery import (
    DiscoveredProvider,
    Discovery,
    DiscoveryCache,
    DiscoveryMode,
    DocumentNotFoundError,
    adiscover,
    adiscover_provider_tool,
    asearch_providers_tool,
    discover,
    discover_provider_tool,
    search_providers_tool,
)
from athkit.client.errors import (
    DraftVersionWarning,
    ProtocolViolation,
    UnsupportedVersionError,
)
from tests.conftest import Shop
from tests.discovery.conftest import Catalog, Registry, Srv, gateway_doc, service_doc

SHOP_SCOPES = ("products:read", "cart:read", "cart:write", "orders:read", "orders:write")


def _assert_shop(p: DiscoveredProvider, shop: Shop) -> None:
    assert p.provider_id == "ath-shop"  # ath-app.json's provider_id (app_id is an alias)
    assert p.base_url == shop.url
    assert p.authorization_endpoint == f"{shop.url}/ath/authorize"
    assert p.token_endpoint == f"{shop.url}/ath/token"
    assert p.registration_endpoint == f"{shop.url}/ath/agents/register"
    assert p.api_base == f"{shop.url}/api"
    assert p.scopes == SHOP_SCOPES
    assert p.kind == "service"


# -- manual ---------------------------------------------------------------------------------


def test_manual_from_file(manual_file: Path) -> None:
    found = discover(manual=manual_file)
    assert found.mode is DiscoveryMode.MANUAL
    assert found.source_url == str(manual_file)
    p = found.provider
    assert (p.provider_id, p.base_url, p.api_base) == (
        "mail",
        "https://mail.example",
        "https://mail.example/api",
    )
    assert p.authorization_endpoint == "https://mail.example/ath/authorize"
    assert p.token_endpoint == "https://mail.example/ath/token"


def test_manual_from_dict_ignores_unknown_fields(manual_file: Path) -> None:
    data = json.loads(manual_file.read_text())
    data["future_field"] = {"x": 1}
    found = discover(manual=data)
    assert found.provider.provider_id == "mail" and found.source_url is None


def test_manual_bad_token_url_is_refused(manual_file: Path) -> None:
    data = json.loads(manual_file.read_text())
    data["oauth"]["token_url"] = "https://mail.example/oauth/token"
    with pytest.raises(ProtocolViolation, match="/ath/token"):
        discover(manual=data)
    with pytest.raises(ProtocolViolation, match="manual config"):
        discover(manual={"provider": "x"})


# -- service (ATH Shop) ---------------------------------------------------------------------


def test_service_mode_against_ath_shop(shop: Shop) -> None:
    found = discover(service=shop.url, dev_mode=True)
    assert found.mode is DiscoveryMode.SERVICE
    assert found.source_url == f"{shop.url}/.well-known/ath-app.json"
    assert found.ath_version == "0.1" and found.warnings == []
    _assert_shop(found.provider, shop)
    assert found.to_dict()["document"]["app_id"] == "com.ath-shop.ecommerce"


def test_service_mode_accepts_the_well_known_url_itself(shop: Shop) -> None:
    found = discover(service=f"{shop.url}/.well-known/ath-app.json", dev_mode=True)
    _assert_shop(found.provider, shop)


def test_discovered_provider_drives_an_ath_client(shop: Shop) -> None:
    p = discover(service=shop.url, dev_mode=True).provider
    key = AgentKey.generate("P-256", kid="k")
    with ATHClient(p.base_url, "https://agent.example/a.json", key, api_base=p.api_base) as c:
        assert c.discover().provider_id == p.provider_id
        assert c.api_base == p.api_base


def test_service_mode_async(shop: Shop) -> None:
    found = asyncio.run(adiscover(service=shop.url, dev_mode=True))
    _assert_shop(found.provider, shop)


def test_service_missing_document(srv: Srv) -> None:
    with pytest.raises(DocumentNotFoundError) as err:
        discover(service=srv.url, dev_mode=True)
    assert err.value.details["http_status"] == 404


def test_exactly_one_mode_is_required(shop: Shop) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        discover()
    with pytest.raises(ValueError, match="exactly one"):
        discover(service=shop.url, gateway=shop.url)
    with pytest.raises(ValueError, match="registry"):
        discover(intent="shoes")
    with pytest.raises(ValueError, match="only used with intent"):
        discover(service=shop.url, registry=shop.url)


# -- gateway catalog ------------------------------------------------------------------------


def test_gateway_mode(catalog: Catalog) -> None:
    found = discover(gateway=catalog.url, dev_mode=True)
    assert found.mode is DiscoveryMode.GATEWAY
    assert [p.provider_id for p in found.providers] == ["github", "calendar"]
    gh, cal = found.providers
    assert gh.name == "GitHub" and gh.kind == "gateway"
    assert gh.base_url == catalog.url
    assert gh.api_base == f"{catalog.url}/ath/proxy/github"
    assert gh.authorization_endpoint == f"{catalog.url}/ath/authorize"
    assert gh.token_endpoint == f"{catalog.url}/ath/token"
    assert gh.scopes == ("repo:read", "issues:write") and gh.categories == ("developer",)
    assert gh.agent_approval_required is True and cal.agent_approval_required is False


def test_gateway_mode_async(catalog: Catalog) -> None:
    found = asyncio.run(adiscover(gateway=catalog.url, dev_mode=True))
    assert [p.provider_id for p in found.providers] == ["github", "calendar"]


# -- registry -------------------------------------------------------------------------------


def test_registry_search_ranks_by_intent(registry: Registry, shop: Shop) -> None:
    found = discover(intent="buy athletic footwear", registry=registry.url, dev_mode=True)
    assert found.mode is DiscoveryMode.REGISTRY
    assert registry.queries[-1] == {"intent": "buy athletic footwear", "limit": "10"}
    top = found.provider
    assert (top.name, top.base_url, top.kind, top.verified) == (
        "ATH Shop",
        shop.url,
        "listing",
        True,
    )
    assert top.score is not None and top.score > 0.5
    assert top.description and "sneakers" in top.description
    assert top.authorization_endpoint is None  # not resolved
    assert found.to_dict()["document"]["intent"] == "buy athletic footwear"


def test_registry_limit_and_issuer_only_listing(registry: Registry) -> None:
    found = discover(intent="shoes banking", registry=registry.url, dev_mode=True, limit=2)
    assert registry.queries[-1]["limit"] == "2"
    assert len(found.providers) == 2
    bank = discover(intent="banking", registry=registry.url, dev_mode=True).provider
    assert (bank.base_url, bank.protocol) == ("https://auth.bank.example", "agent-auth")


def test_registry_accepts_a_bare_list(srv: Srv) -> None:
    srv.add(
        "/api/search",
        body=[{"name": "bank", "description": "Banking", "issuer": "https://bank.example"}],
    )
    found = discover(intent="banking", registry=srv.url, dev_mode=True)
    assert [(p.name, p.base_url) for p in found.providers] == [("bank", "https://bank.example")]


def test_registry_resolve_goes_through_the_guard(registry: Registry, shop: Shop) -> None:
    found = discover(
        intent="shoes footwear code hosting", registry=registry.url, dev_mode=True, resolve=True
    )
    by_name = {p.name: p for p in found.providers}
    # verified listing: fetched (SSRF guard only), endpoints filled in, registry data kept
    shop_p = by_name["ATH Shop E-Commerce API"]
    _assert_shop(shop_p, shop)
    assert shop_p.verified is True and shop_p.score is not None
    assert shop_p.description and "sneakers" in shop_p.description
    # verified listing at a private address: the SSRF guard refuses it
    shady = by_name["Shady Shoes"]
    assert shady.error is not None and shady.error.startswith("DISCOVERY_URL_BLOCKED")
    assert shady.authorization_endpoint is None
    # unverified listing: needs the allowlist or a confirmation, like a direct URL
    gw = by_name["Dev Gateway"]
    assert gw.error is not None and gw.error.startswith("DISCOVERY_NEEDS_CONFIRMATION")


def test_registry_resolve_unverified_with_confirmation(
    registry: Registry, catalog: Catalog
) -> None:
    asked: list[str] = []
    found = discover(
        intent="code hosting",
        registry=registry.url,
        dev_mode=True,
        resolve=True,
        confirm=lambda url: asked.append(url) or True,
    )
    assert asked == [catalog.url]
    assert [p.provider_id for p in found.providers] == ["github", "calendar"]
    assert all(p.verified is False and p.score for p in found.providers)


def test_registry_async(registry: Registry) -> None:
    found = asyncio.run(adiscover(intent="sneakers", registry=registry.url, dev_mode=True))
    assert found.provider.name == "ATH Shop"


# -- direct ---------------------------------------------------------------------------------


def test_direct_allowlisted_service(shop: Shop) -> None:
    found = discover(url=shop.url, allow=[shop.url], dev_mode=True)
    assert found.mode is DiscoveryMode.DIRECT
    _assert_shop(found.provider, shop)


def test_direct_falls_back_to_the_gateway_catalog(catalog: Catalog) -> None:
    asked: list[str] = []
    found = discover(
        url=catalog.url + "/", confirm=lambda u: asked.append(u) or True, dev_mode=True
    )
    assert asked == [catalog.url + "/"]  # asked once for the origin, not per document
    assert found.mode is DiscoveryMode.DIRECT
    assert found.source_url == f"{catalog.url}/.well-known/ath.json"
    assert [p.provider_id for p in found.providers] == ["github", "calendar"]


def test_direct_to_a_well_known_url(catalog: Catalog) -> None:
    found = discover(url=f"{catalog.url}/.well-known/ath.json", allow=[catalog.url], dev_mode=True)
    assert found.providers[0].provider_id == "github"


def test_direct_neither_document(srv: Srv) -> None:
    with pytest.raises(DocumentNotFoundError, match="ath-app.json or .*ath.json"):
        discover(url=srv.url, allow=[srv.origin], dev_mode=True)
    assert len(srv.hits()) == 2


def test_direct_async_with_async_confirm(shop: Shop) -> None:
    async def confirm(url: str) -> bool:
        await asyncio.sleep(0)
        return url == shop.url

    found = asyncio.run(adiscover(url=shop.url, confirm=confirm, dev_mode=True))
    _assert_shop(found.provider, shop)


# -- version rules --------------------------------------------------------------------------


def test_unsupported_major_names_both_versions(srv: Srv) -> None:
    srv.service(ath_version="1.0")
    with pytest.raises(UnsupportedVersionError) as err:
        discover(service=srv.url, dev_mode=True)
    assert "1.0" in err.value.message and "0.1" in err.value.message
    assert err.value.details == {"peer_version": "1.0", "supported_version": "0.1"}


def test_unsupported_major_in_gateway_catalog(srv: Srv) -> None:
    srv.add("/.well-known/ath.json", body=gateway_doc(srv.url, ath_version="2.3-draft"))
    with pytest.raises(UnsupportedVersionError, match=r"2\.3-draft.*0\.1"):
        discover(gateway=srv.url, dev_mode=True)


def test_draft_version_accepted_with_a_warning(srv: Srv) -> None:
    srv.service(ath_version="0.2-draft")
    with pytest.warns(DraftVersionWarning, match="0.2-draft"):
        found = discover(service=srv.url, dev_mode=True)
    assert found.ath_version == "0.2-draft"
    assert len(found.warnings) == 1 and "draft" in found.warnings[0]


def test_unknown_fields_are_ignored(srv: Srv) -> None:
    doc = service_doc(srv.url, future={"nested": [1, 2]}, jwks_uri="https://x.example/jwks")
    doc["auth"]["new_auth_field"] = True
    srv.add("/.well-known/ath-app.json", body=doc)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = discover(service=srv.url, dev_mode=True)
    assert found.provider.provider_id == "com.example.mail"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"app_id": "x"}, "no ath_version"),
        ({"ath_version": "zero"}, "Malformed"),
        (b"<html>not json</html>", "not JSON"),
        ({"ath_version": "0.1", "app_id": "x"}, "invalid ServiceDiscoveryDocument"),
    ],
)
def test_bad_documents(srv: Srv, body: object, match: str) -> None:
    srv.add("/.well-known/ath-app.json", body=body)
    with pytest.raises((ProtocolViolation, UnsupportedVersionError), match=match):
        discover(service=srv.url, dev_mode=True)


# -- caching --------------------------------------------------------------------------------


def test_max_age_hit_makes_no_request(srv: Srv) -> None:
    srv.service(headers={"Cache-Control": "public, max-age=300"})
    cache = DiscoveryCache()
    first = discover(service=srv.url, dev_mode=True, cache=cache)
    second = discover(service=srv.url, dev_mode=True, cache=cache)
    assert len(srv.hits()) == 1
    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.provider == first.provider
    third = asyncio.run(adiscover(service=srv.url, dev_mode=True, cache=cache))  # shared
    assert third.from_cache and len(srv.hits()) == 1


def test_max_age_expiry_then_etag_revalidation(srv: Srv) -> None:
    now = [1000.0]
    cache = DiscoveryCache(clock=lambda: now[0])
    srv.service(headers={"Cache-Control": "max-age=60"}, etag='"v1"')
    discover(service=srv.url, dev_mode=True, cache=cache)
    now[0] += 59
    assert discover(service=srv.url, dev_mode=True, cache=cache).from_cache
    assert len(srv.hits()) == 1
    now[0] += 2  # stale: revalidate
    found = discover(service=srv.url, dev_mode=True, cache=cache)
    hits = srv.hits()
    assert len(hits) == 2 and hits[1]["if-none-match"] == '"v1"'
    assert found.from_cache and found.provider.provider_id == "com.example.mail"
    assert discover(service=srv.url, dev_mode=True, cache=cache).from_cache  # fresh again
    assert len(srv.hits()) == 2


def test_etag_revalidation_304_and_change(srv: Srv) -> None:
    cache = DiscoveryCache()
    srv.service(headers={"Cache-Control": "no-cache"}, etag='"a"')
    discover(service=srv.url, dev_mode=True, cache=cache)
    found = discover(service=srv.url, dev_mode=True, cache=cache)
    hits = srv.hits()
    assert len(hits) == 2 and "if-none-match" not in hits[0] and hits[1]["if-none-match"] == '"a"'
    assert found.from_cache  # the 304 answered from the cached body
    # the document changes: new ETag, the new body is served and cached
    srv.service(name="Renamed Mail", headers={"Cache-Control": "no-cache"}, etag='"b"')
    changed = discover(service=srv.url, dev_mode=True, cache=cache)
    assert not changed.from_cache and changed.provider.name == "Renamed Mail"
    again = discover(service=srv.url, dev_mode=True, cache=cache)
    assert srv.hits()[-1]["if-none-match"] == '"b"' and again.provider.name == "Renamed Mail"


def test_no_store_is_never_cached(srv: Srv) -> None:
    cache = DiscoveryCache()
    srv.service(headers={"Cache-Control": "no-store, max-age=300"}, etag='"x"')
    discover(service=srv.url, dev_mode=True, cache=cache)
    found = discover(service=srv.url, dev_mode=True, cache=cache)
    assert len(srv.hits()) == 2 and not found.from_cache
    assert all("if-none-match" not in h for h in srv.hits())
    assert len(cache) == 0


def test_no_caching_headers_means_no_reuse(srv: Srv) -> None:
    cache = DiscoveryCache()
    srv.service()
    discover(service=srv.url, dev_mode=True, cache=cache)
    discover(service=srv.url, dev_mode=True, cache=cache)
    assert len(srv.hits()) == 2 and len(cache) == 0


def test_cache_is_bounded(srv: Srv) -> None:
    cache = DiscoveryCache(max_entries=2)
    for name in ("a", "b", "c"):
        srv.add(
            f"/{name}/.well-known/ath-app.json",
            body=service_doc(f"{srv.url}/{name}"),
            headers={"Cache-Control": "max-age=300"},
        )
        discover(service=f"{srv.url}/{name}", dev_mode=True, cache=cache)
    assert len(cache) == 2
    assert f"{srv.url}/a/.well-known/ath-app.json" not in cache


def test_ath_shop_is_cacheable(shop: Shop) -> None:
    cache = DiscoveryCache()
    discover(service=shop.url, dev_mode=True, cache=cache)
    assert discover(service=shop.url, dev_mode=True, cache=cache).from_cache


# -- agent-framework tools ------------------------------------------------------------------


def test_tool_needs_confirmation_then_ok(shop: Shop) -> None:
    result = discover_provider_tool(shop.url, dev_mode=True)
    assert result == {
        "status": "needs_confirmation",
        "url": shop.url,
        "origin": shop.url,
        "message": result["message"],
    }
    ok = discover_provider_tool(shop.url, approved_origins=[shop.url], dev_mode=True)
    assert ok["status"] == "ok" and ok["mode"] == "direct"
    assert ok["providers"][0]["provider_id"] == "ath-shop"
    json.dumps(ok)  # JSON-ready


def test_tool_reports_guard_errors() -> None:
    result = discover_provider_tool("https://169.254.169.254/", allow=["https://169.254.169.254"])
    assert result["status"] == "error" and result["code"] == "DISCOVERY_URL_BLOCKED"
    assert result["details"]["address"] == "169.254.169.254"


def test_async_tools(shop: Shop, registry: Registry) -> None:
    async def main() -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
        a = await adiscover_provider_tool(shop.url, dev_mode=True)
        b = await adiscover_provider_tool(shop.url, allow=[shop.url], dev_mode=True)
        c = await asearch_providers_tool("sneakers", registry=registry.url, dev_mode=True)
        return a, b, c

    a, b, c = asyncio.run(main())
    assert a["status"] == "needs_confirmation" and b["status"] == "ok"
    assert c["status"] == "ok" and c["providers"][0]["name"] == "ATH Shop"  # type: ignore[index]


def test_search_tool(registry: Registry) -> None:
    result = search_providers_tool("footwear", registry=registry.url, dev_mode=True, limit=1)
    assert result["status"] == "ok" and len(result["providers"]) == 1
    assert search_providers_tool("x", registry=registry.url)["code"] == "DISCOVERY_URL_BLOCKED"


def test_discovery_to_dict_round_trips(catalog: Catalog) -> None:
    found: Discovery = discover(gateway=catalog.url, dev_mode=True)
    data = json.loads(json.dumps(found.to_dict()))
    assert data["mode"] == "gateway" and data["providers"][1]["scopes"] == ["events:read"]

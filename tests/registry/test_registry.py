"""The registry against real servers: listing with proof, refusals, search, re-validation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.responses import PlainTextResponse

from athkit.registry.documents import AGENT_AUTH_PATH, GATEWAY_PATH, SERVICE_PATH
from athkit.registry.proof import VERIFICATION_PATH
from tests.conftest import start_shop
from tests.registry.conftest import (
    ADMIN,
    FakeService,
    Registry,
    agent_auth_doc,
    gateway_doc,
    service_doc,
)

MAIL_DESCRIPTION = "Email for teams: read messages, send replies, organise folders and contacts"
SHOP_DESCRIPTION = "Sneakers and athletic footwear, delivered to your door"

StartService = Callable[[str, Any], FakeService]


def _mail(start_service: StartService) -> FakeService:
    svc = start_service(SERVICE_PATH, None)
    svc.doc = service_doc(
        svc.url, "postbox", "Postbox Mail", description=MAIL_DESCRIPTION, categories=["email"]
    )
    return svc


def _gateway(start_service: StartService) -> FakeService:
    svc = start_service(GATEWAY_PATH, None)
    svc.doc = gateway_doc(svc.url)
    return svc


def _agent_auth(start_service: StartService) -> FakeService:
    svc = start_service(AGENT_AUTH_PATH, None)
    svc.doc = agent_auth_doc(svc.url)
    return svc


def test_listing_needs_proof_then_is_searchable(
    start_registry: Callable[..., Registry], start_service: StartService
) -> None:
    reg = start_registry()
    mail = _mail(start_service)

    first = reg.submit(mail.url)
    assert first.status_code == 202
    body = first.json()
    assert body["status"] == "pending" and body["verified"] is False
    assert body["protocol"] == "ath"
    token = body["challenge"]["token"]
    assert token.startswith("athreg-")
    assert body["challenge"]["verification_url"] == mail.url + VERIFICATION_PATH
    # not searchable while pending
    assert reg.search("email")["count"] == 0

    mail.publish(token)
    done = reg.verify(body["listing_id"])
    assert done.status_code == 200, done.text
    listed = done.json()
    assert listed["status"] == "listed" and listed["verified"] is True
    assert listed["providers"][0]["name"] == "Postbox Mail"

    result = reg.search("email")
    assert result["intent"] == "email" and result["count"] == 1
    hit = result["providers"][0]
    assert hit["name"] == "Postbox Mail"
    assert hit["url"] == mail.url and hit["issuer"] == mail.url
    assert hit["scopes"] == ["mail:read", "mail:send"]
    assert hit["categories"] == ["email"]
    assert hit["protocol"] == "ath" and hit["verified"] is True
    assert hit["score"] > 0


def test_already_published_token_lists_on_submit(
    start_registry: Callable[..., Registry], start_service: StartService
) -> None:
    reg = start_registry()
    mail = _mail(start_service)
    mail.publish(reg.service.token_for(mail.url))
    resp = reg.submit(mail.url + SERVICE_PATH)  # the well-known URL itself is accepted too
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "listed"


def test_three_kinds_of_document_and_keyword_search(
    start_registry: Callable[..., Registry], start_service: StartService
) -> None:
    reg = start_registry()
    mail, gw, aa = _mail(start_service), _gateway(start_service), _agent_auth(start_service)
    for svc in (mail, gw, aa):
        reg.list_with_proof(svc)

    gw_listing = reg.search("bank transfers")["providers"]
    assert gw_listing[0]["name"] == "Ledgerly Bank"
    assert gw_listing[0]["protocol"] == "ath-gateway"
    assert gw_listing[0]["provider_id"] == "ledgerly"
    assert reg.search("flight tickets")["providers"][0]["name"] == "SkyHop"
    weather = reg.search("storm alerts")["providers"][0]
    assert weather["name"] == "weatherly" and weather["protocol"] == "agent-auth"
    assert weather["issuer"] == aa.url
    assert reg.search("send email", mode="keyword")["providers"][0]["name"] == "Postbox Mail"
    status = reg.http.get("/api/status").json()
    assert status["listings"]["listed"] == 3 and status["listings"]["entries"] == 4


def test_ath_shop_listed_with_submitter_description(
    tmp_path: Path, start_registry: Callable[..., Registry]
) -> None:
    shop = start_shop(tmp_path)
    try:
        reg = start_registry()
        token = reg.service.token_for(shop.url)
        shop.app.add_api_route(
            VERIFICATION_PATH, lambda: PlainTextResponse(token + "\n"), methods=["GET"]
        )
        resp = reg.submit(shop.url, description=SHOP_DESCRIPTION, categories=["shopping"])
        assert resp.status_code == 201, resp.text
        hit = reg.search("athletic sneakers", mode="keyword")["providers"][0]
        assert hit["url"] == shop.url and hit["verified"] is True
        assert hit["description"] == SHOP_DESCRIPTION
    finally:
        shop.server.stop()


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ("{not json", "not JSON"),
        (["a", "list"], "not a JSON object"),
        ({"ath_version": "0.1", "name": "no auth"}, "not valid"),
        ("v9", "Incompatible ATH version"),
    ],
)
def test_bad_document_is_refused(
    start_registry: Callable[..., Registry],
    start_service: StartService,
    doc: Any,
    problem: str,
) -> None:
    reg = start_registry()
    svc = start_service(SERVICE_PATH, None)
    svc.doc = service_doc(svc.url, "x", "X", ath_version="9.0") if doc == "v9" else doc
    resp = reg.submit(svc.url)
    assert resp.status_code == 422
    body = resp.json()
    assert body["code"] == "DISCOVERY_DOCUMENT_INVALID"
    assert problem in body["details"]["problems"][SERVICE_PATH]
    assert reg.http.get("/api/listings", params={"status": "pending"}).json()["count"] == 0


def test_origin_without_document_is_refused(
    start_registry: Callable[..., Registry], start_service: StartService
) -> None:
    reg = start_registry()
    svc = start_service(SERVICE_PATH, None)
    resp = reg.submit(svc.url)
    assert resp.status_code == 422
    assert set(resp.json()["details"]["problems"]) == {SERVICE_PATH, GATEWAY_PATH, AGENT_AUTH_PATH}


def test_failed_proof_is_refused(
    start_registry: Callable[..., Registry], start_service: StartService
) -> None:
    reg = start_registry()
    mail = _mail(start_service)
    listing = reg.submit(mail.url).json()
    # nothing published
    resp = reg.verify(listing["listing_id"])
    assert resp.status_code == 403
    assert resp.json()["code"] == "OWNERSHIP_NOT_PROVEN"
    assert "HTTP 404" in resp.json()["details"]["reason"]
    # a token for another origin (e.g. copied from elsewhere)
    mail.publish(reg.service.token_for("http://127.0.0.1:1"))
    resp = reg.verify(listing["listing_id"])
    assert resp.status_code == 403
    assert resp.json()["details"]["reason"] == "verification file does not contain the token"
    assert resp.json()["details"]["token"] == listing["challenge"]["token"]
    assert reg.search("email")["count"] == 0
    assert reg.http.get(f"/api/listings/{listing['listing_id']}").json()["status"] == "pending"


def test_ssrf_refusals(
    start_registry: Callable[..., Registry], start_service: StartService
) -> None:
    prod = start_registry(dev_mode=False)
    mail = _mail(start_service)
    for url, why in [
        (mail.url, "https"),  # plain http outside dev mode
        ("https://127.0.0.1:9/", "non-public"),  # loopback outside dev mode
        ("ftp://example.org/", "http(s)"),
        ("https://user:pw@example.org/", "credentials"),
    ]:
        resp = prod.submit(url)
        assert resp.status_code == 400, (url, resp.text)
        assert resp.json()["code"] == "URL_NOT_ALLOWED"
        assert why in resp.json()["message"]
    dev = start_registry(dev_mode=True)
    for url in ("http://10.0.0.1/", "http://169.254.169.254/", "http://192.168.1.1/"):
        resp = dev.submit(url)
        assert resp.status_code == 400, (url, resp.text)
        assert resp.json()["code"] == "URL_NOT_ALLOWED"
    assert mail.hits == {}


def test_delisted_after_revalidation(
    start_registry: Callable[..., Registry], start_service: StartService
) -> None:
    reg = start_registry()
    mail, gw, aa = _mail(start_service), _gateway(start_service), _agent_auth(start_service)
    ids = {
        name: reg.list_with_proof(s)["listing_id"]
        for name, s in (("mail", mail), ("gw", gw), ("aa", aa))
    }

    report = reg.revalidate()
    assert report["checked"] == 3 and report["kept"] == 3 and report["dropped"] == []

    mail.doc = None  # the service takes its document down
    aa.verification = None  # the owner withdraws the proof
    gw.doc["supported_providers"][1]["description"] = "Train tickets and rail passes"
    report = reg.revalidate()
    assert sorted(report["dropped"]) == sorted([ids["mail"], ids["aa"]])
    assert report["kept"] == 1
    assert reg.search("email")["count"] == 0
    assert reg.search("storm alerts")["count"] == 0
    assert reg.search("rail passes")["providers"][0]["name"] == "SkyHop"  # re-indexed
    dropped = reg.http.get(f"/api/listings/{ids['mail']}").json()
    assert dropped["status"] == "delisted" and "404" in dropped["last_error"]
    # coming back requires a new submission
    mail.doc = service_doc(mail.url, "postbox", "Postbox Mail", description=MAIL_DESCRIPTION)
    assert reg.submit(mail.url).status_code == 201  # token still published: listed again
    assert reg.search("email")["count"] == 1


def test_transient_failures_tolerated_until_threshold(
    start_registry: Callable[..., Registry], start_service: StartService
) -> None:
    reg = start_registry(delist_after_failures=2)
    mail = _mail(start_service)
    lid = reg.list_with_proof(mail)["listing_id"]
    assert mail.server is not None
    mail.server.stop()  # connection refused: no definite answer
    first = reg.revalidate()
    assert first["dropped"] == [] and lid in first["errors"]
    assert reg.search("email")["count"] == 1
    second = reg.revalidate()
    assert second["dropped"] == [lid]
    assert reg.search("email")["count"] == 0


def test_background_revalidation(
    start_registry: Callable[..., Registry], start_service: StartService
) -> None:
    import time

    reg = start_registry(revalidate_interval=0.3)
    mail = _mail(start_service)
    reg.list_with_proof(mail)
    mail.doc = None
    deadline = time.monotonic() + 10
    while reg.search("email")["count"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert reg.search("email")["count"] == 0


def test_admin_endpoints_need_token(
    start_registry: Callable[..., Registry], start_service: StartService
) -> None:
    reg = start_registry()
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        resp = reg.http.post("/api/admin/revalidate", headers=headers)
        assert resp.status_code == 401
        assert resp.json()["code"] == "ADMIN_UNAUTHORIZED"
    gw = _gateway(start_service)
    resp = reg.http.post(
        "/api/admin/listings", json={"url": gw.url}, headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert resp.status_code == 201
    hit = reg.search("airline")["providers"][0]
    assert hit["name"] == "SkyHop" and hit["verified"] is False
    lid = resp.json()["listing_id"]
    assert (
        reg.http.delete(
            f"/api/admin/listings/{lid}", headers={"Authorization": f"Bearer {ADMIN}"}
        ).status_code
        == 204
    )
    assert reg.search("airline")["count"] == 0


def test_request_errors_are_ath_json(start_registry: Callable[..., Registry]) -> None:
    reg = start_registry()
    for params in ({}, {"intent": ""}, {"intent": "x", "limit": 0}, {"intent": "x", "limit": 51}):
        resp = reg.http.get("/api/search", params=params)
        assert resp.status_code == 422, params
        assert resp.json()["code"] == "VALIDATION_ERROR"
    assert reg.http.get("/api/search", params={"intent": "   "}).json()["code"] == (
        "VALIDATION_ERROR"
    )
    resp = reg.http.post("/api/listings", content=b"{}", headers={"content-type": "text/plain"})
    assert resp.status_code == 415 and resp.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    resp = reg.http.post("/api/listings", json={"nourl": 1})
    assert resp.status_code == 422 and resp.json()["code"] == "VALIDATION_ERROR"
    resp = reg.http.get("/api/listings/lst_nope")
    assert resp.status_code == 404 and resp.json()["code"] == "NOT_FOUND"
    resp = reg.http.get("/api/search", params={"intent": "x", "mode": "hybrid"})
    assert resp.status_code == 503 and resp.json()["code"] == "SERVICE_UNAVAILABLE"
    # punctuation and FTS operators in the intent are plain words, never syntax
    assert reg.search('"NEAR(a b)" OR * -x')["count"] == 0


def test_secret_and_listings_survive_restart(
    tmp_path: Path, start_registry: Callable[..., Registry], start_service: StartService
) -> None:
    first = start_registry(data_dir=tmp_path / "reg")
    mail = _mail(start_service)
    first.list_with_proof(mail)
    token = first.service.token_for(mail.url)
    first.server.stop()
    second = start_registry(data_dir=tmp_path / "reg")
    assert second.service.token_for(mail.url) == token
    assert second.search("email")["count"] == 1
    assert second.revalidate()["kept"] == 1


def test_postgresql_backed_registry(
    registry_pg_url: str, start_registry: Callable[..., Registry], start_service: StartService
) -> None:
    reg = start_registry(database_url=registry_pg_url)
    mail, gw = _mail(start_service), _gateway(start_service)
    reg.list_with_proof(mail)
    reg.list_with_proof(gw)
    assert reg.search("send email")["providers"][0]["name"] == "Postbox Mail"
    assert reg.search("bank transfers")["providers"][0]["name"] == "Ledgerly Bank"
    mail.doc = None
    assert len(reg.revalidate()["dropped"]) == 1
    assert reg.search("email")["count"] == 0

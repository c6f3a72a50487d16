"""The provider admin API on two gateway nodes: operator session + CSRF header, validation
like the TOML, versions in PostgreSQL, and both nodes following a change and a disable."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.gateway.test_operating_browser import (  # noqa: F401 - fixtures
    OPERATOR,
    OPERATOR_PASSWORD,
    TwoNodes,
    create_operator,
    two_nodes,
)


def signed_in(url: str) -> tuple[httpx.Client, str]:
    http = httpx.Client(base_url=url, timeout=30)
    page = http.get("/ath/operator/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    done = http.post(
        "/ath/operator/signin",
        data={"csrf": csrf.group(1), "name": OPERATOR, "password": OPERATOR_PASSWORD},
    )
    assert done.status_code == 303, done.text
    return http, csrf.group(1)


def catalog_ids(url: str) -> set[str]:
    doc = httpx.get(f"{url}/.well-known/ath.json").json()
    return {p["provider_id"] for p in doc["supported_providers"]}


def wait_for(check: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the other node never followed"
        time.sleep(0.2)


def test_admin_api_adds_and_disables_a_provider_on_every_node(
    two_nodes: Callable[..., TwoNodes],  # noqa: F811 - the fixture imported above
) -> None:
    gw = two_nodes()
    create_operator(gw.db_url)
    assert httpx.get(f"{gw.url}/ath/admin/providers").json()["code"] == "OPERATOR_ONLY"
    http, csrf = signed_in(gw.url)
    listed = http.get("/ath/admin/providers").json()["providers"]
    assert [(p["provider_id"], p["source"]) for p in listed] == [("mail", "toml")]
    mail: dict[str, Any] = dict(listed[0]["config"])
    copy = {**mail, "provider_id": "mail2", "display_name": "Mail, again"}

    no_csrf = http.put("/ath/admin/providers/mail2", json={"provider": copy})
    assert no_csrf.status_code == 400 and no_csrf.json()["code"] == "STATE_MISMATCH"
    headers = {"X-CSRF-Token": csrf}
    bad = {**copy, "routes": [{"method": "GET", "path": "/v1/me", "scope": "mail:nope"}]}
    refused = http.put("/ath/admin/providers/mail2", json={"provider": bad}, headers=headers)
    assert refused.json()["code"] == "VALIDATION_ERROR"
    assert "routes[0].scope" in refused.json()["details"]["errors"]
    mismatch = http.put("/ath/admin/providers/other", json={"provider": copy}, headers=headers)
    assert mismatch.json()["code"] == "VALIDATION_ERROR"

    saved = http.put(
        "/ath/admin/providers/mail2",
        json={"provider": copy, "client_secret": gw.op.client_secret},
        headers=headers,
    )
    assert saved.status_code == 200, saved.text
    version = saved.json()["version"]
    assert "mail2" in catalog_ids(gw.url)  # at once on the node that saved it
    wait_for(lambda: "mail2" in catalog_ids(gw.url_b))

    entry = next(
        p
        for p in http.get("/ath/admin/providers").json()["providers"]
        if p["provider_id"] == "mail2"
    )
    assert (entry["source"], entry["version"], entry["operator"]) == ("database", version, OPERATOR)
    assert "client_secret" not in entry["config"]  # the sealed secret never comes back

    off = http.post("/ath/admin/providers/mail2/disable", headers=headers)
    assert off.status_code == 200 and off.json()["disabled"] is True
    wait_for(lambda: "mail2" not in catalog_ids(gw.url_b))
    assert catalog_ids(gw.url) == {"mail"}
    last = http.post("/ath/admin/providers/mail/disable", headers=headers)
    assert last.json()["code"] == "INVALID_REQUEST"  # the last provider stays

    rows = gw.services[0].store.list_audit(limit=50)
    changes = [(r.event, r.provider_id, r.details.get("operator")) for r in rows]
    assert ("provider_changed", "mail2", OPERATOR) in changes
    assert ("provider_disabled", "mail2", OPERATOR) in changes
    http.close()

"""Agent identity: documents, key rotation with a grace period (both kids listed and both
verifying at a real ATH Shop), and the grace period's end."""

from __future__ import annotations

import time

import httpx

from athkit.client.profile import AgentProfile
from athkit.crypto import sign_attestation
from tests.agent.conftest import Published
from tests.conftest import Shop


def test_rotation_lists_both_kids_until_the_grace_period_ends() -> None:
    profile = AgentProfile.create("A", {"name": "D", "id": "d"},
                                  agent_id="https://agent.example/.well-known/agent.json")
    old = profile.key
    assert profile.identity_document()["public_key"]["kid"] == old.kid  # a single JWK
    now = time.time()
    new = profile.rotate(grace=600, now=now)
    assert profile.key == new and new.kid != old.kid
    keys = profile.identity_document(now + 1)["public_key"]["keys"]
    assert [k["kid"] for k in keys] == [new.kid, old.kid]
    assert all("d" not in k for k in keys)  # public halves only
    assert [k["kid"] for k in profile.client_metadata(now + 1)["jwks"]["keys"]] == [
        new.kid, old.kid]
    later = profile.identity_document(now + 601)["public_key"]
    assert later["kid"] == new.kid and "keys" not in later
    again = AgentProfile.from_dict(profile.to_dict())  # survives the vault round trip
    assert [k.kid for k in again.verifying_keys(now + 1)] == [new.kid, old.kid]
    cimd = profile.client_metadata()
    assert cimd["client_id"] == "https://agent.example/oauth/client-metadata.json"
    assert cimd["software_id"] == profile.agent_id and cimd["redirect_uris"]


def test_old_key_still_verifies_at_the_service_during_grace(
    published: Published, shop: Shop
) -> None:
    agent = published.agent
    old = agent.profile.key
    agent.rotate_key(grace=600)
    new = agent.profile.key
    body = {
        "agent_id": agent.agent_id,
        "agent_attestation": sign_attestation(new, agent.agent_id, shop.url),
        "developer": agent.profile.developer,
        "requested_providers": [{"provider_id": "ath-shop", "scopes": ["products:read"]}],
    }
    reg = httpx.post(f"{shop.url}/ath/agents/register", json=body)
    assert reg.status_code == 201, reg.text
    for key in (old, new):  # both kids are in the served JWK Set: both attestations verify
        auth = httpx.post(f"{shop.url}/ath/authorize", json={
            "client_id": reg.json()["client_id"],
            "agent_attestation": sign_attestation(key, agent.agent_id, shop.url),
            "provider_id": "ath-shop", "scopes": ["products:read"], "state": "s" * 43,
        })
        assert auth.status_code == 200, auth.text
    stranger = AgentProfile.create("X", {"name": "D", "id": "d"}, agent_id=agent.agent_id).key
    forged = httpx.post(f"{shop.url}/ath/authorize", json={
        "client_id": reg.json()["client_id"],
        "agent_attestation": sign_attestation(stranger, agent.agent_id, shop.url),
        "provider_id": "ath-shop", "scopes": ["products:read"], "state": "s" * 43,
    })
    assert forged.status_code == 401 and forged.json()["code"] == "INVALID_ATTESTATION"

"""Attestation key selection and ``nbf`` (PROTOCOL.md §3, RFC 7519 §4.1.5), against identity
documents on the real identity host and a real SQLite replay cache: a ``kid`` that names no
key of the identity document is refused (no fallback to another key), and an attestation that
is not valid yet is refused beyond the configured clock leeway."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from athkit.crypto.keys import AgentKey
from athkit.store.db import Database
from tests.conftest import AgentIdentity
from tests.unit.test_attestation_verifier import Env, claims_for, raw_token, refused


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    db = Database(f"sqlite:///{tmp_path / 'kid.db'}")
    e = Env(db)
    try:
        yield e
    finally:
        e.close()
        db.dispose()


def _publish_keys(agent: AgentIdentity, *keys: AgentKey) -> None:
    doc: dict[str, Any] = agent.app.state.documents[agent.path]
    doc["public_key"] = {"keys": [k.public_jwk() for k in keys]}


def test_unknown_kid_in_a_jwk_set_is_refused_not_the_first_key(
    env: Env, new_agent: Callable[..., AgentIdentity]
) -> None:
    agent = new_agent("kid-set")
    first, second = AgentKey.generate(kid="k1"), AgentKey.generate(kid="k2")
    _publish_keys(agent, first, second)
    for key in (first, second):
        token = raw_token(key, claims_for(env, agent), kid=key.kid)
        assert env.verifier.verify(token, endpoint="register").agent_id == agent.agent_id
    # Signed by the first key but naming a key the document does not have: refused (today's
    # main fell back to the first key and accepted it).
    err = refused(env, raw_token(first, claims_for(env, agent), kid="k-unknown"), match="kid")
    assert "names no key" in err.message
    # No kid with several keys: ambiguous, refused.
    refused(env, raw_token(first, claims_for(env, agent), kid=None), match="kid")


def test_kid_of_a_single_jwk_must_match_when_the_key_names_itself(
    env: Env, agent: AgentIdentity
) -> None:
    ok = raw_token(agent.key, claims_for(env, agent), kid="default")
    assert env.verifier.verify(ok, endpoint="register")
    refused(env, raw_token(agent.key, claims_for(env, agent), kid="other"), match="kid")
    # A JWK without a kid is the document's only key: any kid (the SDKs send one) selects it.
    doc = agent.app.state.documents[agent.path]
    doc["public_key"] = {k: v for k, v in agent.key.public_jwk().items() if k != "kid"}
    env.clock.advance(301)  # past the identity cache
    token = raw_token(agent.key, claims_for(env, agent), kid="key-1")
    assert env.verifier.verify(token, endpoint="register")


@pytest.mark.parametrize(
    ("offset", "ok"), [(0, True), (-10, True), (299, True), (301, False), (3600, False)]
)
def test_nbf_in_the_future_is_refused_beyond_the_leeway(
    env: Env, agent: AgentIdentity, offset: int, ok: bool
) -> None:
    token = raw_token(agent.key, claims_for(env, agent, nbf=int(env.clock.now) + offset))
    if ok:
        assert env.verifier.verify(token, endpoint="register")
    else:
        refused(env, token, match="nbf")


def test_non_numeric_nbf_is_refused(env: Env, agent: AgentIdentity) -> None:
    refused(env, raw_token(agent.key, claims_for(env, agent, nbf="soon")), match="nbf")

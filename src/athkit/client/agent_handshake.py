"""The 9-step handshake (PROTOCOL.md §10) for an :class:`~athkit.client.agent.ATHAgent`, with
the user's pre-authorization credential taken from the vault and the session kept there.

The agent's handshake identity is the ``did:key`` of its current signing key; the user issues
the credential to that DID (``athkit user grant --agent DID --store-for SERVICE`` puts it in
the vault). The vault keeps the completed session's token, scopes, restrictions and expiry per
end user and service; the session keys stay in the live :class:`HandshakeSession` only (its
message sequence cannot be shared between processes), so another process runs a new handshake.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import httpx

from athkit.client.agent import ATHAgent, NotConnected
from athkit.client.handshake import DEFAULT_WAIT, HandshakeSession, PendingConfirmation
from athkit.client.sync import ATHClient
from athkit.client.vault import DEFAULT_USER
from athkit.crypto.did import did_key_from_jwk


def agent_did(agent: ATHAgent) -> str:
    """The ``did:key`` the agent's credentials must name (its current signing key)."""
    return did_key_from_jwk(agent.profile.key.public_jwk())


def handshake(
    agent: ATHAgent,
    service: str,
    scopes: Iterable[str],
    *,
    user: str = DEFAULT_USER,
    wait: float = DEFAULT_WAIT,
    on_pending: Callable[[PendingConfirmation], None] | None = None,
) -> HandshakeSession:
    """Run steps 1-9 at ``service`` with ``user``'s stored credential covering ``scopes``."""
    wanted = list(scopes)
    did = agent_did(agent)
    entry = agent.vault.find_user_credential(service, scopes=wanted, client_did=did, user=user)
    if entry is None:
        raise NotConnected(
            f"no credential from user {user!r} covers {wanted} at {service}: the user issues "
            f"one with `athkit user grant --agent {did} --store-for {service}`"
        )
    providers = agent.discover(service)
    api_base = providers[0].api_base if providers else None
    http = httpx.Client(timeout=max(agent.timeout, wait + 10))
    client = ATHClient(service, did, agent.profile.key, http_client=http, api_base=api_base)
    try:
        session = client.handshake(wanted, entry, wait=wait, on_pending=on_pending)
    except BaseException:
        http.close()
        raise
    agent.vault.save_handshake(service, _summary(session), user=user)
    return session


def _summary(session: HandshakeSession) -> dict[str, Any]:
    result = session.result
    return {
        "handshake_id": result.handshake_id,
        "session_id": result.session_id,
        "client_did": result.client_did,
        "server_did": result.server_did,
        "scopes_granted": result.scopes_granted,
        "scopes_denied": result.scopes_denied,
        "restrictions": result.restrictions,
        "access_token": result.access_token,
        "token_expires_at": int(session.core.token_expires_at),
        "session_expires_at": result.session_expires_at,
    }

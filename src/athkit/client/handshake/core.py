"""The agent's side of the nine steps, without I/O: :class:`HandshakeCore` and its flow.

:meth:`HandshakeCore.flow` runs the steps in order (``hello``: 1–4, ``scope``: 5–8,
``complete``: 9) as one generator; :mod:`athkit.client.handshake.drivers` does the I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from athkit.client.errors import ProtocolViolation
from athkit.client.handshake.complete import complete
from athkit.client.handshake.hello import hello, prove_identity
from athkit.client.handshake.messages import (
    DEFAULT_TTL,
    DEFAULT_WAIT,
    HANDSHAKE_PATH,
    HandshakeFlow,
    HandshakeResult,
    Observer,
    PendingConfirmation,
    int_field,
    str_field,
)
from athkit.client.handshake.scope import await_scope_result, check_scope_result, request_scopes
from athkit.crypto.credentials import SignedCredential
from athkit.crypto.did import did_key_from_jwk
from athkit.crypto.keys import AgentKey


class HandshakeCore:
    """Builds and checks every message of the agent's side (no I/O)."""

    def __init__(
        self,
        base_url: str,
        key: AgentKey,
        *,
        client_did: str | None = None,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.client_did = client_did or did_key_from_jwk(key.public_jwk())
        self.clock = clock
        self.timer = timer

    def client_pubkey(self) -> dict[str, Any]:
        jwk = self.key.public_jwk()
        return {k: jwk[k] for k in ("kty", "crv", "x", "y", "alg", "kid") if k in jwk}

    def url(self, handshake_id: str | None = None, suffix: str = "") -> str:
        if handshake_id is None:
            return self.base_url + HANDSHAKE_PATH
        return f"{self.base_url}{HANDSHAKE_PATH}/{quote(handshake_id, safe='')}{suffix}"

    def flow(
        self,
        scopes: list[str],
        credential: SignedCredential,
        *,
        ttl: int = DEFAULT_TTL,
        context: Mapping[str, Any] | None = None,
        wait: float = DEFAULT_WAIT,
        poll_interval: float = 1.0,
        on_pending: Callable[[PendingConfirmation], None] | None = None,
        observer: Observer | None = None,
    ) -> HandshakeFlow:
        """Steps 1–9; see the package docstring for the driving protocol."""
        note: Observer = observer or (lambda step, title, payload: None)
        timings: dict[str, float] = {}
        t0 = self.timer()
        server = yield from hello(self, note)
        metadata = yield from prove_identity(self, server, note)
        status, body = yield from request_scopes(
            self, server, scopes, credential, ttl=ttl, context=context, note=note
        )
        timings["steps_1_5"] = self.timer() - t0
        scope_result = body
        if status != 200:
            scope_result = yield from await_scope_result(
                self,
                server,
                scopes,
                body,
                wait=wait,
                poll_interval=poll_interval,
                on_pending=on_pending,
                note=note,
                timings=timings,
            )
        check_scope_result(scope_result, note)
        done, keys = yield from complete(self, server, note, timings)
        token = str_field(done, "access_token")
        if str(done.get("token_type", "")).lower() != "bearer":
            raise ProtocolViolation("token_type must be Bearer")
        result = HandshakeResult(
            handshake_id=server.handshake_id,
            client_did=self.client_did,
            server_did=server.server_did,
            server_pubkey=dict(server.server_pubkey),
            version=server.version,
            identity_metadata=metadata,
            scope_result=scope_result,
            complete={k: v for k, v in done.items() if k != "access_token"},
            session_id=str_field(done, "session_id"),
            session_expires_at=int_field(done, "session_expires_at"),
            access_token=token,
            expires_in=int_field(done, "expires_in"),
            keys=keys,
            timings=timings,
        )
        note(9, "handshake_complete", {**result.complete, "access_token": token[:24] + "…"})
        return result

"""Steps 5–8: the scope request with the user's credential, then the wait for the user.

Step 5 answers 200 (decided at once) or 202: the service asks the user out of band (steps 6–7)
and the agent long-polls for the scope_result (step 8), within its own ``wait``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any

from athkit.client.errors import ConfirmationTimeoutError, ProtocolViolation
from athkit.client.handshake.hello import ServerHello
from athkit.client.handshake.messages import (
    MAX_LONG_POLL,
    AgentSide,
    HandshakeRequest,
    Observer,
    PendingConfirmation,
    Step,
    expect_json,
    int_field,
    str_field,
)
from athkit.crypto.credentials import SignedCredential


def request_scopes(
    agent: AgentSide,
    server: ServerHello,
    scopes: list[str],
    credential: SignedCredential,
    *,
    ttl: int,
    context: Mapping[str, Any] | None,
    note: Observer,
) -> Generator[Step, Any, tuple[int, dict[str, Any]]]:
    """Step 5 (scope_request) out; ``(status, body)`` of the answer (200 or 202)."""
    request5 = {
        "scopes": list(scopes),
        "ttl": int(ttl),
        "user_authorization": credential.to_dict(),
        "context": dict(context) if context is not None else {},
    }
    note(5, "scope_request", request5)
    resp = yield HandshakeRequest("POST", agent.url(server.handshake_id, "/scope"), request5)
    return resp.status, expect_json(resp, 202, 200)


def await_scope_result(
    agent: AgentSide,
    server: ServerHello,
    scopes: list[str],
    pending_body: dict[str, Any],
    *,
    wait: float,
    poll_interval: float,
    on_pending: Callable[[PendingConfirmation], None] | None,
    note: Observer,
    timings: dict[str, float],
) -> Generator[Step, Any, dict[str, Any]]:
    """Steps 6–8: tell the application, then long-poll until the user's answer is in."""
    handshake_id = server.handshake_id
    pending = PendingConfirmation(
        handshake_id=handshake_id,
        request_id=str_field(pending_body, "request_id"),
        expires_at=int_field(pending_body, "expires_at"),
        client_did=agent.client_did,
        server_did=server.server_did,
        scopes=tuple(scopes),
    )
    note(6, "pending_user_confirmation", pending_body)
    if on_pending is not None:
        on_pending(pending)
    deadline = agent.clock() + wait
    delay = 0.0
    while True:
        remaining = deadline - agent.clock()
        if remaining <= 0:
            raise ConfirmationTimeoutError(
                "the user did not answer within the agent's wait",
                {"handshake_id": handshake_id, "request_id": pending.request_id},
                status=408,
            )
        long_poll = max(0, min(MAX_LONG_POLL, int(remaining)))
        t_poll = agent.timer()
        resp = yield HandshakeRequest(
            "GET",
            agent.url(handshake_id, f"/result?wait={long_poll}"),
            timeout=long_poll + 15.0,
            delay=delay,
        )
        if resp.status == 202:
            # a server that answers quickly despite ?wait= is polled gently
            elapsed = agent.timer() - t_poll
            delay = poll_interval if elapsed < max(1.0, long_poll / 2) else 0.0
            continue
        scope_result = expect_json(resp, 200)
        timings["step_8_last_poll"] = agent.timer() - t_poll
        return scope_result


def check_scope_result(scope_result: dict[str, Any], note: Observer) -> None:
    """Step 8 as received: it must list what was granted."""
    if not isinstance(scope_result.get("scopes_granted"), list):
        raise ProtocolViolation("scope_result lacks scopes_granted")
    note(8, "scope_result", scope_result)

"""The agent's side of the 9-step trusted handshake (PROTOCOL.md §10, docs/handshake.md).

:class:`HandshakeCore` is sans-I/O: :meth:`HandshakeCore.flow` is a generator that yields
:class:`HandshakeRequest` (or :class:`ResolveDID` when a ``did:web`` must be fetched), receives
:class:`~athkit.client._core.RawResponse` (or the resolved JWK) and returns a
:class:`HandshakeResult`. :func:`run_handshake` / :func:`arun_handshake` drive it over httpx and
wrap the result in a :class:`HandshakeSession` / :class:`AsyncHandshakeSession` whose calls are
encrypted transparently. ``ATHClient.handshake`` and ``AsyncATHClient.handshake`` call these.

Order of trust: the server's step-2 signature (and that ``server_pubkey`` is the key
``server_did`` names) is verified **before** the agent signs anything for it (step 3).

One module per part: ``messages`` (what the flow yields and returns), ``hello`` (steps 1–4),
``scope`` (steps 5–8), ``complete`` (step 9), ``core`` (:class:`HandshakeCore`), ``session``
(the encrypted session) and ``drivers`` (:func:`run_handshake`, :func:`arun_handshake`).
"""

from athkit.client.errors import ATHError
from athkit.client.handshake.core import HandshakeCore
from athkit.client.handshake.drivers import (
    arun_handshake,
    coerce_credential,
    default_resolver,
    run_handshake,
)
from athkit.client.handshake.messages import (
    CAPABILITIES,
    DEFAULT_TTL,
    DEFAULT_WAIT,
    HANDSHAKE_PATH,
    MAX_LONG_POLL,
    VERSIONS,
    HandshakeFlow,
    HandshakeRequest,
    HandshakeResult,
    Observer,
    PendingConfirmation,
    ResolveDID,
)
from athkit.client.handshake.session import AsyncHandshakeSession, HandshakeSession, SessionCore

__all__ = [
    "CAPABILITIES",
    "DEFAULT_TTL",
    "DEFAULT_WAIT",
    "HANDSHAKE_PATH",
    "MAX_LONG_POLL",
    "VERSIONS",
    "ATHError",
    "AsyncHandshakeSession",
    "HandshakeCore",
    "HandshakeFlow",
    "HandshakeRequest",
    "HandshakeResult",
    "HandshakeSession",
    "Observer",
    "PendingConfirmation",
    "ResolveDID",
    "SessionCore",
    "arun_handshake",
    "coerce_credential",
    "default_resolver",
    "run_handshake",
]

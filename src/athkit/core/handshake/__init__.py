"""The server side of the 9-step trusted handshake (PROTOCOL.md §10, docs/handshake.md).

:class:`HandshakeService` sits next to an :class:`~athkit.core.service.ATHService` (native or
gateway) and shares its store, settings and clock. Every step is one compare-and-set transition
of the handshake row written in one transaction with what the step creates (confirmation request,
session, audit record); every method returns a plain result or raises :class:`ATHError`.

One module per step, in the order of the steps: ``policy`` and ``messages`` (the request
bodies), ``states`` (the one table of which step moves the handshake where), ``hello``
(steps 1–4), ``scope`` (step 5, the user's credential), ``confirmation`` (steps 6–8 out of
band) with ``webhook``, ``completion`` (step 9 and the session keys), ``tokens`` (the session's
token and its restrictions), ``user_keys``; ``service`` composes them.
"""

from athkit.core.handshake.messages import (
    CompleteBody,
    ConfirmationResponseBody,
    HandshakeRequestBody,
    IdentityProofBody,
    KeyLinkBody,
    ScopeRequestBody,
    StepResult,
    parse_body,
)
from athkit.core.handshake.policy import (
    CAPABILITIES,
    MAX_SKEW,
    MAX_WAIT,
    MIN_NONCE_BYTES,
    SESSION_MAX_TTL,
    TOKEN_MAX_TTL,
    VERSIONS,
    HandshakePolicy,
)
from athkit.core.handshake.service import HandshakeService
from athkit.core.handshake.states import State, Step
from athkit.core.handshake.tokens import HandshakeTokenInfo

__all__ = [
    "CAPABILITIES",
    "MAX_SKEW",
    "MAX_WAIT",
    "MIN_NONCE_BYTES",
    "SESSION_MAX_TTL",
    "TOKEN_MAX_TTL",
    "VERSIONS",
    "CompleteBody",
    "ConfirmationResponseBody",
    "HandshakePolicy",
    "HandshakeRequestBody",
    "HandshakeService",
    "HandshakeTokenInfo",
    "IdentityProofBody",
    "KeyLinkBody",
    "ScopeRequestBody",
    "State",
    "Step",
    "StepResult",
    "parse_body",
]

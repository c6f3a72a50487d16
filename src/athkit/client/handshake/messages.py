"""What the handshake flow yields and returns, and the checks of each server answer.

The flow yields :class:`HandshakeRequest` (answer a :class:`~athkit.client._core.RawResponse`)
or :class:`ResolveDID` (answer the public JWK) and returns a :class:`HandshakeResult`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from athkit.client._core import RawResponse
from athkit.client.errors import ProtocolViolation, error_from_response
from athkit.crypto.keys import AgentKey

HANDSHAKE_PATH = "/ath/handshake"
VERSIONS = ["0.1"]
CAPABILITIES = ["ES256", "EdDSA"]
MAX_LONG_POLL = 30
DEFAULT_WAIT = 300.0
DEFAULT_TTL = 3600

Observer = Callable[[int, str, Mapping[str, Any]], None]
"""``observer(step, title, payload)``: called as each step is sent/received (demo, logging)."""


@dataclass(frozen=True)
class HandshakeRequest:
    """One HTTP request of the flow; ``delay`` seconds to wait before sending it."""

    method: str
    url: str
    json: Any = None
    timeout: float | None = None
    delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=lambda: {"Accept": "application/json"})


@dataclass(frozen=True)
class ResolveDID:
    """Ask the driver to resolve a ``did:web`` (network I/O) and send back its public JWK."""

    did: str


@dataclass(frozen=True)
class PendingConfirmation:
    """Step 5 answered 202: the user is being asked out of band (steps 6–7)."""

    handshake_id: str
    request_id: str
    expires_at: int
    client_did: str
    server_did: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class HandshakeResult:
    """Everything the nine steps established (keys included: keep it private)."""

    handshake_id: str
    client_did: str
    server_did: str
    server_pubkey: dict[str, Any]
    version: str
    identity_metadata: dict[str, Any]
    scope_result: dict[str, Any]
    complete: dict[str, Any]
    session_id: str
    session_expires_at: int
    access_token: str
    expires_in: int
    keys: tuple[bytes, bytes]
    timings: dict[str, float]

    @property
    def scopes_granted(self) -> list[str]:
        return [str(s) for s in self.scope_result.get("scopes_granted") or []]

    @property
    def scopes_denied(self) -> list[dict[str, Any]]:
        return list(self.scope_result.get("scopes_denied") or [])

    @property
    def restrictions(self) -> dict[str, Any]:
        r = self.scope_result.get("restrictions")
        return dict(r) if isinstance(r, dict) else {}

    @property
    def ttl_granted(self) -> int:
        v = self.scope_result.get("ttl_granted")
        return v if isinstance(v, int) else 0


Step = HandshakeRequest | ResolveDID
HandshakeFlow = Generator[Step, Any, HandshakeResult]


class AgentSide(Protocol):
    """What each step needs of :class:`~athkit.client.handshake.core.HandshakeCore`."""

    key: AgentKey
    client_did: str
    clock: Callable[[], float]
    timer: Callable[[], float]

    def client_pubkey(self) -> dict[str, Any]: ...

    def url(self, handshake_id: str | None = None, suffix: str = "") -> str: ...


def json_object(response: RawResponse) -> dict[str, Any]:
    """The answer's JSON object (anything else is a protocol violation)."""
    try:
        data = json.loads(response.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolViolation(
            "handshake response is not JSON", {"http_status": response.status}
        ) from exc
    if not isinstance(data, dict):
        raise ProtocolViolation("handshake response is not a JSON object")
    return data


def expect_json(response: RawResponse, *ok: int) -> dict[str, Any]:
    """The JSON object of an answer with one of the ``ok`` statuses; else its typed error."""
    if response.status not in ok:
        raise error_from_response(response.status, response.body)
    return json_object(response)


def str_field(data: Mapping[str, Any], name: str) -> str:
    """A non-empty string member the answer must carry."""
    v = data.get(name)
    if not isinstance(v, str) or not v:
        raise ProtocolViolation(f"handshake response lacks a string {name!r}")
    return v


def int_field(data: Mapping[str, Any], name: str) -> int:
    """An integer member the answer must carry."""
    v = data.get(name)
    if not isinstance(v, int) or isinstance(v, bool):
        raise ProtocolViolation(f"handshake response lacks an integer {name!r}")
    return v

"""Build an agent: ATH clients (sync and async), identity document, credential store.

Discovery in every §2 mode: :func:`discover` / :func:`adiscover` (:mod:`athkit.client.discovery`).

Needs only the agent-side install (pydantic, httpx, joserfc, cryptography); it never imports the
server packages. See PROTOCOL.md §2–§8 for the flow these clients drive.
"""

from athkit.client import errors
from athkit.client._core import (
    PLACEHOLDER_CODE,
    AuthorizationRequestResult,
    ClientCore,
    PreparedRequest,
    RawResponse,
    RedirectParams,
    parse_redirect,
)
from athkit.client.agent import ATHAgent
from athkit.client.aio import AsyncATHClient
from athkit.client.credentials import CredentialStore, StoredCredentials, UserCredentialStore
from athkit.client.discovery import (
    Allowlist,
    DiscoveredProvider,
    Discovery,
    DiscoveryCache,
    DiscoveryMode,
    FetchLimits,
    adiscover,
    discover,
)
from athkit.client.errors import ATHError, DraftVersionWarning
from athkit.client.handshake import (
    AsyncHandshakeSession,
    HandshakeResult,
    HandshakeSession,
    PendingConfirmation,
)
from athkit.client.identity import identity_document
from athkit.client.sync import ATHClient
from athkit.crypto import AgentKey

__all__ = [
    "PLACEHOLDER_CODE",
    "ATHAgent",
    "ATHClient",
    "ATHError",
    "AgentKey",
    "Allowlist",
    "AsyncATHClient",
    "AsyncHandshakeSession",
    "AuthorizationRequestResult",
    "ClientCore",
    "CredentialStore",
    "DiscoveredProvider",
    "Discovery",
    "DiscoveryCache",
    "DiscoveryMode",
    "DraftVersionWarning",
    "FetchLimits",
    "HandshakeResult",
    "HandshakeSession",
    "PendingConfirmation",
    "PreparedRequest",
    "RawResponse",
    "RedirectParams",
    "StoredCredentials",
    "UserCredentialStore",
    "adiscover",
    "discover",
    "errors",
    "identity_document",
    "parse_redirect",
]

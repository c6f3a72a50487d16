"""Build an agent: ATH clients (sync and async), identity document, credential store.

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
from athkit.client.aio import AsyncATHClient
from athkit.client.credentials import CredentialStore, StoredCredentials
from athkit.client.errors import ATHError, DraftVersionWarning
from athkit.client.identity import identity_document
from athkit.client.sync import ATHClient
from athkit.crypto import AgentKey

__all__ = [
    "PLACEHOLDER_CODE",
    "ATHClient",
    "ATHError",
    "AgentKey",
    "AsyncATHClient",
    "AuthorizationRequestResult",
    "ClientCore",
    "CredentialStore",
    "DraftVersionWarning",
    "PreparedRequest",
    "RawResponse",
    "RedirectParams",
    "StoredCredentials",
    "errors",
    "identity_document",
    "parse_redirect",
]

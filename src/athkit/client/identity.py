"""The agent identity document an agent publishes at its ``agent_id`` URL (PROTOCOL.md §3)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from athkit.crypto import AgentKey
from athkit.protocol.messages import AgentIdentityDocument, DeveloperInfo
from athkit.protocol.version import SUPPORTED

#: Serve the document with this header (§3).
IDENTITY_CACHE_CONTROL = "max-age=300"


def identity_document(
    agent_id: str,
    name: str,
    developer: DeveloperInfo | Mapping[str, Any],
    key: AgentKey,
    capabilities: Iterable[str] = (),
) -> dict[str, Any]:
    """The JSON document for ``agent_id``; ``public_key`` is the key's public JWK with ``kid``."""
    document = AgentIdentityDocument(
        ath_version=SUPPORTED,
        agent_id=agent_id,
        name=name,
        developer=DeveloperInfo.model_validate(developer),
        capabilities=list(capabilities),
        public_key=key.public_jwk(),
    )
    return document.model_dump(mode="json", exclude_none=True)

"""Revocations and the channels that carry them to every node (PROTOCOL.md §8: "a revoked
token fails immediately everywhere").

A :class:`Revocation` says what stopped being valid: token hashes, or every token of a client,
of a user with a client, or of a grant (client, user, provider); no field means everything.
The store announces one after each revoking transaction commits (and, on PostgreSQL without
Redis, with ``pg_notify`` inside that transaction); :mod:`athkit.store.revocation_channels`
carries them between nodes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Revocation:
    """What stopped being valid. Empty (no hashes, no fields) means: everything."""

    token_hashes: tuple[str, ...] = ()
    client_id: str | None = None
    user_id: str | None = None
    provider_id: str | None = None

    @property
    def everything(self) -> bool:
        return not self.token_hashes and not self._fields()

    def _fields(self) -> dict[str, str]:
        pairs = [("client_id", self.client_id), ("user_id", self.user_id)]
        pairs.append(("provider_id", self.provider_id))
        return {k: v for k, v in pairs if v is not None}

    def matches(self, token_hash: str, grant: Any) -> bool:
        """Does this cover the token ``token_hash`` of ``grant`` (its client/user/provider)?"""
        if self.everything or token_hash in self.token_hashes:
            return True
        fields = self._fields()
        return bool(fields) and all(getattr(grant, k) == v for k, v in fields.items())

    def to_json(self) -> str:
        body: dict[str, Any] = {"t": list(self.token_hashes), **self._fields()}
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Revocation:
        """Parse a broadcast message; anything malformed means "everything" (fail closed)."""
        try:
            body = json.loads(text)
            hashes = tuple(str(h) for h in body.get("t", []))
            fields = {k: str(body[k]) for k in ("client_id", "user_id", "provider_id") if k in body}
            return cls(hashes, **fields)
        except (ValueError, TypeError, AttributeError):
            return cls()


class RevocationSink(Protocol):
    """Where the store announces revocations (the node's token cache and its channel)."""

    def stage(self, session: Session, revocation: Revocation) -> None:
        """Inside the revoking transaction (e.g. a NOTIFY that is sent only if it commits)."""

    def committed(self, revocation: Revocation) -> None:
        """After the revoking transaction committed: invalidate locally, tell the other nodes."""

    def close(self) -> None:
        """Stop listening (the node shuts down)."""

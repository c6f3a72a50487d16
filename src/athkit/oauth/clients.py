"""Finding the client behind a ``client_id``, whichever way it was identified.

- an https URL: a client ID metadata document (fetched, and admitted through Phase A the
  first time it is seen; its agent_id is the URL, so ``trusted_origins`` apply to it),
- anything else: a client registered through RFC 7591 or ``/ath/agents/register``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from athkit.core.clock import to_datetime
from athkit.core.oauth_grants import admit_client, oauth_store
from athkit.oauth.client_metadata import ClientMetadataFetcher, looks_like_metadata_url
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.models import AgentRow

if TYPE_CHECKING:
    from athkit.core.service import ATHService


def external_client_id(row: AgentRow) -> str:
    """The client_id the client itself uses (a metadata-document client: its URL)."""
    return row.agent_id if row.client_kind == "cimd" else row.client_id


class ClientDirectory:
    """Resolves client_ids for /oauth/* (one per service)."""

    def __init__(self, svc: ATHService) -> None:
        self.svc = svc
        self.documents = ClientMetadataFetcher(
            svc.fetcher, clock=svc.clock, cache_seconds=svc.settings.identity_cache_seconds
        )

    def find(self, client_id: str, *, fetch: bool = True) -> AgentRow:
        """The client's row; ``fetch=False`` skips refreshing a metadata document (token
        endpoint: the document was checked at authorize time moments ago)."""
        if not client_id or len(client_id) > 2048:
            raise ATHError(ErrorCode.INVALID_CLIENT, "client_id is missing or too long")
        if looks_like_metadata_url(client_id, dev_mode=self.svc.settings.dev_mode):
            return self._metadata_client(client_id, fetch=fetch)
        row = self.svc.store.get_agent(client_id)
        if row is None or row.client_kind == "cimd":
            raise ATHError(ErrorCode.INVALID_CLIENT, "unknown client_id")
        return row

    def _metadata_client(self, client_id: str, *, fetch: bool) -> AgentRow:
        store = oauth_store(self.svc)
        row = store.get_agent_by_agent_id(client_id)
        if row is not None and row.client_kind != "cimd":
            raise ATHError(ErrorCode.INVALID_CLIENT, "this URL is registered as an ATH agent")
        if row is not None and not fetch:
            return row
        meta, fresh = self.documents.get(client_id)
        if row is None:
            host = urlsplit(client_id).netloc
            row, _ = admit_client(
                self.svc,
                kind="cimd",
                agent_id=client_id,
                name=meta.client_name,
                developer_name=host,
                developer_id=f"origin:{host}",
                redirect_uris=meta.redirect_uris,
                requested_scopes=meta.scope.split() if meta.scope else None,
                auth_method=meta.token_endpoint_auth_method,
                metadata=meta.raw,
            )
        elif fresh and (row.redirect_uris != meta.redirect_uris or row.client_metadata != meta.raw):
            store.update_client_metadata(
                row.client_id,
                metadata=meta.raw,
                redirect_uris=meta.redirect_uris,
                now=to_datetime(self.svc.clock()),
            )
            row.redirect_uris = meta.redirect_uris
            row.client_metadata = meta.raw
        return row

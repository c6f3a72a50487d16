"""The registry's logic: submissions, ownership proof, re-validation and search.

Life of a listing::

    submit(url) ──► document fetched and valid? ──no──► DISCOVERY_DOCUMENT_INVALID / URL_NOT_ALLOWED
                         │ yes
                         ▼
                 token published? ──no──► status "pending" (challenge returned); verify() retries
                         │ yes
                         ▼
                 status "listed", verified ──► searchable
                         │
           revalidate(): document or token gone/invalid ──► status "delisted" (entries removed)

Only ``listed`` listings have entries, so only they are searched (``search.py``; the vector
index follows every change in place, ``vectors.py``); re-validation is in ``revalidation.py``.
An admin may also list an origin without proof (``verified`` false), e.g. to seed a registry
with known services.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from datetime import UTC, datetime

import httpx
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from athkit.core.outbound import OutboundLimits
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.registry import entries as entry_rows
from athkit.registry import ranking, revalidation
from athkit.registry import search as search_mod
from athkit.registry.db import RegistryDatabase
from athkit.registry.documents import (
    DocumentFetcher,
    EntryData,
    FetchedDocument,
    FetchFailed,
    normalize_origin,
    parse_entries,
)
from athkit.registry.errors import OWNERSHIP_NOT_PROVEN, registry_error
from athkit.registry.models import Entry, Listing, Meta
from athkit.registry.proof import VERIFICATION_PATH, challenge_token, check_proof
from athkit.registry.revalidation import RevalidationReport
from athkit.registry.search import ProviderHit, SearchMode, SearchResult
from athkit.registry.settings import RegistrySettings
from athkit.registry.vectors import Matrix, VectorIndex, to_blob

__all__ = [
    "ProviderHit",
    "RegistryService",
    "RegistrySettings",
    "RevalidationReport",
    "SearchMode",
    "SearchResult",
]

log = logging.getLogger("athkit.registry")


def _now() -> datetime:
    return datetime.now(UTC)


class RegistryService:
    def __init__(
        self,
        settings: RegistrySettings,
        *,
        embedder: ranking.Embedder | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.db = RegistryDatabase(settings.url, timeouts=settings.db_timeouts)
        self.fetcher = DocumentFetcher(
            outbound=OutboundLimits(max_concurrent=settings.outbound_max_concurrent),
            dev_mode=settings.dev_mode,
            timeout=settings.fetch_timeout,
            max_bytes=settings.max_document_bytes,
            transport=transport,
        )
        self.embedder: ranking.Embedder | None = None
        self.vectors = VectorIndex(dtype=settings.index_dtype)
        self.semantic_ready = False
        self._revalidate_lock = threading.Lock()
        self._sync_pending = threading.Event()
        # generations this process committed whose change is not yet in the index (-> time)
        self._applying: dict[int, float] = {}
        self.secret = self._load_secret()
        if embedder is not None:
            self.set_embedder(embedder)

    def close(self) -> None:
        self.fetcher.close()
        self.db.dispose()

    # -- meta ------------------------------------------------------------------------------

    def _load_secret(self) -> str:
        with self.db.transaction() as s:
            row = s.get(Meta, "secret")
            if row is None:
                s.add(Meta(key="secret", text_value=secrets.token_urlsafe(32), int_value=0))
                s.add(Meta(key="generation", text_value=None, int_value=0))
        with self.db.transaction() as s:  # re-read: another process may have won the race
            row = s.get(Meta, "secret")
            assert row is not None and row.text_value
            return row.text_value

    def _bump(self, s: Session) -> int:
        s.execute(update(Meta).where(Meta.key == "generation").values(int_value=Meta.int_value + 1))
        generation = self.generation(s)
        self._applying[generation] = time.monotonic()
        return generation

    def applying(self, generation: int) -> bool:
        """True while ``generation`` is this process's own change, committed and still being
        applied to the index (:meth:`_applied`). A search that sees it then must not start a
        catch-up sync: at 1M entries one diffs a million ids while searches wait for the GIL
        (measured: a search after an add 102 ms p50, instead of ~10). Forgotten after 10 s, in
        case the transaction that took the number rolled back and another process reused it."""
        started = self._applying.get(generation)
        return started is not None and time.monotonic() - started < 10.0

    @staticmethod
    def generation(s: Session) -> int:
        return int(s.execute(select(Meta.int_value).where(Meta.key == "generation")).scalar_one())

    def token_for(self, origin: str) -> str:
        return challenge_token(self.secret, origin)

    # -- semantic --------------------------------------------------------------------------

    def set_embedder(self, embedder: ranking.Embedder) -> None:
        """Start ranking semantically: embed every entry lacking this model's vectors (under the
        current text scheme), build the index, then switch ``auto`` search to semantic."""
        tag = entry_rows.model_tag(embedder)
        with self.db.transaction() as s:
            rows = (
                s.execute(
                    select(Entry).where(
                        (Entry.embedding.is_(None)) | (Entry.embedding_model != tag)
                    )
                )
                .scalars()
                .all()
            )
            if rows:
                vecs = entry_rows.embed(embedder, [entry_rows.data_of(r) for r in rows])
                for r, v in zip(rows, vecs, strict=True):
                    r.embedding, r.embedding_model = to_blob(v), tag
                self._bump(s)
        dim = getattr(embedder, "dim", None) or int(embedder.encode(["x"]).shape[1])
        if dim != self.vectors.ndim:  # another model's width (768 for all-mpnet-base-v2)
            self.vectors = VectorIndex(ndim=dim, dtype=self.settings.index_dtype)
        self.embedder = embedder
        self.vectors.clear()
        self.sync_index()
        self.semantic_ready = True

    def _tag(self) -> str | None:
        return entry_rows.model_tag(self.embedder) if self.embedder else None

    def sync_index(self) -> None:
        """Bring the vector index up to date with the table (``VectorIndex.sync``)."""
        tag = self._tag()
        if tag is None:
            return
        self._sync_pending.clear()
        with self.db.transaction() as s:
            self.vectors.sync(s, self.generation(s), tag)

    def request_sync(self) -> None:
        """Catch up with another process's changes in the background (one sync at a time)."""
        if self._sync_pending.is_set():
            return
        self._sync_pending.set()
        threading.Thread(target=self.sync_index, daemon=True, name="registry-sync").start()

    def _applied(
        self, generation: int, added: list[tuple[int, Matrix]], removed: list[int]
    ) -> None:
        """After a commit: apply this process's change to the index in place."""
        try:
            if self.embedder is None:
                return
            self.vectors.remove(removed)
            self.vectors.add(added)
            if self.vectors.generation == generation - 1:
                self.vectors.generation = generation
        finally:
            self._applying.pop(generation, None)

    # -- listings --------------------------------------------------------------------------

    def submit(
        self,
        url: str,
        description: str | None = None,
        categories: list[str] | None = None,
        *,
        require_proof: bool = True,
    ) -> tuple[Listing, bool]:
        """Fetch, validate and (if proven) list an origin; ``(listing, newly listed)``."""
        origin, only = normalize_origin(url)
        doc = self.fetcher.fetch_document(origin, only)
        cats = [c.strip()[:128] for c in (categories or []) if c.strip()][:64]
        entries = parse_entries(doc.protocol, doc.document, origin, description, cats)
        now = _now()
        with self.db.transaction() as s:
            listing = s.execute(
                select(Listing).where(Listing.origin == origin)
            ).scalar_one_or_none()
            if listing is None:
                listing = Listing(
                    id="lst_" + secrets.token_urlsafe(12),
                    origin=origin,
                    status="pending",
                    verified=False,
                    created_at=now,
                    failures=0,
                )
                s.add(listing)
            listing.document_url = doc.url
            listing.protocol = doc.protocol
            listing.document = json.dumps(doc.document)
            listing.submitted_description = description
            listing.submitted_categories = json.dumps(cats)
            listing.updated_at = now
            if listing.status == "delisted":
                listing.status = "pending"
            lid = listing.id
        if not require_proof:
            return self._list(lid, doc, entries, verified=False), True
        problem = self._proof_problem(origin)
        if problem is None:
            return self._list(lid, doc, entries, verified=True), True
        with self.db.transaction() as s:
            listing = s.get(Listing, lid)
            assert listing is not None
            listing.last_error = problem
            return listing, False

    def verify(self, listing_id: str) -> Listing:
        """Check the proof of a pending (or listed) listing and list it when it holds."""
        listing = self.get(listing_id)
        problem = self._proof_problem(listing.origin)
        if problem is not None:
            with self.db.transaction() as s:
                s.execute(
                    update(Listing).where(Listing.id == listing_id).values(last_error=problem)
                )
            raise registry_error(
                OWNERSHIP_NOT_PROVEN,
                "the origin does not publish the registry's token",
                {
                    "reason": problem,
                    "token": self.token_for(listing.origin),
                    "verification_url": listing.origin + VERIFICATION_PATH,
                },
            )
        _, only = normalize_origin(listing.document_url)
        doc = self.fetcher.fetch_document(listing.origin, only)
        entries = parse_entries(
            doc.protocol,
            doc.document,
            listing.origin,
            listing.submitted_description,
            json.loads(listing.submitted_categories),
        )
        return self._list(listing_id, doc, entries, verified=True)

    def _proof_problem(self, origin: str) -> str | None:
        try:
            return check_proof(self.fetcher, origin, self.token_for(origin))
        except FetchFailed as exc:
            return f"verification file could not be fetched: {exc.reason}"

    def _list(
        self, listing_id: str, doc: FetchedDocument, entries: list[EntryData], *, verified: bool
    ) -> Listing:
        embedder, tag = self.embedder, self._tag()
        vectors = entry_rows.embed(embedder, entries) if embedder else None
        now = _now()
        added: list[tuple[int, Matrix]] = []
        with self.db.transaction() as s:
            listing = s.get(Listing, listing_id)
            if listing is None:
                raise ATHError(ErrorCode.NOT_FOUND, "no such listing")
            removed = self._drop_entries(s, listing_id)
            for i, e in enumerate(entries):
                row = entry_rows.new_row(listing_id, e, vectors[i] if vectors else None, tag)
                s.add(row)
                s.flush()
                ranking.index_entry(s, row.id, entry_rows.fts_fields(e))
                if vectors:
                    added.append((row.id, vectors[i]))
            listing.status = "listed"
            listing.verified = verified
            listing.verified_at = now if verified else listing.verified_at
            listing.checked_at = now
            listing.failures = 0
            listing.last_error = None
            listing.document = json.dumps(doc.document)
            listing.document_url = doc.url
            listing.protocol = doc.protocol
            listing.updated_at = now
            generation = self._bump(s)
        self._applied(generation, added, removed)
        return listing

    @staticmethod
    def _drop_entries(s: Session, listing_id: str) -> list[int]:
        ids = list(s.execute(select(Entry.id).where(Entry.listing_id == listing_id)).scalars())
        ranking.unindex_entries(s, ids)
        s.execute(delete(Entry).where(Entry.listing_id == listing_id))
        return ids

    def get(self, listing_id: str) -> Listing:
        with self.db.transaction() as s:
            listing = s.get(Listing, listing_id)
            if listing is None:
                raise ATHError(ErrorCode.NOT_FOUND, "no such listing", {"listing_id": listing_id})
            return listing

    def entries_of(self, listing_id: str) -> list[Entry]:
        with self.db.transaction() as s:
            return list(s.execute(select(Entry).where(Entry.listing_id == listing_id)).scalars())

    def listings(
        self, status: str | None = "listed", limit: int = 100, offset: int = 0
    ) -> list[Listing]:
        with self.db.transaction() as s:
            q = select(Listing).order_by(Listing.created_at, Listing.id).limit(limit).offset(offset)
            if status:
                q = q.where(Listing.status == status)
            return list(s.execute(q).scalars())

    def counts(self) -> dict[str, int]:
        with self.db.transaction() as s:
            rows = s.execute(select(Listing.status, func.count()).group_by(Listing.status)).all()
            out = {str(st): int(n) for st, n in rows}
            out["entries"] = int(s.execute(select(func.count()).select_from(Entry)).scalar_one())
            return out

    def remove(self, listing_id: str) -> None:
        with self.db.transaction() as s:
            if s.get(Listing, listing_id) is None:
                raise ATHError(ErrorCode.NOT_FOUND, "no such listing", {"listing_id": listing_id})
            removed = self._drop_entries(s, listing_id)
            s.execute(delete(Listing).where(Listing.id == listing_id))
            generation = self._bump(s)
        self._applied(generation, [], removed)

    def delist(self, listing_id: str, reason: str) -> None:
        with self.db.transaction() as s:
            removed = self._drop_entries(s, listing_id)
            s.execute(
                update(Listing)
                .where(Listing.id == listing_id)
                .values(status="delisted", last_error=reason, checked_at=_now())
            )
            generation = self._bump(s)
        self._applied(generation, [], removed)
        log.info("delisted %s: %s", listing_id, reason)

    # -- re-validation ---------------------------------------------------------------------

    def revalidate(self) -> RevalidationReport:
        """Re-fetch every listed origin (``revalidation.py``); one run at a time."""
        with self._revalidate_lock:
            return revalidation.revalidate(self)

    def refresh(
        self, listing_id: str, doc: FetchedDocument, entries: list[EntryData], verified: bool
    ) -> None:
        """Re-index only when the document changed; otherwise just stamp the check."""
        with self.db.transaction() as s:
            listing = s.get(Listing, listing_id)
            assert listing is not None
            unchanged = listing.document == json.dumps(doc.document)
            if unchanged:
                listing.checked_at, listing.failures, listing.last_error = _now(), 0, None
                return
        self._list(listing_id, doc, entries, verified=verified)

    # -- search ----------------------------------------------------------------------------

    def search(self, intent: str, limit: int = 10, mode: SearchMode = "auto") -> SearchResult:
        return search_mod.search(self, intent, limit, mode)

    # -- bulk (bench, imports) -------------------------------------------------------------

    def bulk_list(
        self, items: list[tuple[str, str, list[EntryData]]], *, verified: bool = False
    ) -> None:
        """List many ``(origin, protocol, entries)`` at once without fetching (bench/imports)."""
        embedder, tag = self.embedder, self._tag()
        flat = [e for _, _, es in items for e in es]
        vectors = entry_rows.embed(embedder, flat) if embedder and flat else None
        now, n = _now(), 0
        added: list[tuple[int, Matrix]] = []
        with self.db.transaction() as s:
            for origin, protocol, entries in items:
                lid = "lst_" + secrets.token_urlsafe(12)
                s.add(
                    Listing(
                        id=lid,
                        origin=origin,
                        document_url=origin,
                        protocol=protocol,
                        status="listed",
                        verified=verified,
                        submitted_categories="[]",
                        document="{}",
                        created_at=now,
                        updated_at=now,
                        failures=0,
                    )
                )
                s.flush()
                for e in entries:
                    vec = vectors[n] if vectors else None
                    row = entry_rows.new_row(lid, e, vec, tag)
                    n += 1
                    s.add(row)
                    s.flush()
                    ranking.index_entry(s, row.id, entry_rows.fts_fields(e))
                    if vec is not None:
                        added.append((row.id, vec))
            generation = self._bump(s)
        self._applied(generation, added, [])

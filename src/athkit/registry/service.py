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

Only ``listed`` listings have entries, so only they are searched. An admin may also list an
origin without proof (``verified`` false), e.g. to seed a registry with known services.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from athkit.protocol.errors import ATHError, ErrorCode
from athkit.registry import ranking
from athkit.registry.db import RegistryDatabase, default_registry_url
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

log = logging.getLogger("athkit.registry")

SearchMode = Literal["auto", "hybrid", "keyword"]
PENDING_TTL = timedelta(days=7)


@dataclass
class RegistrySettings:
    #: SQLAlchemy URL of the registry database; default SQLite in ``data_dir``.
    database_url: str | None = None
    #: Directory of the default SQLite database.
    data_dir: Path = Path(".athkit/registry")
    #: allow http and loopback targets (local work and tests only)
    dev_mode: bool = False
    #: bearer token for /api/admin/*; admin endpoints are disabled without one
    admin_token: str | None = None
    #: seconds between background re-validations; 0 disables the background task
    revalidate_interval: float = 6 * 3600.0
    #: consecutive network failures (no definite answer) before a listing is dropped
    delist_after_failures: int = 3
    #: "auto": use the embedding model when installed; "off": keyword ranking only
    semantic: Literal["auto", "off"] = "auto"
    #: Weight of the semantic score in hybrid ranking (the rest is keyword score).
    hybrid_weight: float = 0.9
    #: Cosine similarity below which a listing is not returned.
    min_similarity: float = 0.1
    #: Seconds allowed for fetching a listed service document.
    fetch_timeout: float = 5.0
    #: Largest service document fetched.
    max_document_bytes: int = 256 * 1024

    @property
    def url(self) -> str:
        return self.database_url or default_registry_url(self.data_dir)


@dataclass
class ProviderHit:
    name: str
    description: str
    url: str
    issuer: str
    scopes: list[str]
    categories: list[str]
    protocol: str
    verified: bool
    score: float
    provider_id: str | None = None
    listing_id: str = ""


@dataclass
class SearchResult:
    intent: str
    providers: list[ProviderHit]
    mode: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "providers": [asdict(p) for p in self.providers],
            "intent": self.intent,
            "count": len(self.providers),
            "mode": self.mode,
        }


@dataclass
class RevalidationReport:
    checked: int = 0
    kept: int = 0
    dropped: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    purged_pending: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


def _entry_text(e: EntryData) -> str:
    """What the embedding model reads for an entry."""
    cats = ", ".join(e.categories)
    return f"{e.name}. {e.description}" + (f". {cats}" if cats else "")


class RegistryService:
    def __init__(
        self,
        settings: RegistrySettings,
        *,
        embedder: ranking.Embedder | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.db = RegistryDatabase(settings.url)
        self.fetcher = DocumentFetcher(
            dev_mode=settings.dev_mode,
            timeout=settings.fetch_timeout,
            max_bytes=settings.max_document_bytes,
            transport=transport,
        )
        self.embedder: ranking.Embedder | None = None
        self.vectors = ranking.VectorIndex()
        self._revalidate_lock = threading.Lock()
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

    @staticmethod
    def _bump(s: Session) -> None:
        s.execute(update(Meta).where(Meta.key == "generation").values(int_value=Meta.int_value + 1))

    @staticmethod
    def _generation(s: Session) -> int:
        return int(s.execute(select(Meta.int_value).where(Meta.key == "generation")).scalar_one())

    def token_for(self, origin: str) -> str:
        return challenge_token(self.secret, origin)

    # -- semantic --------------------------------------------------------------------------

    def set_embedder(self, embedder: ranking.Embedder) -> None:
        """Start ranking semantically; embeds every entry that lacks this model's vector."""
        with self.db.transaction() as s:
            rows = (
                s.execute(
                    select(Entry).where(
                        (Entry.embedding.is_(None)) | (Entry.embedding_model != embedder.model_name)
                    )
                )
                .scalars()
                .all()
            )
            if rows:
                vecs = embedder.encode([_row_text(r) for r in rows])
                for r, v in zip(rows, vecs, strict=True):
                    r.embedding, r.embedding_model = ranking.to_blob(v), embedder.model_name
                self._bump(s)
        self.embedder = embedder

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
        vectors = self.embedder.encode([_entry_text(e) for e in entries]) if self.embedder else None
        now = _now()
        with self.db.transaction() as s:
            listing = s.get(Listing, listing_id)
            if listing is None:
                raise ATHError(ErrorCode.NOT_FOUND, "no such listing")
            self._drop_entries(s, listing_id)
            for i, e in enumerate(entries):
                row = Entry(
                    listing_id=listing_id,
                    provider_id=e.provider_id,
                    name=e.name,
                    description=e.description,
                    url=e.url,
                    issuer=e.issuer,
                    protocol=e.protocol,
                    scopes=json.dumps(e.scopes),
                    categories=json.dumps(e.categories),
                    search_text=_search_text(e),
                )
                if vectors is not None and self.embedder is not None:
                    row.embedding = ranking.to_blob(vectors[i])
                    row.embedding_model = self.embedder.model_name
                s.add(row)
                s.flush()
                ranking.index_entry(s, row.id, _fts_fields(e))
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
            self._bump(s)
            return listing

    @staticmethod
    def _drop_entries(s: Session, listing_id: str) -> None:
        ids = list(s.execute(select(Entry.id).where(Entry.listing_id == listing_id)).scalars())
        ranking.unindex_entries(s, ids)
        s.execute(delete(Entry).where(Entry.listing_id == listing_id))

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
            self._drop_entries(s, listing_id)
            s.execute(delete(Listing).where(Listing.id == listing_id))
            self._bump(s)

    def _delist(self, listing_id: str, reason: str) -> None:
        with self.db.transaction() as s:
            self._drop_entries(s, listing_id)
            s.execute(
                update(Listing)
                .where(Listing.id == listing_id)
                .values(status="delisted", last_error=reason, checked_at=_now())
            )
            self._bump(s)
        log.info("delisted %s: %s", listing_id, reason)

    # -- re-validation ---------------------------------------------------------------------

    def revalidate(self) -> RevalidationReport:
        """Re-fetch every listed origin; drop those whose document or proof went away."""
        report = RevalidationReport()
        with self._revalidate_lock:
            with self.db.transaction() as s:
                listed = list(
                    s.execute(
                        select(
                            Listing.id,
                            Listing.origin,
                            Listing.document_url,
                            Listing.verified,
                            Listing.submitted_description,
                            Listing.submitted_categories,
                            Listing.failures,
                        ).where(Listing.status == "listed")
                    ).all()
                )
                purged = s.execute(
                    delete(Listing).where(
                        Listing.status == "pending", Listing.updated_at < _now() - PENDING_TTL
                    )
                )
                report.purged_pending = int(getattr(purged, "rowcount", 0) or 0)
            for lid, origin, doc_url, verified, desc, cats, failures in listed:
                report.checked += 1
                reason, definite = self._check_one(origin, doc_url, verified)
                if reason is None:
                    try:
                        _, only = normalize_origin(doc_url)
                        doc = self.fetcher.fetch_document(origin, only)
                        entries = parse_entries(
                            doc.protocol, doc.document, origin, desc, json.loads(cats)
                        )
                        self._refresh(lid, doc, entries, verified)
                        report.kept += 1
                        continue
                    except ATHError as exc:
                        reason, definite = _reason(exc), bool(exc.details.get("definite", True))
                report.errors[lid] = reason
                if definite or failures + 1 >= self.settings.delist_after_failures:
                    self._delist(lid, reason)
                    report.dropped.append(lid)
                else:
                    with self.db.transaction() as s:
                        s.execute(
                            update(Listing)
                            .where(Listing.id == lid)
                            .values(failures=failures + 1, last_error=reason, checked_at=_now())
                        )
                    report.kept += 1
        return report

    def _check_one(self, origin: str, doc_url: str, verified: bool) -> tuple[str | None, bool]:
        """``(problem or None, definite)`` for the ownership proof of a listed origin."""
        if not verified:
            return None, True
        try:
            return check_proof(self.fetcher, origin, self.token_for(origin)), True
        except FetchFailed as exc:
            return f"verification file could not be fetched: {exc.reason}", False
        except ATHError as exc:  # the SSRF guard now refuses the origin (e.g. DNS changed)
            return exc.message, True

    def _refresh(
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
        intent = " ".join(intent.split())
        use_semantic = mode != "keyword" and self.embedder is not None
        if mode == "hybrid" and self.embedder is None:
            raise ATHError(
                ErrorCode.SERVICE_UNAVAILABLE,
                "semantic ranking is not available (install athkit[semantic])",
            )
        k = max(50, limit * 5)
        with self.db.transaction() as s:
            keyword = ranking.keyword_search(s, intent, k)
            semantic: list[tuple[int, float]] | None = None
            if use_semantic and self.embedder is not None:
                self.vectors.ensure(s, self._generation(s), self.embedder.model_name)
                q = self.embedder.encode([intent])[0]
                semantic = self.vectors.search(q, k, self.settings.min_similarity)
            fused = ranking.fuse(keyword, semantic, self.settings.hybrid_weight)[:limit]
            ids = [i for i, _ in fused]
            rows = (
                {
                    e.id: (e, verified)
                    for e, verified in s.execute(
                        select(Entry, Listing.verified)
                        .join(Listing, Listing.id == Entry.listing_id)
                        .where(Entry.id.in_(ids), Listing.status == "listed")
                    ).all()
                }
                if ids
                else {}
            )
        hits = []
        for eid, score in fused:
            if eid not in rows:
                continue
            e, verified = rows[eid]
            hits.append(
                ProviderHit(
                    name=e.name,
                    description=e.description,
                    url=e.url,
                    issuer=e.issuer,
                    scopes=json.loads(e.scopes),
                    categories=json.loads(e.categories),
                    protocol=e.protocol,
                    verified=bool(verified),
                    score=round(score, 4),
                    provider_id=e.provider_id,
                    listing_id=e.listing_id,
                )
            )
        return SearchResult(intent, hits, "hybrid" if use_semantic else "keyword")

    # -- bulk (bench, imports) -------------------------------------------------------------

    def bulk_list(
        self, items: list[tuple[str, str, list[EntryData]]], *, verified: bool = False
    ) -> None:
        """List many ``(origin, protocol, entries)`` at once without fetching (bench/imports)."""
        texts = [_entry_text(e) for _, _, es in items for e in es]
        vectors = self.embedder.encode(texts) if self.embedder and texts else None
        now, n = _now(), 0
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
                    row = Entry(
                        listing_id=lid,
                        provider_id=e.provider_id,
                        name=e.name,
                        description=e.description,
                        url=e.url,
                        issuer=e.issuer,
                        protocol=e.protocol,
                        scopes=json.dumps(e.scopes),
                        categories=json.dumps(e.categories),
                        search_text=_search_text(e),
                    )
                    if vectors is not None and self.embedder is not None:
                        row.embedding = ranking.to_blob(vectors[n])
                        row.embedding_model = self.embedder.model_name
                    n += 1
                    s.add(row)
                    s.flush()
                    ranking.index_entry(s, row.id, _fts_fields(e))
            self._bump(s)


def _reason(exc: ATHError) -> str:
    problems = exc.details.get("problems")
    if isinstance(problems, dict) and problems:
        return exc.message + " (" + "; ".join(f"{k}: {v}" for k, v in problems.items()) + ")"
    return exc.message


def _search_text(e: EntryData) -> str:
    return " ".join([e.name, e.description, " ".join(e.categories), ranking.scope_words(e.scopes)])


def _fts_fields(e: EntryData) -> dict[str, str]:
    return {
        "name": e.name,
        "description": e.description,
        "categories": " ".join(e.categories),
        "scopes": ranking.scope_words(e.scopes),
    }


def _row_text(r: Entry) -> str:
    cats = ", ".join(json.loads(r.categories))
    return f"{r.name}. {r.description}" + (f". {cats}" if cats else "")

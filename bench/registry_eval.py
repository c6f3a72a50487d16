"""Registry ranking quality and search latency, measured on the real request path.

    python bench/registry_eval.py            # full: 1k / 10k / 100k listings + 1M-vector index
    python bench/registry_eval.py --quick    # CI-sized: 1k / 10k, no 1M index
    python bench/registry_eval.py --quality-only   # recall / MRR tables alone

Quality: the labelled set (``registry_eval_data.json``: 61 listings, 288 intents, see
``registry_corpus.py``) is searched in every mode (semantic, hybrid, keyword) alone and among
10,000 distractor listings; recall@1/@3/@10 and MRR per split (``dev`` = what ranking choices
were made on, ``heldout`` = never tuned on, ``all``).

Latency (``registry_latency.py``): every timed search is the full path, query embedding
included, in process and over HTTP, at 1k / 10k / 100k listings on SQLite, and with 1M distinct
vectors in the index (``million``: the listed entries' vectors plus synthetic ones, the same
request path and database). Listing texts of the distractors are embedded once (the pool of
distinct distractor texts is cycled; ``--unique``) since their cost is not a search cost: at
100k listings the index holds only the pool's distinct vectors, hence the 1M step.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import registry_candidates
import registry_corpus as corpus
from registry_latency import (
    add_while_searching,
    breakdown,
    encode_only,
    figure,
    latency,
    million,
    pct,
    rss_mb,
)

from athkit.registry import ranking
from athkit.registry.app import create_registry_app
from athkit.registry.documents import EntryData
from athkit.registry.service import RegistryService, RegistrySettings
from athkit.web.serving import BackgroundServer

MODES = ("semantic", "hybrid", "keyword")


class ListingEmbedder:
    """Embeds each distinct *listing* text once (distractors repeat); never used for queries."""

    def __init__(self, inner: ranking.Embedder) -> None:
        self.inner, self.model_name = inner, inner.model_name
        self.cache: dict[str, Any] = {}

    def encode(self, texts: Any) -> Any:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        for i in range(0, len(todo), 512):
            chunk = todo[i : i + 512]
            for t, v in zip(chunk, self.inner.encode(chunk), strict=True):
                self.cache[t] = v
        return np.stack([self.cache[t] for t in texts])


def bulk(svc: RegistryService, listing_embedder: ListingEmbedder, entries: list[EntryData]) -> None:
    real, svc.embedder = svc.embedder, listing_embedder
    try:
        for i in range(0, len(entries), 2000):
            chunk = entries[i : i + 2000]
            svc.bulk_list([(e.url, "ath", [e]) for e in chunk])
    finally:
        svc.embedder = real


# -- quality ----------------------------------------------------------------------------------


def ranks(svc: RegistryService, cases: list[tuple[str, str]], mode: str) -> list[int]:
    """Rank of the right service per case (0 when not in the top 10)."""
    out = []
    for intent, sid in cases:
        ids = [h.provider_id for h in svc.search(intent, limit=10, mode=mode).providers]
        out.append(ids.index(sid) + 1 if sid in ids else 0)
    return out


def summary(rs: list[int]) -> dict[str, float]:
    n = len(rs)
    return {
        "r1": sum(r == 1 for r in rs) / n,
        "r3": sum(0 < r <= 3 for r in rs) / n,
        "r10": sum(r > 0 for r in rs) / n,
        "mrr": sum(1 / r for r in rs if r) / n,
        "n": n,
    }


def quality_table(svc: RegistryService, services: list[dict[str, Any]], where: str) -> None:
    print(f"\nquality, {where}:")
    print(f"  {'mode':>8} {'split':>8} {'n':>4} {'r@1':>6} {'r@3':>6} {'r@10':>6} {'MRR':>6}")
    cases = corpus.cases(services)
    split_of = {s["id"]: s["split"] for s in services}
    for mode in MODES:
        rs = ranks(svc, cases, mode)
        for split in ("dev", "heldout", None):
            r = summary(
                [
                    k
                    for k, (_, sid) in zip(rs, cases, strict=True)
                    if split is None or split_of[sid] == split
                ]
            )
            name = split or "all"
            print(
                f"  {mode:>8} {name:>8} {r['n']:4d} {r['r1']:6.3f} {r['r3']:6.3f} "
                f"{r['r10']:6.3f} {r['mrr']:6.3f}",
                flush=True,
            )
            if split is None:
                tag = where.replace(" ", "_")
                figure(f"registry_{mode}_recall@3_{tag}", r["r3"])
                figure(f"registry_{mode}_recall@10_{tag}", r["r10"])
                figure(f"registry_{mode}_mrr_{tag}", r["mrr"])


def search_cost(svc: RegistryService, intents: list[str], size: int, n: int) -> None:
    """In-process semantic searches (query encoding included), then the steps of one."""
    gc.collect()
    for i in range(20):  # warm-up
        svc.search(intents[i % len(intents)], limit=10, mode="semantic")
    times = []
    for i in range(n):
        t = time.perf_counter()
        svc.search(intents[i % len(intents)] + f" #{i}", limit=10, mode="semantic")
        times.append((time.perf_counter() - t) * 1000)
    p50, p99 = statistics.median(times), pct(times, 99)
    print(f"  {size:>7} semantic inproc: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
    breakdown(svc, intents, size, min(n, 100))
    print(f"  RSS {rss_mb():.0f} MiB ({svc.vectors.vector_count} vectors)")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1k / 10k listings, no 1M index")
    ap.add_argument("--sizes", default=None, help="comma-separated listing counts")
    ap.add_argument("--queries", type=int, default=None, help="timed searches per mode and size")
    ap.add_argument("--unique", type=int, default=3000, help="distinct distractor texts")
    ap.add_argument("--no-million", action="store_true")
    ap.add_argument(
        "--million", type=int, default=1_000_000, help="distinct vectors of the big-index step"
    )
    ap.add_argument("--distractors", type=int, default=10_000, help="for the quality pass")
    ap.add_argument(
        "--quality-only", action="store_true", help="recall and MRR tables only, no timing"
    )
    ap.add_argument(
        "--model",
        default=ranking.MODEL_NAME,
        choices=registry_candidates.CHOICES,
        help="the encoder: RegistrySettings.model, or a candidate (registry_candidates.py)",
    )
    ap.add_argument(
        "--search-cost",
        type=int,
        default=0,
        metavar="N",
        help="with --quality-only: time N in-process semantic searches among the distractors",
    )
    args = ap.parse_args()
    default = "1000,10000" if args.quick else "1000,10000,100000"
    sizes = [] if args.quality_only else [int(s) for s in (args.sizes or default).split(",")]
    queries = args.queries or (100 if args.quick else 300)

    services = corpus.load()
    cases = corpus.cases(services)
    intents = [c[0] for c in cases]
    dev, held = corpus.cases(services, "dev"), corpus.cases(services, "heldout")
    print(f"labelled set: {len(services)} services, {len(cases)} intents")
    print(f"  (dev {len(dev)}, held out {len(held)})")
    t = time.perf_counter()
    embedder = registry_candidates.load(args.model)
    print(f"model {embedder.model_name} loaded in {time.perf_counter() - t:.1f}s")
    print(f"  RSS after loading {rss_mb():.0f} MiB")
    listing_embedder = ListingEmbedder(embedder)
    alone = encode_only(embedder, intents, 100)
    print(f"query encoding alone: p50 {statistics.median(alone):.1f} ms")
    figure("registry_encode_only_p50_ms", statistics.median(alone), "ms")
    figure("registry_encode_only_p99_ms", pct(alone, 99), "ms")

    with tempfile.TemporaryDirectory() as tmp:
        settings = RegistrySettings(data_dir=Path(tmp), revalidate_interval=0)
        app = create_registry_app(settings, embedder=embedder)
        server = BackgroundServer(app).start()
        svc: RegistryService = app.state.registry
        http = httpx.Client(base_url=server.url, timeout=30)
        try:
            real = [corpus.entry_of(s) for s in services]
            bulk(svc, listing_embedder, real)
            quality_table(svc, services, "no distractors")
            nd = args.distractors
            pool = corpus.distractors(max([*sizes, nd + len(real)]), unique=args.unique)
            listed, used = len(real), 0
            if sizes:
                print(f"\nsearch latency (limit 10, {queries} per mode; query encoding included):")
            for size in sorted(set(sizes) | {nd + len(real)}):
                t = time.perf_counter()
                bulk(svc, listing_embedder, pool[used : used + size - listed])
                used, listed = used + size - listed, size
                print(f"  listed {size} in total ({time.perf_counter() - t:.0f}s to add)")
                if size == nd + len(real):
                    quality_table(svc, services, f"{nd // 1000}k distractors")
                    if args.search_cost:
                        search_cost(svc, intents, size, args.search_cost)
                if size in sizes:
                    gc.collect()
                    latency(svc, http, intents, size, queries)
                    mem = svc.vectors.memory_bytes / 2**20
                    vecs = svc.vectors.vector_count
                    print(f"  RSS {rss_mb():.0f} MiB (index {mem:.0f} MiB, {vecs} vectors)")
                    figure(f"registry_rss_mib_{size}", rss_mb(), "MiB")
            if sizes:
                add_while_searching(svc, intents, listed)
            if not (args.quick or args.no_million or args.quality_only):
                million(svc, http, intents, queries, total=args.million)
        finally:
            http.close()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

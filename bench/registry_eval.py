"""Registry ranking quality and search latency, measured on the real request path.

    python bench/registry_eval.py            # full: 1k / 10k / 100k listings + 1M-vector index
    python bench/registry_eval.py --quick    # CI-sized: 1k / 10k, no 1M index
    python bench/registry_eval.py --quality-only   # recall / MRR tables alone

Quality: the labelled set (``registry_eval_data.json``: 61 listings, 288 intents, see
``registry_corpus.py``) is searched in every mode (semantic, hybrid, keyword) alone and among
10,000 distractor listings; recall@1/@3/@10 and MRR per split (``dev`` = what ranking choices
were made on, ``heldout`` = never tuned on, ``all``).

Latency: every timed search is the full path, query embedding included (the model encodes each
intent every time; no cache of intent vectors anywhere), in process (``RegistryService.search``)
and over HTTP (``GET /api/search`` on a real uvicorn, in alternating rounds with in-process), at
1k / 10k / 100k listings on SQLite. Listing texts of the distractors are embedded once (the
pool of distinct distractor texts is cycled; ``--unique``) since their cost is not a search
cost. Also measured: the time until a new listing is searchable and search latency while
listings are being added; the process's RSS (server and bench share the process). The 1M run
is simulated: an index of 1,000,000 entries (the distractor vectors with noise) searched with
real query encodings plus the second stage, without the database.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import registry_corpus as corpus

from athkit.registry import entries as entry_rows
from athkit.registry import ranking
from athkit.registry.app import create_registry_app
from athkit.registry.documents import EntryData
from athkit.registry.service import RegistryService, RegistrySettings
from athkit.registry.vectors import VectorIndex
from athkit.web.serving import BackgroundServer

MODES = ("semantic", "hybrid", "keyword")


def figure(name: str, value: float, unit: str = "") -> None:
    print(f"FIGURE {name} {value:.4g}{(' ' + unit) if unit else ''}", flush=True)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round((len(ordered) - 1) * p / 100)))]


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


# -- latency ----------------------------------------------------------------------------------


def timed_rounds(
    svc: RegistryService, http: httpx.Client, intents: list[str], mode: str, n: int
) -> tuple[list[float], list[float]]:
    """Alternating rounds of 20: in-process, then HTTP; distinct intents, nothing cached."""
    inproc: list[float] = []
    over_http: list[float] = []
    i = 0
    while len(inproc) < n:
        for sink, run in (
            (inproc, lambda q: svc.search(q, limit=10, mode=mode)),
            (over_http, lambda q: http.get("/api/search", params={"intent": q, "mode": mode})),
        ):
            for _ in range(20):
                q = intents[i % len(intents)] + ("" if i < len(intents) else f" #{i}")
                i += 1
                t = time.perf_counter()
                res = run(q)
                sink.append((time.perf_counter() - t) * 1000)
                if isinstance(res, httpx.Response):
                    assert res.status_code == 200, res.text
    return inproc, over_http


def latency(
    svc: RegistryService, http: httpx.Client, intents: list[str], size: int, n: int
) -> None:
    assert svc.embedder is not None
    for mode in MODES:
        timed_rounds(svc, http, intents, mode, 20)  # warm-up
        inproc, over = timed_rounds(svc, http, intents, mode, n)
        if mode == "semantic":  # the same machine state: how much of it is the encoder
            enc = encode_only(svc.embedder, intents, min(n, 60))
            print(f"  {size:>7} (query encoding alone, measured right after: p50 {enc:.1f} ms)")
            figure(f"registry_encode_only_p50_ms_{size}", enc, "ms")
        for where, vals in (("inproc", inproc), ("http", over)):
            p50, p99 = statistics.median(vals), pct(vals, 99)
            print(f"  {size:>7} {mode:>8} {where:>6}: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
            figure(f"registry_{mode}_{where}_p50_ms_{size}", p50, "ms")
            figure(f"registry_{mode}_{where}_p99_ms_{size}", p99, "ms")


def encode_only(embedder: ranking.Embedder, intents: list[str], n: int) -> float:
    t = []
    for i in range(n):
        s = time.perf_counter()
        embedder.encode([intents[i % len(intents)] + f" {i}"])
        t.append((time.perf_counter() - s) * 1000)
    return statistics.median(t)


def add_while_searching(
    svc: RegistryService, embedder: ranking.Embedder, intents: list[str], size: int
) -> None:
    """Time to searchable for 10 new listings, and search p50 with and without adds."""
    stop = threading.Event()

    def adder() -> None:
        for i in range(10):
            if stop.is_set():
                return
            e = EntryData(
                f"Fresh {i}",
                f"Rental of festival yurts number {i} with composting toilets",
                f"https://fresh{i}-{size}.example",
                f"https://fresh{i}-{size}.example",
                "ath",
                provider_id=f"fresh{i}-{size}",
                examples=[f"book glamping yurt {i} for the festival"],
            )
            t = time.perf_counter()
            svc.bulk_list([(e.url, "ath", [e])])
            hits = svc.search(f"book glamping yurt {i} for the festival", 10, "semantic")
            ok = any(h.provider_id == e.provider_id for h in hits.providers)
            visible.append(((time.perf_counter() - t) * 1000, ok))
            time.sleep(0.3)

    rounds: dict[str, list[float]] = {"quiet": [], "adding": []}
    visible: list[tuple[float, bool]] = []
    for _ in range(2):  # alternate: quiet, adding, quiet, adding
        for state in ("quiet", "adding"):
            th = threading.Thread(target=adder) if state == "adding" else None
            if th:
                th.start()
            deadline = time.perf_counter() + 3.0
            i = 0
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                svc.search(intents[i % len(intents)], 10, "semantic")
                rounds[state].append((time.perf_counter() - t) * 1000)
                i += 1
            if th:
                stop.set()
                th.join()
                stop.clear()
    ms_to_visible = [v for v, _ in visible]
    print(
        f"  new listing searchable after p50 {statistics.median(ms_to_visible):.0f} ms "
        f"(max {max(ms_to_visible):.0f} ms, found {sum(ok for _, ok in visible)}/{len(visible)}); "
        f"search p50 quiet {statistics.median(rounds['quiet']):.1f} ms, "
        f"while adding {statistics.median(rounds['adding']):.1f} ms"
    )
    figure(f"registry_add_to_searchable_ms_{size}", max(ms_to_visible), "ms")
    figure(f"registry_search_p50_while_adding_ms_{size}", statistics.median(rounds["adding"]), "ms")
    figure(f"registry_search_p50_quiet_ms_{size}", statistics.median(rounds["quiet"]), "ms")


def million(embedder: ranking.Embedder, pool: list[Any], intents: list[str], n: int) -> None:
    """1M entries in the ANN index (one main vector each, from the distractor pool + noise)."""
    rng = np.random.default_rng(7)
    base = np.stack([p[0] for p in pool]).astype(np.float32)
    index = VectorIndex()
    total = 1_000_000
    t = time.perf_counter()
    for start in range(0, total, 50_000):
        m = base[rng.integers(0, len(base), 50_000)] + rng.normal(0, 0.04, (50_000, base.shape[1]))
        m = (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)
        index.add(((start + i, m[i : i + 1]) for i in range(50_000)), threads=2)
    build = time.perf_counter() - t
    print(f"\n1M-entry index built in {build:.0f} s, {index.memory_bytes / 2**20:.0f} MiB")
    figure("registry_1m_index_build_s", build, "s")
    figure("registry_1m_index_mib", index.memory_bytes / 2**20, "MiB")
    times = []
    for i in range(n):
        s = time.perf_counter()
        q = embedder.encode([intents[i % len(intents)] + f" {i}"])[0]
        ids = [k for k, _ in index.search(q, 50)]
        ranking.rescore(q, ids, index.vectors_of(ids), 0.5)
        times.append((time.perf_counter() - s) * 1000)
    p50, p99 = statistics.median(times), pct(times, 99)
    print(f"  1M simulated: encode + ANN + second stage p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    figure("registry_semantic_p50_ms_1M_simulated", p50, "ms")
    figure("registry_semantic_p99_ms_1M_simulated", p99, "ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1k / 10k listings, no 1M index")
    ap.add_argument("--sizes", default=None, help="comma-separated listing counts")
    ap.add_argument("--queries", type=int, default=None, help="timed searches per mode and size")
    ap.add_argument("--unique", type=int, default=3000, help="distinct distractor texts")
    ap.add_argument("--no-million", action="store_true")
    ap.add_argument("--distractors", type=int, default=10_000, help="for the quality pass")
    ap.add_argument(
        "--quality-only", action="store_true", help="recall and MRR tables only, no timing"
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
    embedder = ranking.load_embedder()
    if embedder is None:
        print("the semantic extra is not installed")
        return 1
    print(f"model {embedder.model_name} loaded in {time.perf_counter() - t:.1f}s")
    listing_embedder = ListingEmbedder(embedder)
    figure("registry_encode_only_p50_ms", encode_only(embedder, intents, 100), "ms")

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
                if size in sizes:
                    gc.collect()
                    latency(svc, http, intents, size, queries)
                    mem = svc.vectors.memory_bytes / 2**20
                    print(f"  RSS {rss_mb():.0f} MiB (index {mem:.0f} MiB)")
                    figure(f"registry_rss_mib_{size}", rss_mb(), "MiB")
            if sizes:
                add_while_searching(svc, embedder, intents, listed)
        finally:
            http.close()
            server.stop()
        if not (args.quick or args.no_million or args.quality_only):
            vecs = [listing_embedder.encode(entry_rows.texts_of(e)[:1]) for e in pool[:3000]]
            million(embedder, vecs, intents, queries)
    return 0


if __name__ == "__main__":
    sys.exit(main())

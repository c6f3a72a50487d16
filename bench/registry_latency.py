"""Registry search latency on the real request path, for ``registry_eval.py``.

Every timed search is the full path, query embedding included (the model encodes each intent
every time; no cache of intent vectors anywhere), in process (``RegistryService.search``) and over
HTTP (``GET /api/search`` on a real uvicorn, in alternating rounds with in process). Also: where
a semantic search's time goes (encode, index walk, second stage, database rows; HTTP = the
difference of the two medians), the time until a new listing is searchable (and its parts:
the listing's encode, the index insert, the database, the search that finds it) and search
latency while listings are added, the process's RSS (server and bench share the process), and
at 1M the pause of a full garbage collection.

**1M.** :func:`million` swaps the service's vector index for one of 1,000,000 distinct vectors
and times the same request path against it (in process and over HTTP, the database unchanged).
The index holds every vector of the listed entries, and up to 1M synthetic one-vector entries:
a random distinct listing vector plus Gaussian noise (``noise`` per dimension, renormalised:
cosine ~0.8 to its source, so clusters of near-duplicates, harder for a graph than spread-out
data). Synthetic entries have no database row; when one ranks in the top ``limit`` the row
lookup drops it, as it drops a listing delisted a moment ago, so the work per search is the
real one (encode, the walk over 1M vectors, the second stage over the candidates, the rows).
Index recall is measured there too: the share of the exact top-k entries (float32 cosine over
every vector, ties counted as hits) that the index returns.
"""

from __future__ import annotations

import gc
import resource
import statistics
import threading
import time
from typing import Any

import httpx
import numpy as np
from sqlalchemy import select, text

from athkit.registry import entries as entry_rows
from athkit.registry import ranking
from athkit.registry.documents import EntryData
from athkit.registry.models import Entry, Listing
from athkit.registry.service import RegistryService
from athkit.registry.vectors import VectorIndex, from_blob

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
    svc: RegistryService,
    http: httpx.Client,
    intents: list[str],
    size: int | str,
    n: int,
    modes: tuple[str, ...] = MODES,
) -> None:
    assert svc.embedder is not None
    for mode in modes:
        timed_rounds(svc, http, intents, mode, 20)  # warm-up
        inproc, over = timed_rounds(svc, http, intents, mode, n)
        if mode == "semantic":  # the same machine state: where the time goes
            breakdown(svc, intents, size, min(n, 100))
        for where, vals in (("inproc", inproc), ("http", over)):
            p50, p99 = statistics.median(vals), pct(vals, 99)
            print(f"  {size:>7} {mode:>8} {where:>6}: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
            figure(f"registry_{mode}_{where}_p50_ms_{size}", p50, "ms")
            figure(f"registry_{mode}_{where}_p99_ms_{size}", p99, "ms")
        http_cost = statistics.median(over) - statistics.median(inproc)
        print(f"  {size:>7} {mode:>8} HTTP adds p50 {http_cost:.1f} ms")


def breakdown(svc: RegistryService, intents: list[str], size: int | str, n: int) -> None:
    """A semantic search's steps, each timed (the steps ``search.search`` takes)."""
    assert svc.embedder is not None
    k = max(svc.settings.candidates, 10)
    parts: dict[str, list[float]] = {"encode": [], "index": [], "second stage": [], "rows": []}
    for i in range(n):
        intent = intents[i % len(intents)] + f" {i}"
        t0 = time.perf_counter()
        q = svc.embedder.encode([intent])[0]
        t1 = time.perf_counter()
        center = ranking.shared_direction(
            svc.vectors.mean(), svc.vectors.vector_count, svc.settings.centering
        )
        walk = q if center is None else ranking.unit(q - center)
        ids = [e for e, _ in svc.vectors.search(walk, k)]
        t2 = time.perf_counter()
        scored = ranking.rescore(
            q, ids, svc.vectors.vectors_of(ids), svc.settings.phrase_weight, center
        )
        t3 = time.perf_counter()
        top = [e for e, _ in scored[:10]]
        with svc.db.transaction() as s:
            svc.generation(s)
            s.execute(
                select(Entry, Listing.verified)
                .join(Listing, Listing.id == Entry.listing_id)
                .where(Entry.id.in_(top), Listing.status == "listed")
            ).all()
        t4 = time.perf_counter()
        for name, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            parts[name].append(dt * 1000)
    line = ", ".join(f"{name} {statistics.median(v):.2f}" for name, v in parts.items())
    print(f"  {size:>7} semantic steps, p50 ms: {line}")
    for name, v in parts.items():
        tag = name.replace(" ", "_")
        figure(f"registry_step_{tag}_p50_ms_{size}", statistics.median(v), "ms")
        figure(f"registry_step_{tag}_p99_ms_{size}", pct(v, 99), "ms")


def encode_only(embedder: ranking.Embedder, intents: list[str], n: int) -> list[float]:
    t = []
    for i in range(n):
        s = time.perf_counter()
        embedder.encode([intents[i % len(intents)] + f" {i}"])
        t.append((time.perf_counter() - s) * 1000)
    return t


# what the new listings rent out, each pair once per run (an earlier listing with nearly the same
# text would rightly rank with the new one and hide whether the new one is found)
_FRESH = [
    (thing, place)
    for thing in (
        "festival yurts",
        "hot air balloons",
        "church organs",
        "ice sculptures",
        "vintage typewriters",
        "snow machines",
        "harp ensembles",
        "bouncy castles",
    )
    for place in ("Lisbon", "Oslo", "Kyoto", "Nairobi", "Lima", "Tbilisi")
]


def _fresh_offset(size: int | str) -> int:
    return 24 if size == "1M" else 0  # 20 listings at most per call


class _AdderClock:
    """Times the adding thread's calls of one method (the searching thread's go untimed)."""

    def __init__(self, owner: Any, name: str, sink: list[float]) -> None:
        self.owner, self.name, self.sink = owner, name, sink
        self.inner = getattr(owner, name)
        self.thread: threading.Thread | None = None

    def __enter__(self) -> _AdderClock:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not self.thread:
                return self.inner(*args, **kwargs)
            t = time.perf_counter()
            try:
                return self.inner(*args, **kwargs)
            finally:
                self.sink.append((time.perf_counter() - t) * 1000)

        setattr(self.owner, self.name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        delattr(self.owner, self.name)  # the instance attribute: the method shows again


def add_while_searching(svc: RegistryService, intents: list[str], size: int | str) -> None:
    """Time to searchable for new listings, where it goes, and search p50 with and without
    adds. Parts of one add: the listing's texts encoded, the index insert, the rest of
    ``bulk_list`` (the database transaction: rows, FTS, commit), then one search."""
    stop = threading.Event()
    visible: list[tuple[float, bool]] = []
    parts: dict[str, list[float]] = {"encode": [], "index": [], "listed": [], "search": []}
    assert svc.embedder is not None
    clocks = (
        _AdderClock(svc.embedder, "encode", parts["encode"]),
        _AdderClock(svc.vectors, "add", parts["index"]),
    )

    def adder() -> None:
        for clock in clocks:
            clock.thread = threading.current_thread()
        for _ in range(10):
            if stop.is_set():
                return
            n = f"{len(visible)}-{size}"  # unique over both adding rounds and every size
            thing, place = _FRESH[(len(visible) + _fresh_offset(size)) % len(_FRESH)]
            e = EntryData(
                f"Fresh {n}",
                f"Rental of {thing} in {place}, delivered and set up",
                f"https://fresh{n}.example",
                f"https://fresh{n}.example",
                "ath",
                provider_id=f"fresh{n}",
                examples=[f"hire {thing} in {place}"],
            )
            t = time.perf_counter()
            svc.bulk_list([(e.url, "ath", [e])])
            t1 = time.perf_counter()
            hits = svc.search(f"hire {thing} in {place}", 10, "semantic")
            t2 = time.perf_counter()
            ok = any(h.provider_id == e.provider_id for h in hits.providers)
            visible.append(((t2 - t) * 1000, ok))
            parts["listed"].append((t1 - t) * 1000)
            parts["search"].append((t2 - t1) * 1000)
            time.sleep(0.3)

    rounds: dict[str, list[float]] = {"quiet": [], "adding": []}
    with clocks[0], clocks[1]:
        _rounds(svc, intents, adder, stop, rounds)
    ms = [v for v, _ in visible]
    quiet, adding = rounds["quiet"], rounds["adding"]
    print(
        f"  {size}: new listing searchable after p50 {statistics.median(ms):.0f} ms "
        f"(max {max(ms):.0f} ms, found {sum(ok for _, ok in visible)}/{len(visible)}); "
        f"search quiet p50 {statistics.median(quiet):.1f} / p99 {pct(quiet, 99):.1f} ms, "
        f"while adding p50 {statistics.median(adding):.1f} / p99 {pct(adding, 99):.1f} ms"
    )
    # each add is one encode in bulk_list, then one in the search that follows
    encode_add = parts["encode"][0::2]
    split = {
        "encode": encode_add,
        "index": parts["index"],
        "database": [
            lst - enc - idx
            for lst, enc, idx in zip(parts["listed"], encode_add, parts["index"], strict=False)
        ],
        "search": parts["search"],
    }
    print(
        f"  {size}: one add, median / max ms: "
        + ", ".join(f"{k} {statistics.median(v):.0f} / {max(v):.0f}" for k, v in split.items())
    )
    for k, v in split.items():
        figure(f"registry_add_{k}_p50_ms_{size}", statistics.median(v), "ms")
        figure(f"registry_add_{k}_max_ms_{size}", max(v), "ms")
    figure(f"registry_add_to_searchable_p50_ms_{size}", statistics.median(ms), "ms")
    figure(f"registry_add_to_searchable_ms_{size}", max(ms), "ms")
    figure(f"registry_added_found_share_{size}", sum(ok for _, ok in visible) / len(visible))
    figure(f"registry_search_p50_while_adding_ms_{size}", statistics.median(adding), "ms")
    figure(f"registry_search_p99_while_adding_ms_{size}", pct(adding, 99), "ms")
    figure(f"registry_search_p50_quiet_ms_{size}", statistics.median(quiet), "ms")
    figure(f"registry_search_p99_quiet_ms_{size}", pct(quiet, 99), "ms")


def _rounds(
    svc: RegistryService,
    intents: list[str],
    adder: Any,
    stop: threading.Event,
    rounds: dict[str, list[float]],
) -> None:
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


# -- 1M ---------------------------------------------------------------------------------------


def _listed_vectors(svc: RegistryService) -> tuple[list[int], list[Any]]:
    assert svc.embedder is not None
    ids, mats = [], []
    with svc.db.transaction() as s:
        rows = s.execute(
            text(
                "SELECT id, embedding FROM registry_entries "
                "WHERE embedding IS NOT NULL AND embedding_model = :m ORDER BY id"
            ),
            {"m": entry_rows.model_tag(svc.embedder)},
        )
        for eid, blob in rows:
            ids.append(int(eid))
            mats.append(from_blob(bytes(blob), svc.vectors.ndim))
    return ids, mats


def million(
    svc: RegistryService,
    http: httpx.Client,
    intents: list[str],
    n: int,
    total: int = 1_000_000,
    noise: float = 0.04,
) -> None:
    """The request path with ``total`` distinct vectors in the index (module docstring)."""
    assert svc.embedder is not None
    rng = np.random.default_rng(7)
    ids, mats = _listed_vectors(svc)
    real = svc.vectors
    big = VectorIndex(
        ndim=real.ndim,
        dtype=real.dtype,
        connectivity=real.connectivity,
        expansion_search=real.expansion_search,
    )
    t = time.perf_counter()
    big.add(zip(ids, mats, strict=True), threads=2)
    distinct, where = np.unique(np.concatenate(mats), axis=0, return_inverse=True)
    where = where.reshape(-1)
    extra = total - big.vector_count
    synthetic = np.empty((extra, real.ndim), dtype=np.float32)
    first = max(ids) + 1_000_000
    for start in range(0, extra, 50_000):
        m = min(50_000, extra - start)
        chunk = distinct[rng.integers(0, len(distinct), m)] + rng.normal(0, noise, (m, real.ndim))
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        synthetic[start : start + m] = chunk
        big.add(((first + start + i, chunk[i : i + 1]) for i in range(m)), threads=2)
    build = time.perf_counter() - t
    mib = big.memory_bytes / 2**20
    print(
        f"\n1M index: {big.vector_count} distinct vectors ({len(ids)} listed entries + "
        f"{extra} synthetic), built in {build:.0f} s, {mib:.0f} MiB"
    )
    figure("registry_1m_index_vectors", big.vector_count)
    figure("registry_1m_index_build_s", build, "s")
    figure("registry_1m_index_mib", mib, "MiB")
    offsets = np.cumsum([0] + [len(m) for m in mats[:-1]])
    _recall(big, svc.embedder, intents, np.asarray(ids), distinct, where, offsets, synthetic)
    del mats, distinct, where, synthetic  # the bench's copies, not the server's memory
    gc.collect()

    big.model_name = real.model_name
    with svc.db.transaction() as s:  # in step with the table: no catch-up sync would start
        big.generation = svc.generation(s)
    svc.vectors = big
    try:
        latency(svc, http, intents, "1M", n, modes=("semantic", "hybrid"))
        print(f"  RSS {rss_mb():.0f} MiB with the 1M index")
        figure("registry_rss_mib_1M", rss_mb(), "MiB")
        t = time.perf_counter()  # a full collection holds the GIL: every search waits for it
        gc.collect()
        pause = (time.perf_counter() - t) * 1000
        print(f"  a full garbage collection with the 1M index: {pause:.0f} ms")
        figure("registry_gc_full_ms_1M", pause, "ms")
        add_while_searching(svc, intents, "1M")
        print(f"  the index still holds {big.vector_count} vectors")
    finally:
        svc.vectors = real
        svc.request_sync()  # the listings added meanwhile


def _recall(
    big: VectorIndex,
    embedder: ranking.Embedder,
    intents: list[str],
    ids: Any,
    distinct: Any,
    where: Any,
    offsets: Any,
    synthetic: Any,
) -> None:
    """Index top-k against exact top-k entries (best cosine over each entry's vectors)."""
    first = int(ids[-1]) + 1_000_000  # the synthetic entries' first id (see million)
    hits: dict[int, list[float]] = {10: [], 50: []}
    for intent in intents:
        q = embedder.encode([intent])[0]
        listed = np.maximum.reduceat((distinct @ q)[where], offsets)
        scores = np.concatenate([listed, synthetic @ q])
        cut = -np.sort(np.partition(-scores, 50)[:50])
        got = [e for e, _ in big.search(q, 50)]
        pos = [e - first + len(ids) if e >= first else int(np.searchsorted(ids, e)) for e in got]
        for k in hits:
            kth = float(cut[k - 1]) - 1e-4  # ties with the k-th count as hits
            hits[k].append(sum(float(scores[p]) >= kth for p in pos[:k]) / k)
    for k, v in hits.items():
        r = statistics.mean(v)
        print(f"  1M index recall@{k} against exact search: {r:.4f}")
        figure(f"registry_1m_index_recall@{k}", r)

"""Registry ranking evaluation: recall@1, recall@3 and MRR, keyword-only vs hybrid, and search
latency with 10,000 listed services.

    .venv/bin/python bench/registry_eval.py [--total 10000] [--queries 300]

The labelled set (``bench/registry_eval_data.json``, written for athkit) has 44 services and
three intents per service, phrased without the words of the service's description. The other
services up to ``--total`` are synthetic (seeded random combinations of niche B2B topics that
none of the intents is about), so they act as distractors. Search runs in-process through
:meth:`RegistryService.search` on SQLite (FTS5 bm25 + numpy dot product), i.e. the work one
``GET /api/search`` does minus HTTP.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from athkit.registry import ranking
from athkit.registry.documents import EntryData
from athkit.registry.service import RegistryService, RegistrySettings

DATA = Path(__file__).with_name("registry_eval_data.json")

TOPICS = [
    "industrial valve maintenance",
    "fleet telematics",
    "laboratory sample tracking",
    "warehouse slotting optimisation",
    "HVAC compliance audits",
    "payroll for construction crews",
    "veterinary clinic records",
    "dental practice imaging",
    "agricultural drone surveys",
    "legal e-discovery",
    "patent search",
    "customs brokerage",
    "freight invoice auditing",
    "solar panel monitoring",
    "wind turbine inspection",
    "mining equipment leasing",
    "hospital bed management",
    "clinical trial recruitment",
    "school bus routing",
    "church donation management",
    "museum collection cataloguing",
    "library circulation",
    "print shop job queues",
    "sign language interpreting",
    "court reporting",
    "forklift certification",
    "boiler inspection",
    "elevator maintenance scheduling",
    "fire alarm testing",
    "water quality sampling",
    "soil testing",
    "beekeeping supplies",
    "aquarium maintenance",
    "greenhouse climate control",
    "sawmill inventory",
    "textile dye matching",
    "3D printer farm management",
    "CNC machine telemetry",
    "chemical safety data sheets",
    "radiation badge tracking",
    "pipeline leak detection",
    "railway signal diagnostics",
    "port crane scheduling",
    "airport baggage analytics",
    "hotel linen logistics",
    "casino floor analytics",
    "stadium turf care",
    "ski lift operations",
    "marina slip rental",
    "cemetery plot records",
    "translation memory for engineers",
    "API uptime monitoring",
    "log aggregation",
    "container registry mirroring",
    "DNS zone management",
    "SSL certificate inventory",
    "feature flag rollouts",
    "load testing",
    "database schema review",
    "CAD file conversion",
    "BIM model coordination",
    "survey data cleaning",
    "grant application tracking",
    "nonprofit volunteer rosters",
    "union dues collection",
    "trade show booth planning",
    "franchise royalty reporting",
    "vending machine telemetry",
    "parking garage sensors",
    "traffic light timing",
    "snow plough dispatch",
    "street light outage reports",
]
ADJ = [
    "Acme",
    "Apex",
    "Blue",
    "Cobalt",
    "Delta",
    "Ember",
    "Falcon",
    "Granite",
    "Harbor",
    "Iris",
    "Juniper",
    "Kestrel",
    "Lumen",
    "Meridian",
    "Nova",
    "Onyx",
    "Pioneer",
    "Quartz",
    "Ridge",
    "Summit",
    "Tandem",
    "Umber",
    "Vector",
    "Willow",
    "Zenith",
]
NOUN = ["Systems", "Labs", "Works", "Cloud", "Hub", "Suite", "Logic", "Ops", "Stack", "Desk"]
FORMS = [
    "{a} and {b} for mid-sized operators",
    "Software for {a}, with reporting on {b}",
    "{a} platform; integrates {b}",
    "Managed {a} and {b} services",
]
_WORD = re.compile(r"[a-z]+")


def stem(w: str) -> str:
    return w[:5]


def overlap_report(services: list[dict[str, object]]) -> int:
    """How many intents share a content word (5-letter prefix) with their own description."""
    n = 0
    for s in services:
        desc = {stem(w) for w in _WORD.findall(str(s["description"]).lower())} - {
            stem(w) for w in ranking.STOPWORDS
        }
        for intent in s["intents"]:  # type: ignore[attr-defined]
            words = {stem(w) for w in _WORD.findall(intent.lower()) if w not in ranking.STOPWORDS}
            if words & desc:
                n += 1
    return n


def synthetic(n: int, rng: random.Random, unique: int) -> list[tuple[str, str, list[EntryData]]]:
    """``n`` distractor listings drawn from ``unique`` distinct (name, description) pairs, so the
    model embeds ``unique`` texts instead of ``n`` (the matrix still has ``n`` rows)."""
    pool = []
    for _ in range(unique):
        a, b = rng.sample(TOPICS, 2)
        desc = rng.choice(FORMS).format(a=a, b=b)
        pool.append((f"{rng.choice(ADJ)} {rng.choice(NOUN)}", desc[0].upper() + desc[1:]))
    out = []
    for i in range(n):
        name, desc = pool[i % unique]
        origin = f"https://svc{i}.example"
        entry = EntryData(
            name,
            desc,
            origin,
            origin,
            "ath",
            provider_id=f"svc{i}",
            scopes=["data:read"],
            categories=["b2b"],
        )
        out.append((origin, "ath", [entry]))
    return out


class CachingEmbedder:
    """Embeds each distinct text once (bench only)."""

    def __init__(self, inner: ranking.Embedder) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.cache: dict[str, object] = {}

    def encode(self, texts):  # type: ignore[no-untyped-def]
        import numpy as np

        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            for t, v in zip(todo, self.inner.encode(todo), strict=True):
                self.cache[t] = v
        return np.stack([self.cache[t] for t in texts])


def evaluate(
    svc: RegistryService, services: list[dict[str, object]], mode: str
) -> dict[str, float]:
    r1 = r3 = rr = 0.0
    total = 0
    for s in services:
        for intent in s["intents"]:  # type: ignore[attr-defined]
            total += 1
            hits = svc.search(intent, limit=10, mode=mode)  # type: ignore[arg-type]
            ids = [h.provider_id for h in hits.providers]
            if s["id"] in ids:
                rank = ids.index(s["id"]) + 1
                r1 += rank == 1
                r3 += rank <= 3
                rr += 1 / rank
    return {"recall@1": r1 / total, "recall@3": r3 / total, "MRR": rr / total, "n": total}


def run_modes(
    svc: RegistryService, services: list[dict[str, object]], modes: list[str]
) -> dict[str, dict[str, float]]:
    """keyword, hybrid (configured weight) and semantic alone (weight 1.0, for reference)."""
    out = {m: evaluate(svc, services, m) for m in modes}
    if "hybrid" in modes:
        w = svc.settings.hybrid_weight
        svc.settings.hybrid_weight = 1.0
        out["semantic"] = evaluate(svc, services, "hybrid")
        svc.settings.hybrid_weight = w
    return out


def latency(svc: RegistryService, intents: list[str], mode: str, runs: int) -> tuple[float, float]:
    times = []
    for i in range(runs):
        t = time.perf_counter()
        svc.search(intents[i % len(intents)], limit=10, mode=mode)  # type: ignore[arg-type]
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--total", type=int, default=10_000, help="listed services for latency")
    ap.add_argument("--queries", type=int, default=300, help="searches timed per mode")
    ap.add_argument("--weight", type=float, default=None, help="hybrid weight override")
    ap.add_argument("--unique", type=int, default=1000, help="distinct synthetic texts")
    args = ap.parse_args()

    data = json.loads(DATA.read_text())
    services = data["services"]
    n_intents = sum(len(s["intents"]) for s in services)
    print(
        f"labelled set: {len(services)} services, {n_intents} intents; "
        f"intents sharing a word with their description: {overlap_report(services)}"
    )

    weight = RegistrySettings().hybrid_weight if args.weight is None else args.weight
    print(f"hybrid weight {weight} (score = w * cosine + (1 - w) * keyword_norm)")
    t = time.perf_counter()
    embedder = ranking.load_embedder()
    if embedder is None:
        print("semantic extra not installed: keyword-only figures below")
    else:
        print(f"model {embedder.model_name} loaded in {time.perf_counter() - t:.1f}s")

    with tempfile.TemporaryDirectory() as tmp:
        settings = RegistrySettings(data_dir=Path(tmp), semantic="auto")
        if args.weight is not None:
            settings.hybrid_weight = args.weight
        svc = RegistryService(settings, embedder=CachingEmbedder(embedder) if embedder else None)
        real = [
            (
                f"https://{s['id']}.example",
                "ath",
                [
                    EntryData(
                        s["name"],
                        s["description"],
                        f"https://{s['id']}.example",
                        f"https://{s['id']}.example",
                        "ath",
                        provider_id=s["id"],
                        categories=s["categories"],
                    )
                ],
            )
            for s in services
        ]
        svc.bulk_list(real, verified=True)
        modes = ["keyword"] + (["hybrid"] if embedder else [])
        results: dict[str, dict[str, dict[str, float]]] = {}
        results[f"{len(services)} listed"] = run_modes(svc, services, modes)

        t = time.perf_counter()
        rng = random.Random(4)
        extra = synthetic(args.total - len(services), rng, args.unique)
        for i in range(0, len(extra), 1000):
            svc.bulk_list(extra[i : i + 1000])
        print(
            f"listed {args.total} services in {time.perf_counter() - t:.1f}s (embedding included)"
        )
        results[f"{args.total} listed"] = run_modes(svc, services, modes)

        print()
        print(f"{'listings':>14} {'ranking':>8} {'recall@1':>9} {'recall@3':>9} {'MRR':>6}")
        for where, per_mode in results.items():
            for m, r in per_mode.items():
                print(
                    f"{where:>14} {m:>8} {r['recall@1']:9.3f} {r['recall@3']:9.3f} {r['MRR']:6.3f}"
                )

        intents = [i for s in services for i in s["intents"]]
        print()
        print(f"search latency with {args.total} listings ({args.queries} queries, limit 10):")
        for m in modes:
            latency(svc, intents, m, 20)  # warm-up (matrix load, caches)
            p50, p99 = latency(svc, intents, m, args.queries)
            print(f"  {m:>8}: p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
        svc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

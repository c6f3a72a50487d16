"""The labelled set and the synthetic distractor listings used by ``registry_eval.py``.

Distractors are seeded random combinations of niche B2B topics that no labelled intent is about
(topics that overlap a labelled service, such as uptime monitoring or payroll, are left out).
Like real listings they carry operations and example intents, so a listing with phrases has no
built-in advantage over them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from athkit.registry.documents import EntryData

DATA = Path(__file__).with_name("registry_eval_data.json")

TOPICS = [
    "industrial valve maintenance",
    "fleet telematics",
    "laboratory sample tracking",
    "warehouse slotting optimisation",
    "HVAC compliance audits",
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
    "container registry mirroring",
    "database schema review",
    "CAD file conversion",
    "BIM model coordination",
    "survey data cleaning",
    "union dues collection",
    "trade show booth planning",
    "franchise royalty reporting",
    "vending machine telemetry",
    "parking garage sensors",
    "traffic light timing",
    "snow plough dispatch",
    "street light outage reports",
    "cold chain temperature logging",
    "grain silo monitoring",
    "tyre retreading",
    "pallet pooling",
    "scaffolding hire",
    "crane load charts",
    "asbestos surveys",
    "meat processing traceability",
    "dairy herd genetics",
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
OPS = ["schedule {a}", "report on {b}", "export {a} records", "audit {b}", "track {a}"]
EXAMPLES = ["plan next week's {a}", "show the {b} report for site 4", "who signed off the {a}"]


def load() -> list[dict[str, Any]]:
    services: list[dict[str, Any]] = json.loads(DATA.read_text())["services"]
    return services


def cases(services: list[dict[str, Any]], split: str | None = None) -> list[tuple[str, str]]:
    """``[(intent, service id)]`` of one split (``dev``, ``heldout``) or all."""
    return [
        (i, s["id"])
        for s in services
        if split is None or s["split"] == split
        for i in s["intents"] + s["hard"]
    ]


def document_of(s: dict[str, Any], origin: str) -> dict[str, Any]:
    """The ath-app.json a labelled service's owner would publish."""
    doc: dict[str, Any] = {
        "ath_version": "1.0",
        "app_id": s["id"],
        "name": s["name"],
        "description": s["description"],
        "categories": s["categories"],
        "auth": {
            "type": "oauth2",
            "authorization_endpoint": origin + "/authorize",
            "token_endpoint": origin + "/token",
            "scopes_supported": s["scopes"],
        },
        "api_base": origin + "/api",
        "scope_descriptions": s["scope_descriptions"],
        "operations": s["operations"],
    }
    if s.get("examples"):
        doc["example_intents"] = s["examples"]
    return doc


def entry_of(s: dict[str, Any]) -> EntryData:
    origin = f"https://{s['id']}.example"
    return EntryData(
        s["name"],
        s["description"],
        origin,
        origin,
        "ath",
        provider_id=s["id"],
        scopes=list(s["scopes"]),
        categories=list(s["categories"]),
        scope_descriptions=dict(s["scope_descriptions"]),
        operations=list(s["operations"]),
        examples=list(s.get("examples", [])),
    )


def distractors(n: int, seed: int = 4, unique: int | None = None) -> list[EntryData]:
    """``n`` synthetic listings; with ``unique``, only that many distinct texts (cycled)."""
    rng = random.Random(seed)
    pool: list[EntryData] = []
    for i in range(unique or n):
        a, b = rng.sample(TOPICS, 2)
        desc = rng.choice(FORMS).format(a=a, b=b)
        name = f"{rng.choice(ADJ)} {rng.choice(NOUN)} {i}"
        origin = f"https://d{i}.example"
        pool.append(
            EntryData(
                name,
                desc[0].upper() + desc[1:],
                origin,
                origin,
                "ath",
                provider_id=f"d{i}",
                scopes=["data:read", "data:write"],
                categories=["b2b"],
                scope_descriptions={"data:read": f"read {a} data", "data:write": f"update {b}"},
                operations=[o.format(a=a, b=b) for o in rng.sample(OPS, 3)],
                examples=[e.format(a=a, b=b) for e in rng.sample(EXAMPLES, 2)],
            )
        )
    out = []
    for i in range(n):
        e = pool[i % len(pool)]
        origin = f"https://d{i}.example"
        out.append(
            EntryData(
                e.name,
                e.description,
                origin,
                origin,
                "ath",
                provider_id=f"d{i}",
                scopes=e.scopes,
                categories=e.categories,
                scope_descriptions=e.scope_descriptions,
                operations=e.operations,
                examples=e.examples,
            )
        )
    return out

"""What a listing says it does: the optional capability fields of a discovery document, and the
texts the embedding model reads for an entry.

Beyond PROTOCOL.md §2, the registry reads these optional fields on an ``ath-app.json`` document,
on each provider of a gateway's ``ath.json`` and on an Agent Auth ``agent-configuration``:

* ``description`` (string) and ``categories`` (list of strings);
* ``scope_descriptions``: an object ``{scope: what it lets an agent do}``;
* ``operations``: a list of short phrases naming what the API does ("create an invoice");
* ``example_intents``: a list of requests an agent might send for this service ("bill my client").

They come only from the document the owner publishes on the origin whose ownership the registry
checked (never from the anonymous submission body), and re-validation re-reads them, so they are
as trustworthy as the listing itself. Malformed values make the document invalid
(``DISCOVERY_DOCUMENT_INVALID`` naming the field) rather than being silently dropped, so an owner
sees the mistake.

**Embedded text.** The model reads what the service *does*, not what it is called: brand names
rarely carry meaning for the model and lure intents that share a word with them. An entry's main
text is its description, categories, scope descriptions and operations; each example intent and
operation is also embedded on its own, so an intent close to one of them finds the entry even
when the description is worded differently (see ``ranking.py``).
"""

from __future__ import annotations

import re
from typing import Any

from athkit.registry.errors import DISCOVERY_DOCUMENT_INVALID, registry_error

MAX_PHRASE = 200
MAX_EXAMPLES = 20
MAX_OPERATIONS = 32
MAX_SCOPE_DESCRIPTIONS = 64
#: phrases embedded on their own per entry (examples first, then operations)
MAX_PHRASES = 24
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _invalid(field: str, problem: str) -> Exception:
    return registry_error(
        DISCOVERY_DOCUMENT_INVALID,
        f"{field} {problem}",
        {"field": field},
    )


def _phrase(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _invalid(field, "must contain only strings")
    if _CONTROL.search(value.replace("\t", " ").replace("\n", " ")):
        raise _invalid(field, "must not contain control characters")
    text = " ".join(value.split())
    if len(text) > MAX_PHRASE:
        raise _invalid(field, f"entries must be at most {MAX_PHRASE} characters")
    return text


def phrase_list(doc: dict[str, Any], field: str, limit: int) -> list[str]:
    """A validated, de-duplicated list of short phrases (``[]`` when the field is absent)."""
    value = doc.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(field, "must be a list of strings")
    if len(value) > limit:
        raise _invalid(field, f"must have at most {limit} entries")
    out: dict[str, None] = {}
    for v in value:
        text = _phrase(v, field)
        if text:
            out.setdefault(text, None)
    return list(out)


def scope_descriptions(doc: dict[str, Any], scopes: list[str]) -> dict[str, str]:
    """``{scope: description}`` for scopes the document lists (others are ignored)."""
    value = doc.get("scope_descriptions")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid("scope_descriptions", "must be an object of scope: description")
    if len(value) > MAX_SCOPE_DESCRIPTIONS:
        raise _invalid("scope_descriptions", f"must have at most {MAX_SCOPE_DESCRIPTIONS} entries")
    known = set(scopes)
    out = {}
    for scope, desc in value.items():
        text = _phrase(desc, "scope_descriptions")
        if text and (not known or scope in known):
            out[str(scope)[:128]] = text
    return out


def read(doc: dict[str, Any], scopes: list[str]) -> dict[str, Any]:
    """The capability fields of one document (or gateway provider object), validated."""
    return {
        "scope_descriptions": scope_descriptions(doc, scopes),
        "operations": phrase_list(doc, "operations", MAX_OPERATIONS),
        "examples": phrase_list(doc, "example_intents", MAX_EXAMPLES),
    }


def main_text(
    description: str,
    categories: list[str],
    scope_descriptions: dict[str, str],
    operations: list[str],
) -> str:
    """What the model reads as the entry's main vector (no brand name)."""
    parts = [description.rstrip(". ")]
    if categories:
        parts.append(", ".join(categories))
    if scope_descriptions:
        parts.append("; ".join(scope_descriptions.values()))
    if operations:
        parts.append("; ".join(operations))
    return ". ".join(p for p in parts if p)


def phrases(examples: list[str], operations: list[str]) -> list[str]:
    """Texts embedded one by one beside the main text (examples first)."""
    return list(dict.fromkeys(examples + operations))[:MAX_PHRASES]

"""Audit rows as CSV or JSON (the console's export and ``athkit audit --format``).

The columns are the §11 fields plus id, outcome and details; nothing in a row is a secret
(audit rows never hold tokens, codes or passwords).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from athkit.core.clock import iso
from athkit.store.models import AuditRow

COLUMNS = (
    "id",
    "timestamp",
    "event",
    "outcome",
    "agent_id",
    "user_id",
    "provider_id",
    "requested_scopes",
    "effective_scopes",
    "denied_scopes",
    "denial_reason",
    "details",
)


def as_record(row: AuditRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "timestamp": iso(row.timestamp),
        "event": row.event,
        "outcome": row.outcome,
        "agent_id": row.agent_id,
        "user_id": row.user_id,
        "provider_id": row.provider_id,
        "requested_scopes": list(row.requested_scopes or []),
        "effective_scopes": list(row.effective_scopes or []),
        "denied_scopes": list(row.denied_scopes or []),
        "denial_reason": row.denial_reason,
        "details": dict(row.details or {}),
    }


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    text = str(value)
    # Spreadsheet formula injection: a cell starting with = + - @ is data, not a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def iter_csv(rows: Iterable[AuditRow]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    for row in rows:
        record = as_record(row)
        writer.writerow([_csv_cell(record[c]) for c in COLUMNS])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    rest = buf.getvalue()
    if rest:
        yield rest


def iter_json(rows: Iterable[AuditRow]) -> Iterator[str]:
    """A JSON array, written row by row."""
    yield "["
    first = True
    for row in rows:
        yield ("" if first else ",") + "\n" + json.dumps(as_record(row), sort_keys=True)
        first = False
    yield "\n]\n"

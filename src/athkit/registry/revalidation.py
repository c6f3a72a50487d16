"""Re-validation: re-fetch every listed origin, concurrently, and drop those gone bad.

Origins are checked by a bounded pool (``RegistrySettings.revalidate_workers`` threads), so one
slow origin costs one worker for at most the fetch deadline instead of delaying every other
check; each origin's outcome is written in its own transaction. What counts as a definite
failure is described in the package README.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update

from athkit.protocol.errors import ATHError
from athkit.registry.documents import FetchFailed, normalize_origin, parse_entries
from athkit.registry.models import Listing
from athkit.registry.proof import check_proof

if TYPE_CHECKING:
    from athkit.registry.service import RegistryService

PENDING_TTL = timedelta(days=7)


@dataclass
class RevalidationReport:
    checked: int = 0
    kept: int = 0
    dropped: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    purged_pending: int = 0


@dataclass
class _Listed:
    id: str
    origin: str
    document_url: str
    verified: bool
    description: str | None
    categories: str
    failures: int


def _reason(exc: ATHError) -> str:
    problems = exc.details.get("problems")
    if isinstance(problems, dict) and problems:
        return exc.message + " (" + "; ".join(f"{k}: {v}" for k, v in problems.items()) + ")"
    return exc.message


def revalidate(svc: RegistryService) -> RevalidationReport:
    report = RevalidationReport()
    with svc.db.transaction() as s:
        listed = [
            _Listed(*row)
            for row in s.execute(
                select(
                    Listing.id,
                    Listing.origin,
                    Listing.document_url,
                    Listing.verified,
                    Listing.submitted_description,
                    Listing.submitted_categories,
                    Listing.failures,
                ).where(Listing.status == "listed")
            ).all()
        ]
        purged = s.execute(
            delete(Listing).where(
                Listing.status == "pending",
                Listing.updated_at < datetime.now(UTC) - PENDING_TTL,
            )
        )
        report.purged_pending = int(getattr(purged, "rowcount", 0) or 0)
    # at most half the outbound fetch cap, so submissions still get through meanwhile
    cap = max(1, svc.settings.outbound_max_concurrent // 2)
    workers = max(1, min(svc.settings.revalidate_workers, cap, len(listed) or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="registry-revalidate") as pool:
        outcomes = list(pool.map(lambda item: (item, _check(svc, item)), listed))
    for item, (reason, dropped) in outcomes:
        report.checked += 1
        if reason is not None:
            report.errors[item.id] = reason
        if dropped:
            report.dropped.append(item.id)
        else:
            report.kept += 1
    return report


def _check(svc: RegistryService, item: _Listed) -> tuple[str | None, bool]:
    """``(problem or None, dropped)`` for one listing; writes its outcome."""
    reason, definite = _proof(svc, item)
    if reason is None:
        try:
            _, only = normalize_origin(item.document_url)
            doc = svc.fetcher.fetch_document(item.origin, only)
            entries = parse_entries(
                doc.protocol,
                doc.document,
                item.origin,
                item.description,
                json.loads(item.categories),
            )
            svc.refresh(item.id, doc, entries, item.verified)
            return None, False
        except ATHError as exc:
            reason, definite = _reason(exc), bool(exc.details.get("definite", True))
    if definite or item.failures + 1 >= svc.settings.delist_after_failures:
        svc.delist(item.id, reason)
        return reason, True
    with svc.db.transaction() as s:
        s.execute(
            update(Listing)
            .where(Listing.id == item.id)
            .values(failures=item.failures + 1, last_error=reason, checked_at=datetime.now(UTC))
        )
    return reason, False


def _proof(svc: RegistryService, item: _Listed) -> tuple[str | None, bool]:
    """``(problem or None, definite)`` for the ownership proof of a listed origin."""
    if not item.verified:
        return None, True
    try:
        return check_proof(svc.fetcher, item.origin, svc.token_for(item.origin)), True
    except FetchFailed as exc:
        return f"verification file could not be fetched: {exc.reason}", False
    except ATHError as exc:  # the SSRF guard now refuses the origin (e.g. DNS changed)
        return exc.message, True

"""Per-call audit events (``proxy_request``, ``scope_violation``, ``attestation_failed``) written
off the request path: a bounded queue drained by one thread in batches, one transaction each.

A proxied call only appends to the queue (no database work, no lock held across I/O). When the
queue is full the new event is dropped and counted in ``athkit_audit_dropped_total`` (and a
warning is logged at most once a minute): auditing never slows or blocks the data path, and an
overflow is visible, not silent. ``proxy_request`` rows can be sampled (``sample`` = fraction
kept); violations and failed attestations are always kept. Rows still queued at shutdown are
flushed by :meth:`AuditBatchWriter.close`.

Per-call rows are plain column values (:data:`AuditValues`), not ORM objects: building one costs
the request path a dict, and the writer inserts a batch as one executemany statement.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from athkit.core import audit_events as ev
from athkit.core.clock import to_datetime
from athkit.core.metrics import AUDIT_DROPPED
from athkit.protocol.errors import ATHError
from athkit.store.models import AuditRow

log = logging.getLogger("athkit.audit")

#: One ``ath_audit`` row as column values (the columns of :class:`AuditRow` but ``id``).
AuditValues = dict[str, Any]
#: What the writer queues: column values, or an ORM row (:func:`~athkit.core.audit.audit_row`).
QueuedRow = AuditRow | AuditValues

ALWAYS_KEPT = frozenset({ev.SCOPE_VIOLATION, ev.ATTESTATION_FAILED})


def call_row(
    now: float,
    event: str,
    outcome: str,
    *,
    agent_id: str | None = None,
    provider_id: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditValues:
    """A per-call row, built without the log line and counter of
    :func:`~athkit.core.audit.audit_row` (the proxy and refusal metrics count these calls)."""
    return {
        "timestamp": to_datetime(now),
        "event": event,
        "outcome": outcome,
        "agent_id": agent_id,
        "user_id": None,
        "provider_id": provider_id,
        "requested_scopes": [],
        "effective_scopes": [],
        "denied_scopes": [],
        "denial_reason": reason,
        "details": details or {},
    }


def _event_of(row: QueuedRow) -> str:
    return str(row["event"]) if isinstance(row, dict) else row.event


def attestation_failed_row(
    now: float, endpoint: str, claimed: str | None, err: ATHError
) -> AuditValues:
    """``attestation_failed``: the agent id is the one the JWT claims (it did not verify)."""
    return call_row(
        now,
        ev.ATTESTATION_FAILED,
        "refused",
        agent_id=claimed,
        reason=err.code_str,
        details={"endpoint": endpoint, "message": err.message[:300], "agent_id_unverified": True},
    )


class AuditBatchWriter:
    def __init__(
        self,
        write_many: Callable[[Sequence[QueuedRow]], None],
        *,
        sample: float = 1.0,
        max_queue: int = 10_000,
        batch: int = 500,
        interval: float = 0.5,
    ) -> None:
        self.write_many = write_many
        self.sample = min(1.0, max(0.0, sample))
        self.batch = batch
        self.interval = interval
        self._queue: queue.Queue[QueuedRow] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._last_warning = 0.0
        self._thread = threading.Thread(target=self._run, name="athkit-audit", daemon=True)
        self._thread.start()

    def submit(self, row: QueuedRow) -> bool:
        """Queue one row (never blocks); False when it was sampled out or dropped."""
        keep = self.sample >= 1.0 or random.random() < self.sample  # noqa: S311 - sampling only
        if not keep and _event_of(row) not in ALWAYS_KEPT:
            return False
        try:
            self._queue.put_nowait(row)
            return True
        except queue.Full:
            AUDIT_DROPPED.labels(_event_of(row)).inc()
            now = time.monotonic()
            if now - self._last_warning > 60:
                self._last_warning = now
                log.warning("audit queue full: per-call events are being dropped")
            return False

    def resize(self, max_queue: int) -> None:
        """A new bound (before traffic starts: rows queued so far are kept)."""
        old, self._queue = self._queue, queue.Queue(maxsize=max_queue)
        while True:
            try:
                self.submit(old.get_nowait())
            except queue.Empty:
                return

    def _drain(self) -> list[QueuedRow]:
        rows: list[QueuedRow] = []
        while len(rows) < self.batch:
            try:
                rows.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return rows

    def flush(self) -> int:
        """Write everything queued now; the number of rows written."""
        written = 0
        while True:
            rows = self._drain()
            if not rows:
                return written
            try:
                self.write_many(rows)
                written += len(rows)
            except Exception:  # database down: these rows are lost, counted, and we go on
                for r in rows:
                    AUDIT_DROPPED.labels(_event_of(r)).inc()
                log.exception("writing %d audit rows failed; they are dropped", len(rows))
                return written

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()

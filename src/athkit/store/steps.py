"""One transaction per protocol step: the attestation's ``jti`` is recorded by the step's write.

A step (register, authorize, token) verifies a fresh attestation and then makes one write. With
the replay cache in SQL that used to be two commits. Inside :func:`protocol_step` the replay
check only reads (a ``jti`` already recorded is refused at once) and the new ``jti`` rides along
in the step's own transaction (:func:`take_pending_replay`). A step that ends without its
write, refused or failed, records the ``jti`` on its own, so every attestation seen stays
refused afterwards, exactly as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, ParamSpec, Protocol, TypeVar

from athkit.store import on_loop
from athkit.store.models import ReplayRow

P = ParamSpec("P")
T = TypeVar("T")

_pending: ContextVar[list[ReplayRow] | None] = ContextVar("athkit_pending_replay", default=None)


class _ReplayStore(Protocol):
    def remember_once(self, key: str, expires_at: datetime, now: datetime) -> bool: ...


def protocol_step(method: Callable[P, T]) -> Callable[P, T]:
    """Decorate a service method whose one write should also record its attestation's jti."""

    @functools.wraps(method)
    def step(*args: P.args, **kwargs: P.kwargs) -> T:
        store: Any = getattr(args[0], "store", None)
        token = _pending.set([])
        rerun = False
        try:
            return method(*args, **kwargs)
        except on_loop.WouldBlock:
            rerun = True  # nothing was written: the worker's run sees and records the jti
            raise
        finally:
            rows = _pending.get() or []
            _pending.reset(token)
            if rows and store is not None and not rerun:
                # The step's write never happened: record what was seen anyway, exactly once.
                # Inline, a lock on the first record is WouldBlock like any other wait: nothing
                # was written, so the worker's run refuses the step again and records it.
                for row in rows:
                    store.remember_once(row.key, row.expires_at, datetime.now(UTC))

    return step


def defer_replay(key: str, expires_at: datetime) -> bool:
    """Inside a step: queue ``key`` for the step's transaction; False outside a step."""
    pending = _pending.get()
    if pending is None:
        return False
    pending.append(ReplayRow(key=key, expires_at=expires_at))
    return True


def take_pending_replay() -> list[ReplayRow]:
    """The jti rows the current step's write must insert (and no longer owes afterwards)."""
    pending = _pending.get()
    if not pending:
        return []
    rows = list(pending)
    pending.clear()
    return rows


def restore_pending_replay(rows: list[ReplayRow]) -> None:
    """The write failed: the step still owes these rows."""
    pending = _pending.get()
    if pending is not None:
        pending.extend(rows)

"""The store's one fault mapping: database outages become ``SERVICE_UNAVAILABLE`` (503).

A refused or dropped connection, a connect or statement timeout, an exhausted pool or a SQLite
busy timeout all mean the same thing to a caller: the store cannot answer now. They are raised
as :class:`StoreUnavailableError` so every route answers a documented 503 (never a 500, never
an "allow"), and start-up says what is wrong in one line (:class:`DatabaseUnreachableError`).
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from athkit.protocol.errors import ATHError, ErrorCode

#: Seconds a client is told to wait before retrying a request the store could not answer.
RETRY_AFTER = 5

#: SQLAlchemy errors that mean "the database cannot answer now", not "this request is wrong".
_OUTAGES: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,  # refused, dropped, connect/statement timeout, SQLite busy/locked
    sa_exc.InterfaceError,  # the driver lost its connection
    sa_exc.TimeoutError,  # the pool had no connection within pool_timeout
    sa_exc.DisconnectionError,
)


class StoreUnavailableError(ATHError):
    """The database (or the shared Redis) cannot answer: 503 ``SERVICE_UNAVAILABLE``."""

    def __init__(self, reason: str, what: str = "the database") -> None:
        super().__init__(
            ErrorCode.SERVICE_UNAVAILABLE,
            f"{what} is unavailable; try again shortly",
            {"reason": reason, "retry_after": RETRY_AFTER},
        )


class DatabaseUnreachableError(RuntimeError):
    """Start-up could not reach the database; ``str()`` is one line an operator can act on."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = safe_url(url)
        self.reason = reason
        super().__init__(
            f"cannot reach the database at {self.url} ({reason}): start it, or point "
            "ATHKIT_DATABASE_URL (or --database-url) at a running one"
        )


def is_outage(exc: BaseException) -> bool:
    """True for errors that mean the database is down, hung or overloaded."""
    if isinstance(exc, _OUTAGES):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


def outage_reason(exc: BaseException) -> str:
    """A short, secret-free reason: the driver's exception class and, for timeouts, which."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).lower()
    if isinstance(exc, sa_exc.TimeoutError):
        return "pool_timeout"
    if "statement timeout" in text or "canceling statement" in text:
        return "statement_timeout"
    if "lock timeout" in text or "database is locked" in text or "busy" in text:
        return "lock_timeout"
    if "timeout" in text or "timed out" in text:
        return "connect_timeout"
    if "refused" in text:
        return "connection_refused"
    return type(orig).__name__


def as_unavailable(exc: BaseException) -> StoreUnavailableError | None:
    """The 503 for an outage, or None when ``exc`` is something else."""
    if isinstance(exc, StoreUnavailableError):
        return exc
    if is_outage(exc):
        return StoreUnavailableError(outage_reason(exc))
    return None


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is still shown, just without userinfo
        return url.split("@", 1)[-1]

"""Operator accounts: argon2id passwords, optional TOTP, database-backed sessions.

Sign-in is rate limited per client address and per account name through the deployment's
shared :class:`~athkit.store.shared.RateLimiter` (Redis across nodes), and every outcome is an
audit row naming the operator. A wrong name costs the same argon2 work as a wrong password.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from athkit.core import audit_events as ev
from athkit.core.audit import audit_row
from athkit.core.clock import Clock, system_clock, to_datetime
from athkit.core.metrics import RATE_LIMITED
from athkit.core.secrets import hash_secret, new_secret
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.db import Database
from athkit.store.models import AuditRow
from athkit.store.operators import OperatorRow, OperatorSessionRow, OperatorStore
from athkit.store.shared import MemoryRateLimiter, RateLimiter

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
MIN_PASSWORD = 12
SESSION_TTL = 8 * 3600
#: Sign-in attempts allowed per client address and per account name in SIGNIN_WINDOW seconds.
SIGNIN_LIMIT = 5
SIGNIN_WINDOW = 60.0

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile (argon2-cffi defaults)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the name is unknown (same cost); made at first use: argon2 takes
    its 64 MiB only when someone signs in, not at every start."""
    return _hasher.hash(new_secret("", 16))


@dataclass(frozen=True)
class NewOperator:
    name: str
    #: The TOTP secret and its otpauth:// URI, shown once, when two-factor sign-in is on.
    totp_secret: str | None
    totp_uri: str | None


def signin_allowed(rate: RateLimiter, keys: list[str], now: float) -> bool:
    """The one place sign-in throttling is decided (swap in the shared limiter here)."""
    allowed = True
    for key in keys:
        if not rate.hit(f"operator-signin:{key}", SIGNIN_LIMIT, SIGNIN_WINDOW, now).allowed:
            RATE_LIMITED.labels("operator-signin", key.split(":", 1)[0]).inc()
            allowed = False
    return allowed


class OperatorAccounts:
    """Create operators, sign them in and out, and say who a session cookie belongs to."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock = system_clock,
        rate: RateLimiter | None = None,
        audit: Callable[[AuditRow], None] | None = None,
        issuer: str = "athkit",
    ) -> None:
        self.store = OperatorStore(db)
        self.clock = clock
        self.rate: RateLimiter = rate or MemoryRateLimiter()
        self.audit = audit
        self.issuer = issuer

    def _record(self, event: str, outcome: str, name: str, **details: object) -> None:
        if self.audit is not None:
            row = audit_row(self.clock(), event, outcome, details={"operator": name, **details})
            self.audit(row)

    def create(self, name: str, password: str, *, totp: bool = False) -> NewOperator:
        if not NAME_PATTERN.match(name):
            raise ValueError("operator names are letters, digits and . _ @ - (at most 128)")
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"the password must have at least {MIN_PASSWORD} characters")
        secret = pyotp.random_base32() if totp else None
        self.store.add(
            OperatorRow(
                name=name,
                password_hash=_hasher.hash(password),
                totp_secret=secret,
                disabled=False,
                created_at=to_datetime(self.clock()),
            )
        )
        self._record(ev.OPERATOR_CREATED, "ok", name, totp=totp)
        uri = (
            pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=self.issuer)
            if secret
            else None
        )
        return NewOperator(name, secret, uri)

    def _check(self, row: OperatorRow | None, password: str, code: str | None) -> bool:
        try:
            _hasher.verify(row.password_hash if row else _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            return False
        if row is None or row.disabled:
            return False
        if row.totp_secret:
            return bool(code) and pyotp.TOTP(row.totp_secret).verify(str(code), valid_window=1)
        return True

    def sign_in(self, name: str, password: str, code: str | None, client: str) -> str:
        """A new session token for a correct name + password (+ TOTP code); raises otherwise."""
        now = self.clock()
        if not signin_allowed(self.rate, [f"ip:{client}", f"name:{name.lower()}"], now):
            self._record(ev.OPERATOR_SIGNIN_FAILED, "rate_limited", name)
            raise ATHError(
                ErrorCode.RATE_LIMITED,
                "too many sign-in attempts; wait a minute",
                {"retry_after": int(SIGNIN_WINDOW)},
            )
        row = self.store.get(name) if NAME_PATTERN.match(name) else None
        if not self._check(row, password, code):
            self._record(ev.OPERATOR_SIGNIN_FAILED, "refused", name)
            raise ATHError(ErrorCode.ADMIN_UNAUTHORIZED, "wrong name, password or code")
        token = new_secret("ath_op_", 32)
        self.store.add_session(
            OperatorSessionRow(
                token_hash=hash_secret(token),
                operator=name,
                expires_at=to_datetime(now + SESSION_TTL),
            )
        )
        self._record(ev.OPERATOR_SIGNED_IN, "ok", name)
        return token

    def operator_for(self, token: str | None) -> str | None:
        """The signed-in operator's name for a session token, or None."""
        if not token or not token.startswith("ath_op_") or len(token) > 128:
            return None
        return self.store.session_operator(hash_secret(token), to_datetime(self.clock()))

    def sign_out(self, token: str | None) -> None:
        if token:
            self.store.end_session(hash_secret(token))

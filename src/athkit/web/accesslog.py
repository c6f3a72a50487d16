"""uvicorn's access log without secrets: query values never reach a log line.

``/ath/callback?code=...&state=...`` carries an authorization code (in gateway mode the upstream
provider's), the consent URL carries the session's state, and other clients put tokens in query
strings. :class:`RedactingAccessFilter` sits on the ``uvicorn.access`` logger, so every handler
(console, file, a collector) sees ``?code=[redacted]&state=[redacted]``: parameter names stay
for debugging, values go. :func:`uvicorn_log_config` is uvicorn's own logging config with the
filter added; every place athkit starts uvicorn passes it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any
from urllib.parse import parse_qsl, quote

REDACTED = "[redacted]"


def redact_target(target: str) -> str:
    """``/p?code=abc&x=1`` → ``/p?code=[redacted]&x=[redacted]`` (the path is kept)."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    names = [name for name, _ in parse_qsl(query, keep_blank_values=True)]
    if not names and query:
        return f"{path}?{REDACTED}"
    return path + "?" + "&".join(f"{quote(n, safe='')}={REDACTED}" for n in names)


class RedactingAccessFilter(logging.Filter):
    """Rewrites the request target of uvicorn access records (``args[2]``) before output."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_target(args[2]), *args[3:])
        return True


def install_access_redaction() -> None:
    """Put the filter on the ``uvicorn.access`` logger (idempotent)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactingAccessFilter) for f in logger.filters):
        logger.addFilter(RedactingAccessFilter())


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging config plus the redacting filter on its access logger."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["athkit_redact"] = {"()": RedactingAccessFilter}
    config["loggers"]["uvicorn.access"]["filters"] = ["athkit_redact"]
    return config

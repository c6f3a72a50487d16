"""The worker threads ATH's blocking calls run in, apart from the host app's own pool.

Starlette and FastAPI run sync routes and ``run_in_threadpool`` calls in one shared pool (40
threads). Store calls and token checks that wait on a slow or hung database, or on an outbound
fetch, must not take every thread of it: a host app's ``/login``, which needs no database,
would then wait too. ATH's calls run here instead, in a pool of ``ATHKIT_WORKER_THREADS``
(default 32) per event loop. Each wait is itself bounded (database timeouts, outbound
deadlines), so a full pool drains within seconds.
"""

from __future__ import annotations

import asyncio
import functools
import os
import weakref
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_THREADS = 32

_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def worker_threads() -> int:
    """The pool size: ``ATHKIT_WORKER_THREADS`` or 32."""
    try:
        return max(2, int(os.environ.get("ATHKIT_WORKER_THREADS", DEFAULT_THREADS)))
    except ValueError:
        return DEFAULT_THREADS


def _limiter() -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(worker_threads())
    return limiter


async def run_in_worker(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking ATH call in ATH's own pool (same signature as ``run_in_threadpool``)."""
    call = functools.partial(func, *args, **kwargs)
    return await anyio.to_thread.run_sync(call, limiter=_limiter())

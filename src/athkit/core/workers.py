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
import contextvars
import functools
import os
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_THREADS = 32

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ThreadPoolExecutor] = (
    weakref.WeakKeyDictionary()
)


def worker_threads() -> int:
    """The pool size: ``ATHKIT_WORKER_THREADS`` or 32."""
    try:
        return max(2, int(os.environ.get("ATHKIT_WORKER_THREADS", DEFAULT_THREADS)))
    except ValueError:
        return DEFAULT_THREADS


def _pool(loop: asyncio.AbstractEventLoop) -> ThreadPoolExecutor:
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = ThreadPoolExecutor(worker_threads(), thread_name_prefix="athkit")
        # Threads end with their loop (the pool is only reachable through it).
        weakref.finalize(loop, pool.shutdown, wait=False)
    return pool


async def run_in_worker(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking ATH call in ATH's own pool (same signature as ``run_in_threadpool``),
    with the caller's context variables (request id, trace). The loop's own executor hop:
    cheaper per call than a task-group worker, and queued calls wait for a free thread."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    return await loop.run_in_executor(_pool(loop), call)

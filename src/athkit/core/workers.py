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

from athkit.core.metrics import STEPS_RERUN
from athkit.store import on_loop

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


async def run_step(on_loop_ok: bool, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """A protocol step: inline on the loop when ``on_loop_ok`` (a SQLite store, see
    :mod:`athkit.store.on_loop`) and it can finish without waiting, else in ATH's pool.

    Inline, any wait (a lock, the pool, the network) ends the attempt before it wrote anything
    and the step runs again, from the start, in a worker thread."""
    if on_loop_ok:
        try:
            with on_loop.inline():
                return func(*args, **kwargs)
        except on_loop.WouldBlock:
            STEPS_RERUN.inc()
    return await run_in_worker(func, *args, **kwargs)

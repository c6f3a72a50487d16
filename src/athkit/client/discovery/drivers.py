"""The public entry points: :func:`discover` (blocking) and :func:`adiscover` (async).

Both pick the mode from their arguments and drive one :class:`DiscoveryCore` flow; they only
answer its steps (ask the application, or fetch one hop).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeAlias

from athkit.client.discovery.cache import DiscoveryCache
from athkit.client.discovery.core import ConfirmRequest, DiscoveryCore, ManualInput, Reply, _Target
from athkit.client.discovery.fetchers import _AsyncFetcher, _SyncFetcher
from athkit.client.discovery.guard import Allowlist, FetchLimits
from athkit.client.discovery.results import Discovery, DiscoveryMode
from athkit.protocol.errors import ATHError

ConfirmCallback: TypeAlias = Callable[[str], bool]
AsyncConfirmCallback: TypeAlias = Callable[[str], "bool | Awaitable[bool]"]


def _select(
    manual: ManualInput | None,
    service: str | None,
    gateway: str | None,
    intent: str | None,
    registry: str | None,
    url: str | None,
    limit: int = 10,
) -> _Target:
    given = {
        DiscoveryMode.MANUAL: manual,
        DiscoveryMode.SERVICE: service,
        DiscoveryMode.GATEWAY: gateway,
        DiscoveryMode.REGISTRY: intent,
        DiscoveryMode.DIRECT: url,
    }
    chosen = [(mode, value) for mode, value in given.items() if value is not None]
    if len(chosen) != 1:
        raise ValueError("discover() takes exactly one of manual, service, gateway, intent, url")
    mode, value = chosen[0]
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if mode is DiscoveryMode.REGISTRY:
        if not registry:
            raise ValueError("intent discovery needs registry= (the registry's base URL)")
        if not str(value).strip():
            raise ValueError("intent must not be empty")
    elif registry is not None:
        raise ValueError("registry= is only used with intent=")
    return _Target(mode, value, registry)


def discover(
    *,
    manual: ManualInput | None = None,
    service: str | None = None,
    gateway: str | None = None,
    intent: str | None = None,
    registry: str | None = None,
    url: str | None = None,
    allow: Allowlist | Iterable[str] = (),
    confirm: ConfirmCallback | None = None,
    dev_mode: bool = False,
    cache: DiscoveryCache | None = None,
    limits: FetchLimits | None = None,
    limit: int = 10,
    resolve: bool = False,
) -> Discovery:
    """Discover ATH providers in one of the five §2 modes (blocking). See the module doc.

    ``allow`` and ``confirm`` govern direct URLs (and unverified registry results fetched with
    ``resolve``); ``dev_mode`` allows ``http`` and loopback; ``limit`` caps registry results.
    """
    target = _select(manual, service, gateway, intent, registry, url, limit)
    core = DiscoveryCore(
        dev_mode=dev_mode, allow=allow, can_confirm=confirm is not None, cache=cache, limits=limits
    )
    flow = core.flow(target, limit=limit, resolve=resolve)
    fetcher = _SyncFetcher(dev_mode, core.limits)
    try:
        step = next(flow)
        while True:
            reply: Reply
            if isinstance(step, ConfirmRequest):
                reply = bool(confirm(step.url)) if confirm is not None else False
            else:
                try:
                    reply = fetcher.send(step)
                except ATHError as exc:  # the flow decides: e.g. a registry hit keeps its error
                    step = flow.throw(exc)
                    continue
            step = flow.send(reply)
    except StopIteration as stop:
        result: Discovery = stop.value
        return result
    finally:
        flow.close()
        fetcher.http.close()


async def adiscover(
    *,
    manual: ManualInput | None = None,
    service: str | None = None,
    gateway: str | None = None,
    intent: str | None = None,
    registry: str | None = None,
    url: str | None = None,
    allow: Allowlist | Iterable[str] = (),
    confirm: AsyncConfirmCallback | None = None,
    dev_mode: bool = False,
    cache: DiscoveryCache | None = None,
    limits: FetchLimits | None = None,
    limit: int = 10,
    resolve: bool = False,
) -> Discovery:
    """:func:`discover` for async code; ``confirm`` may be a coroutine function."""
    target = _select(manual, service, gateway, intent, registry, url, limit)
    core = DiscoveryCore(
        dev_mode=dev_mode, allow=allow, can_confirm=confirm is not None, cache=cache, limits=limits
    )
    flow = core.flow(target, limit=limit, resolve=resolve)
    fetcher = _AsyncFetcher(dev_mode, core.limits)
    try:
        step = next(flow)
        while True:
            reply: Reply
            if isinstance(step, ConfirmRequest):
                answer: Any = confirm(step.url) if confirm is not None else False
                if inspect.isawaitable(answer):
                    answer = await answer
                reply = bool(answer)
            else:
                try:
                    reply = await fetcher.send(step)
                except ATHError as exc:
                    step = flow.throw(exc)
                    continue
            step = flow.send(reply)
    except StopIteration as stop:
        result: Discovery = stop.value
        return result
    finally:
        flow.close()
        await fetcher.http.aclose()

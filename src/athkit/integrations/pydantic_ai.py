"""Pydantic AI tools for the ATH agent tools: ``pip install 'athkit[pydantic-ai]'``.

    agent = Agent(model, deps_type=Deps, tools=ath_pydantic_tools(ATHTools(ATHAgent.load())))
    agent.run_sync("...", deps=Deps(user_id="alice"))

The end user is ``ctx.deps.user_id`` (attribute or key). When the user must authorize first
the tool returns ``status: authorization_required`` with the ``authorization_url``; with
``defer_authorization=True`` it raises Pydantic AI's ``CallDeferred`` instead (the run ends
with ``DeferredToolRequests`` whose metadata carries the URL), the framework's own interrupt.
:func:`wait_for_authorization` blocks until the user consented.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic_ai import RunContext, Tool
from pydantic_ai.exceptions import CallDeferred

from athkit.integrations.tools import TOOLS, ATHTools, ToolSpec, run_for, wait_for_authorization

__all__ = ["ath_pydantic_tools", "wait_for_authorization"]


def _tool(tools: ATHTools, spec: ToolSpec, user_key: str, defer: bool) -> Tool[Any]:
    async def call(ctx: RunContext[Any], **arguments: Any) -> dict[str, Any]:
        result = await asyncio.to_thread(run_for, tools, spec.name, arguments, ctx.deps, user_key)
        if defer and result.get("status") == "authorization_required":
            raise CallDeferred(metadata=result)
        return result

    return Tool.from_schema(
        call, name=spec.name, description=spec.description,
        json_schema=spec.json_schema(), takes_ctx=True,
    )


def ath_pydantic_tools(
    tools: ATHTools, *, user_key: str = "user_id", defer_authorization: bool = False
) -> list[Tool[Any]]:
    """One ``Tool`` per ATH tool; the user comes from the run's ``deps``."""
    return [_tool(tools, spec, user_key, defer_authorization) for spec in TOOLS]

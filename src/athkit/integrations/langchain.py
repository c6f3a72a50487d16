"""LangChain tools (langchain-core) for the ATH agent tools: ``pip install 'athkit[langchain]'``.

    tools = ath_langchain_tools(ATHTools(ATHAgent.load()))
    tool.invoke(args, config={"configurable": {"user_id": "alice"}})

The end user is ``config["configurable"]["user_id"]`` of the run. When the user must authorize
first, the tool's result has ``status: authorization_required`` and the ``authorization_url`` the
model shows to the user; :func:`wait_for_authorization` blocks until they did.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool

from athkit.integrations.tools import TOOLS, ATHTools, ToolSpec, run_for, wait_for_authorization

__all__ = ["ath_langchain_tools", "wait_for_authorization"]


def _tool(tools: ATHTools, spec: ToolSpec, user_key: str) -> StructuredTool:
    def run(config: RunnableConfig, **arguments: Any) -> dict[str, Any]:
        return run_for(tools, spec.name, arguments, config.get("configurable") or {}, user_key)

    async def arun(config: RunnableConfig, **arguments: Any) -> dict[str, Any]:
        return await asyncio.to_thread(run, config, **arguments)

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name=spec.name,
        description=spec.description,
        args_schema=spec.args,
        infer_schema=False,
    )


def ath_langchain_tools(tools: ATHTools, *, user_key: str = "user_id") -> list[StructuredTool]:
    """One ``StructuredTool`` per ATH tool; the user comes from ``configurable[user_key]``."""
    return [_tool(tools, spec, user_key) for spec in TOOLS]

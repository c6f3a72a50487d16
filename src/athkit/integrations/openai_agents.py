"""OpenAI Agents SDK function tools for the ATH tools: ``pip install 'athkit[openai-agents]'``.

    agent = Agent(name="shopper", tools=ath_function_tools(ATHTools(ATHAgent.load())))
    await Runner.run(agent, "...", context=MyContext(user_id="alice"))

The end user is the run context's ``user_id`` (attribute or key). When the user must
authorize first, the tool output has ``status: authorization_required`` and the
``authorization_url`` for the model to show; :func:`wait_for_authorization` blocks until done.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from agents import FunctionTool
from agents.tool_context import ToolContext

from athkit.integrations.tools import TOOLS, ATHTools, ToolSpec, run_for, wait_for_authorization

__all__ = ["ath_function_tools", "wait_for_authorization"]


def _tool(tools: ATHTools, spec: ToolSpec, user_key: str) -> FunctionTool:
    async def invoke(ctx: ToolContext[Any], raw: str) -> str:
        try:
            arguments = json.loads(raw) if raw else {}
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            return json.dumps({"status": "error", "code": "VALIDATION_ERROR",
                               "message": "tool arguments must be a JSON object"})
        result = await asyncio.to_thread(run_for, tools, spec.name, arguments, ctx.context,
                                         user_key)
        return json.dumps(result)

    return FunctionTool(
        name=spec.name,
        description=spec.description,
        params_json_schema=spec.json_schema(),
        on_invoke_tool=invoke,
        strict_json_schema=False,
    )


def ath_function_tools(tools: ATHTools, *, user_key: str = "user_id") -> list[FunctionTool]:
    """One ``FunctionTool`` per ATH tool; the user comes from the run context."""
    return [_tool(tools, spec, user_key) for spec in TOOLS]

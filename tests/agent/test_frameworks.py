"""The ATH tools through each framework's own tool-invocation API, against a real ATH Shop
(no LLM: LangChain's ``tool.invoke``, the OpenAI Agents SDK's ``on_invoke_tool`` with its
``ToolContext``, and a Pydantic AI ``Agent`` run driven by its ``FunctionModel``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from athkit.integrations.tools import TOOLS, ATHTools, wait_for_authorization
from tests.agent.conftest import Published, approve
from tests.conftest import Shop

SCOPES = ["products:read", "cart:read"]


@pytest.fixture
def ath_tools(published: Published, shop: Shop) -> ATHTools:
    return ATHTools(published.agent, allow=[shop.url])


def _connect_args(shop: Shop) -> dict[str, Any]:
    return {"service_url": shop.url, "provider_id": "ath-shop", "scopes": SCOPES}


def test_langchain(ath_tools: ATHTools, shop: Shop) -> None:
    from athkit.integrations.langchain import ath_langchain_tools

    tools = {t.name: t for t in ath_langchain_tools(ath_tools)}
    assert set(tools) == {s.name for s in TOOLS}
    assert tools["call_api"].args["method"]["enum"] == ["GET", "POST", "PUT", "PATCH", "DELETE"]
    cfg = {"configurable": {"user_id": "alice"}}
    start = tools["connect_provider"].invoke(_connect_args(shop), config=cfg)
    assert start["status"] == "authorization_required"
    assert approve(start["authorization_url"]) == 200
    grant = wait_for_authorization(ath_tools.agent, user="alice", timeout=10)
    assert grant.scopes == SCOPES
    ok = tools["call_api"].invoke(
        {"provider_id": "ath-shop", "method": "GET", "path": "/products"}, config=cfg
    )
    assert ok["status"] == "ok" and ok["body"]["products"]
    # the async path, and another user who has connected nothing
    other = anyio.run(lambda: tools["list_grants"].ainvoke({}, config={"configurable": {
        "user_id": "bob"}}))
    assert other == {"status": "ok", "grants": []}
    missing = tools["list_grants"].invoke({})
    assert missing["status"] == "error" and "user_id" in missing["message"]


@dataclass
class RunCtx:
    user_id: str


def test_openai_agents(ath_tools: ATHTools, shop: Shop) -> None:
    from agents import FunctionTool
    from agents.tool_context import ToolContext

    from athkit.integrations.openai_agents import ath_function_tools

    tools = {t.name: t for t in ath_function_tools(ath_tools)}
    assert all(isinstance(t, FunctionTool) for t in tools.values())
    assert tools["connect_provider"].params_json_schema["properties"]["service_url"]

    async def invoke(name: str, args: dict[str, Any], user: str) -> dict[str, Any]:
        raw = json.dumps(args)
        ctx = ToolContext(context=RunCtx(user), tool_name=name, tool_call_id="call-1",
                          tool_arguments=raw)
        return dict(json.loads(await tools[name].on_invoke_tool(ctx, raw)))

    async def run() -> None:
        start = await invoke("connect_provider", _connect_args(shop), "carol")
        assert start["status"] == "authorization_required"
        assert await anyio.to_thread.run_sync(approve, start["authorization_url"]) == 200
        done = await invoke("connect_provider", _connect_args(shop), "carol")
        assert done["status"] == "ok" and done["provider_id"] == "ath-shop"
        refused = await invoke("call_api", {"provider_id": "ath-shop", "method": "POST",
                                            "path": "/orders", "body": {"items": []}}, "carol")
        assert refused["status"] == "refused" and refused["code"] == "SCOPE_INSUFFICIENT"
        bad = await invoke("call_api", {"provider_id": "ath-shop", "method": "TRACE",
                                        "path": "/"}, "carol")
        assert bad["status"] == "error" and bad["code"] == "VALIDATION_ERROR"

    anyio.run(run)
    assert [g.provider_id for g in ath_tools.agent.grants("carol")] == ["ath-shop"]


@dataclass
class Deps:
    user_id: str


def test_pydantic_ai(ath_tools: ATHTools, shop: Shop) -> None:
    from pydantic_ai import Agent, DeferredToolRequests
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    from athkit.integrations.pydantic_ai import ath_pydantic_tools

    plan: list[tuple[str, dict[str, Any]]] = []
    returned: list[Any] = []

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        for part in getattr(last, "parts", []):
            if part.part_kind == "tool-return":
                returned.append(part.content)
                return ModelResponse(parts=[TextPart("done")])
        name, args = plan.pop(0)
        return ModelResponse(parts=[ToolCallPart(tool_name=name, args=args)])

    agent = Agent(FunctionModel(model), deps_type=Deps, tools=ath_pydantic_tools(ath_tools))
    plan.append(("connect_provider", _connect_args(shop)))
    agent.run_sync("connect me to the shop", deps=Deps("dave"))
    assert returned[-1]["status"] == "authorization_required"
    assert approve(returned[-1]["authorization_url"]) == 200
    wait_for_authorization(ath_tools.agent, user="dave", provider_id="ath-shop", timeout=10)
    plan.append(("call_api", {"provider_id": "ath-shop", "method": "GET", "path": "/products"}))
    agent.run_sync("what is for sale?", deps=Deps("dave"))
    assert returned[-1]["status"] == "ok" and returned[-1]["body"]["products"]

    # the framework's interrupt: a deferred tool call carrying the consent URL
    deferring = Agent(FunctionModel(model), deps_type=Deps, output_type=[str, DeferredToolRequests],
                      tools=ath_pydantic_tools(ath_tools, defer_authorization=True))
    plan.append(("connect_provider", _connect_args(shop)))
    result = deferring.run_sync("connect", deps=Deps("erin"))
    assert isinstance(result.output, DeferredToolRequests)
    [call] = result.output.calls
    meta = result.output.metadata[call.tool_call_id]
    assert meta["status"] == "authorization_required" and meta["authorization_url"]

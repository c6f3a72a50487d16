"""The argument schemas of the ATH agent tools (pydantic; their JSON Schemas are what a model
sees). Bounded lengths everywhere: a model's arguments are untrusted input."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Longest a tool call itself waits for the user's consent (then it returns the URL again).
MAX_TOOL_WAIT = 120


class ToolArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchProvidersArgs(ToolArgs):
    intent: str = Field(
        min_length=1,
        max_length=500,
        description="What the user needs done, in plain words, e.g. 'buy running shoes'.",
    )
    limit: int = Field(5, ge=1, le=20, description="How many services to return.")


class DiscoverProviderArgs(ToolArgs):
    url: str = Field(
        min_length=1, max_length=2048, description="Base URL of an ATH service or gateway."
    )


class ConnectProviderArgs(ToolArgs):
    service_url: str = Field(
        min_length=1, max_length=2048, description="Base URL of the ATH service or gateway."
    )
    provider_id: str | None = Field(
        None, max_length=256, description="Provider id (needed when the service has several)."
    )
    scopes: list[str] | None = Field(
        None, max_length=64, description="Scopes to ask the user for; default: all offered."
    )
    wait_seconds: int = Field(
        0, ge=0, le=MAX_TOOL_WAIT, description="Seconds to wait here for the user's consent."
    )


class ListGrantsArgs(ToolArgs):
    pass


class CallApiArgs(ToolArgs):
    provider_id: str = Field(min_length=1, max_length=256, description="Provider of a grant.")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field(description="HTTP method.")
    path: str = Field(
        min_length=1,
        max_length=2048,
        description="Path under the provider's API base, e.g. '/products' (no host).",
    )
    body: dict[str, Any] | list[Any] | None = Field(None, description="JSON request body.")
    service_url: str | None = Field(
        None, max_length=2048, description="Only if several services hold this provider."
    )


class RevokeArgs(ToolArgs):
    provider_id: str = Field(min_length=1, max_length=256, description="Provider to disconnect.")
    service_url: str | None = Field(None, max_length=2048)

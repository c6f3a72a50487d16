"""The shopping agent's identity: a key pair and the document served at its ``agent_id`` (§3)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from athkit.crypto.keys import AgentKey

AGENT_NAME = "ATH Shop Demo Agent"
DEVELOPER = {"name": "athkit demo team", "id": "dev-athkit-demo"}


def identity_document(agent_id: str, key: AgentKey, name: str = AGENT_NAME) -> dict[str, Any]:
    return {
        "ath_version": "0.1",
        "agent_id": agent_id,
        "name": name,
        "developer": dict(DEVELOPER),
        "capabilities": ["shopping"],
        "public_key": key.public_jwk(),
    }


def create_agent_identity_app(key: AgentKey, *, name: str = AGENT_NAME) -> FastAPI:
    """Serves ``/.well-known/agent.json``; the agent_id is derived from the request's origin
    only for display: the document is built once the server's URL is known (``set_origin``)."""
    app = FastAPI(title="agent identity", openapi_url=None)
    app.state.document = None

    @app.get("/.well-known/agent.json")
    def agent_json() -> JSONResponse:
        return JSONResponse(app.state.document, headers={"Cache-Control": "max-age=300"})

    return app


def publish(app: FastAPI, origin: str, key: AgentKey, name: str = AGENT_NAME) -> str:
    """Set the document for ``origin`` and return the agent_id."""
    agent_id = f"{origin}/.well-known/agent.json"
    app.state.document = identity_document(agent_id, key, name)
    return agent_id

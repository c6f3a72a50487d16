"""Agent identities: a key pair and the document served at its ``agent_id`` URL (§3).

:func:`create_agent_identity_app` is a tiny web server that publishes identity documents: the
demo agent's at ``/.well-known/agent.json`` and, for tests or several agents on one host, more
at ``/agents/{name}/agent.json``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from athkit.crypto.keys import AgentKey

AGENT_NAME = "ATH Shop Demo Agent"
DEVELOPER = {"name": "athkit demo team", "id": "dev-athkit-demo"}
WELL_KNOWN = "/.well-known/agent.json"


def identity_document(agent_id: str, key: AgentKey, name: str = AGENT_NAME) -> dict[str, Any]:
    return {
        "ath_version": "0.1",
        "agent_id": agent_id,
        "name": name,
        "developer": dict(DEVELOPER),
        "capabilities": ["shopping"],
        "public_key": key.public_jwk(),
    }


def create_agent_identity_app() -> FastAPI:
    """An identity host; documents are added with :func:`publish`."""
    app = FastAPI(title="agent identity host", openapi_url=None, docs_url=None)
    documents: dict[str, dict[str, Any]] = {}
    app.state.documents = documents

    def serve(path: str) -> JSONResponse:
        doc = documents.get(path)
        if doc is None:
            return JSONResponse({"error": "no such agent"}, status_code=404)
        return JSONResponse(doc, headers={"Cache-Control": "max-age=300"})

    @app.get(WELL_KNOWN)
    def well_known() -> JSONResponse:
        return serve(WELL_KNOWN)

    @app.get("/agents/{name}/agent.json")
    def named(name: str) -> JSONResponse:
        return serve(f"/agents/{name}/agent.json")

    return app


def publish(
    app: FastAPI, origin: str, key: AgentKey, *, name: str = AGENT_NAME, path: str = WELL_KNOWN
) -> str:
    """Publish (or replace) the document at ``origin + path``; return its agent_id."""
    agent_id = f"{origin}{path}"
    app.state.documents[path] = identity_document(agent_id, key, name)
    return agent_id

"""The OpenAPI document tells the truth about bodies and errors (schema-driven clients, fuzzers).

- :func:`json_body` declares the request body of a route that reads its JSON itself (so that
  it answers our strict 4xx errors rather than FastAPI's) from the pydantic model it parses,
  inlined so the schema is self-contained.
- :func:`describe_errors` rewrites the generated document once: every error an operation can
  answer is the §9 body ``{code, message, details}`` (``default`` response), including the 422
  that FastAPI would otherwise describe with its own ``{"detail": [...]}`` shape, which athkit
  never sends (``web.errors`` renders validation failures as ATH errors).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from athkit.protocol.messages import ErrorBody

_FASTAPI_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")
#: Standard OAuth surfaces answer RFC 6749 §5.2 errors ``{error, error_description}``; the
#: shared guards in front of them (bad input, store down) may still answer an ATH error.
OAUTH_PREFIXES = ("/oauth/", "/.well-known/oauth-")
OAUTH_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "error_description": {"type": "string"},
        "error_uri": {"type": "string"},
    },
}


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema with its ``$defs`` inlined (the models are not recursive)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(copy.deepcopy(defs[ref.rsplit("/", 1)[1]]))
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)  # type: ignore[no-any-return]


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads ``model`` from its JSON body itself."""
    schema = inline_schema(model)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _error_response(path: str) -> dict[str, Any]:
    if path.startswith(OAUTH_PREFIXES):
        schema = {"anyOf": [OAUTH_ERROR_SCHEMA, inline_schema(ErrorBody)]}
        description = "An OAuth error (RFC 6749 §5.2) or an ATH error (PROTOCOL.md §9)"
    else:
        schema, description = inline_schema(ErrorBody), "An ATH error (PROTOCOL.md §9)"
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def describe_errors(app: FastAPI) -> None:
    """Make ``app.openapi()`` describe athkit's error bodies on every operation."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = generate()
        for path, item in doc.get("paths", {}).items():
            for op in item.values():
                if not isinstance(op, dict) or "responses" not in op:
                    continue
                responses = op["responses"]
                responses.pop("422", None)
                responses["default"] = _error_response(path)
        schemas = doc.get("components", {}).get("schemas", {})
        for name in _FASTAPI_ERROR_SCHEMAS:
            schemas.pop(name, None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]

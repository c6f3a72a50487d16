"""The README's "Protect an MCP server" code is examples/mcp_notes.py verbatim, ≤ 15 lines;
test_mcp_sdk_client.py runs it end to end with the official MCP SDK client."""

from __future__ import annotations

import re

import httpx

from tests.oauth.conftest import NotesService
from tests.oauth.support import ROOT


def test_readme_shows_the_mcp_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "examples" / "mcp_notes.py").read_text()
    assert example in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    code = [line for line in example.splitlines() if line.strip()]
    assert len(code) <= 15
    assert "## Connect any OAuth or MCP client" in readme


def test_metadata_documents_of_the_example(notes: NotesService) -> None:
    """What ``curl`` shows on the example: both metadata documents with the issue's fields."""
    base = notes.base
    asm = httpx.get(f"{base}/.well-known/oauth-authorization-server").json()
    assert asm["issuer"] == base
    assert asm["authorization_endpoint"] == f"{base}/oauth/authorize"
    assert asm["token_endpoint"] == f"{base}/oauth/token"
    assert asm["registration_endpoint"] == f"{base}/oauth/register"
    assert asm["revocation_endpoint"] == f"{base}/oauth/revoke"
    assert asm["introspection_endpoint"] == f"{base}/oauth/introspect"
    assert asm["code_challenge_methods_supported"] == ["S256"]
    assert asm["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert set(asm["token_endpoint_auth_methods_supported"]) == {
        "none", "client_secret_basic", "client_secret_post", "private_key_jwt"
    }
    assert asm["client_id_metadata_document_supported"] is True
    assert asm["authorization_response_iss_parameter_supported"] is True
    assert asm["scopes_supported"] == ["notes:read", "notes:write"]
    for path, resource in [("/mcp", f"{base}/mcp"), ("/api", f"{base}/api"), ("", base)]:
        prm = httpx.get(f"{base}/.well-known/oauth-protected-resource{path}")
        assert prm.status_code == 200
        doc = prm.json()
        assert doc["resource"] == resource and doc["authorization_servers"] == [base]
        assert doc["scopes_supported"] == ["notes:read", "notes:write"]
        assert doc["bearer_methods_supported"] == ["header"]
    assert httpx.get(f"{base}/.well-known/oauth-protected-resource/nope").status_code == 404

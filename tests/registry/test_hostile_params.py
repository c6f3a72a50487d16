"""Hostile query and path parameters against the registry, on SQLite and real PostgreSQL:
a 4xx ATH error every time, never a 500 (numbers beyond 64 bits, NUL bytes)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from athkit.protocol.fields import INT_LIMIT
from tests.registry.conftest import Registry


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(
    request: pytest.FixtureRequest, start_registry: Callable[..., Registry]
) -> Registry:
    if request.param == "sqlite":
        return start_registry()
    return start_registry(database_url=request.getfixturevalue("registry_pg_url"))


def _error(resp, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert resp.status_code == status, resp.text
    assert resp.json()["code"] == code, resp.text
    assert resp.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "query",
    [
        "offset=9223372036854775808",
        "offset=9223372036854775807",
        "offset=-1",
        f"offset={INT_LIMIT + 1}",
        "limit=9223372036854775808",
        "limit=0",
        "offset=1e400",
    ],
)
def test_numeric_query_parameters_are_bounded(registry: Registry, query: str) -> None:
    _error(registry.http.get(f"/api/listings?{query}"), 422, "VALIDATION_ERROR")


def test_largest_accepted_offset_answers_an_empty_page(registry: Registry) -> None:
    resp = registry.http.get(f"/api/listings?offset={INT_LIMIT}&limit=500")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"listings": [], "count": 0}


def test_search_limit_is_bounded(registry: Registry) -> None:
    _error(
        registry.http.get("/api/search", params={"intent": "mail", "limit": 2**64}),
        422,
        "VALIDATION_ERROR",
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/listings/%00"),
        ("GET", "/api/listings/abc%00def"),
        ("POST", "/api/listings/%00/verify"),
        ("GET", "/api/search?intent=mail%00"),
        ("GET", "/api/listings?status=listed%00"),
    ],
)
def test_nul_in_path_or_query_is_invalid_request(
    registry: Registry, method: str, path: str
) -> None:
    _error(registry.http.request(method, path), 400, "INVALID_REQUEST")
    assert registry.http.get("/api/status").status_code == 200


def test_nul_in_a_submitted_field_is_a_validation_error(registry: Registry) -> None:
    for body in (
        {"url": "https://shop.example/\u0000"},
        {"url": "https://shop.example", "description": "a\u0000b"},
        {"url": "https://shop.example", "categories": ["mail\u0000"]},
    ):
        _error(registry.http.post("/api/listings", json=body), 422, "VALIDATION_ERROR")
    assert registry.http.get("/api/status").status_code == 200

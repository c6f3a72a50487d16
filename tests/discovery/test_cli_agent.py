"""``athkit agent discover`` against real servers (the sub-app mounted as the lead will)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from athkit.cli.agent import agent_app
from tests.conftest import Shop
from tests.discovery.conftest import Catalog, Registry, Srv

root = typer.Typer()
root.add_typer(agent_app, name="agent")


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("ATHKIT_REGISTRY_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(root, ["agent", "discover", *args], input=input, env=env)

    return invoke


def test_service_table(run, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    result = run("--service", shop.url, "--dev")
    assert result.exit_code == 0, result.output
    assert "ath-shop" in result.output
    assert "products:read" in result.output and f"{shop.url}/api" in result.output


def test_gateway_json(run, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    result = run("--gateway", catalog.url, "--dev", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["mode"] == "gateway"
    assert [p["provider_id"] for p in data["providers"]] == ["github", "calendar"]


def test_intent_with_registry_from_env(run, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    result = run("--intent", "sneakers", "--dev", env={"ATHKIT_REGISTRY_URL": registry.url})
    assert result.exit_code == 0, result.output
    assert "ATH Shop" in result.output and "verified" in result.output
    assert registry.queries[-1]["intent"] == "sneakers"


def test_intent_with_registry_option(run, registry: Registry) -> None:  # type: ignore[no-untyped-def]
    result = run("--intent", "footwear", "--registry", registry.url, "--dev", "--json")
    assert json.loads(result.output)["providers"][0]["name"] == "ATH Shop"


def test_intent_without_registry(run) -> None:  # type: ignore[no-untyped-def]
    result = run("--intent", "sneakers")
    assert result.exit_code == 2 and "ATHKIT_REGISTRY_URL" in result.output


def test_url_asks_and_no_refuses(run, srv: Srv) -> None:  # type: ignore[no-untyped-def]
    srv.service()
    result = run("--url", srv.url, "--dev", input="n\n")
    assert result.exit_code == 1
    assert srv.origin in result.output and "DISCOVERY_NOT_CONFIRMED" in result.output
    assert srv.hits() == []


def test_url_asks_and_yes_fetches(run, srv: Srv) -> None:  # type: ignore[no-untyped-def]
    srv.service()
    result = run("--url", srv.url, "--dev", input="y\n")
    assert result.exit_code == 0, result.output
    assert "com.example.mail" in result.output


def test_url_allowlisted_does_not_ask(run, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    result = run("--url", shop.url, "--dev", "--allow", shop.url)
    assert result.exit_code == 0, result.output
    assert "[y/N]" not in result.output and "ath-shop" in result.output


def test_url_http_outside_dev_mode(run, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    result = run("--url", shop.url, "--allow", shop.url)
    assert result.exit_code == 1 and "DISCOVERY_URL_BLOCKED" in result.output


def test_url_private_address(run) -> None:  # type: ignore[no-untyped-def]
    result = run("--url", "https://169.254.169.254/", "--allow", "https://169.254.169.254")
    assert result.exit_code == 1 and "non-public" in result.output


def test_manual(run, manual_file: Path) -> None:  # type: ignore[no-untyped-def]
    result = run("--manual", str(manual_file))
    assert result.exit_code == 0, result.output
    assert "https://mail.example/api" in result.output


def test_exactly_one_mode(run, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    assert run().exit_code == 2
    assert run("--service", shop.url, "--gateway", shop.url).exit_code == 2


def test_bad_allow_pattern(run, shop: Shop) -> None:  # type: ignore[no-untyped-def]
    result = run("--url", shop.url, "--dev", "--allow", "*")
    assert result.exit_code == 2 and "allowlist" in result.output


def test_draft_warning_printed(run, srv: Srv) -> None:  # type: ignore[no-untyped-def]
    srv.service(ath_version="0.3-draft")
    result = run("--service", srv.url, "--dev")
    assert result.exit_code == 0 and "draft" in result.output

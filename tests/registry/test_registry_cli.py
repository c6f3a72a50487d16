"""``athkit registry add|verify|search|revalidate`` against a real registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from typer.testing import CliRunner

from athkit.cli.registry import registry_app
from athkit.registry.documents import SERVICE_PATH
from tests.registry.conftest import ADMIN, FakeService, Registry, service_doc
from tests.registry.test_registry import MAIL_DESCRIPTION

runner = CliRunner()


def test_add_verify_search(
    start_registry: Callable[..., Registry], start_service: Callable[[str, Any], FakeService]
) -> None:
    reg = start_registry()
    mail = start_service(SERVICE_PATH, None)
    mail.doc = service_doc(mail.url, "postbox", "Postbox Mail")
    env = {"ATHKIT_REGISTRY_URL": reg.url, "COLUMNS": "200"}

    res = runner.invoke(registry_app, ["add", mail.url, "--description", MAIL_DESCRIPTION], env=env)
    assert res.exit_code == 0, res.output
    assert "pending" in res.output
    token = reg.service.token_for(mail.url)
    assert token in res.output
    listing_id = res.output.split("listing ")[1].split()[0]

    res = runner.invoke(registry_app, ["verify", listing_id], env=env)
    assert res.exit_code == 1
    assert "OWNERSHIP_NOT_PROVEN" in res.output

    mail.publish(token)
    res = runner.invoke(registry_app, ["verify", listing_id], env=env)
    assert res.exit_code == 0, res.output
    assert "listed" in res.output

    res = runner.invoke(registry_app, ["search", "send email", "--keyword"], env=env)
    assert res.exit_code == 0, res.output
    assert "Postbox Mail" in res.output and "1 providers" in res.output
    res = runner.invoke(registry_app, ["search", "send email", "--mode", "keyword"], env=env)
    assert res.exit_code == 0, res.output
    assert "(keyword)" in res.output
    # this registry runs without the model: semantic mode is refused with the reason
    res = runner.invoke(registry_app, ["search", "send email", "--mode", "semantic"], env=env)
    assert res.exit_code != 0
    assert "semantic ranking is not available" in res.output

    res = runner.invoke(registry_app, ["revalidate", "--admin-token", ADMIN, "--registry", reg.url])
    assert res.exit_code == 0, res.output
    assert "checked 1, kept 1, dropped 0" in res.output


def test_refusals_exit_nonzero(
    start_registry: Callable[..., Registry],
) -> None:
    reg = start_registry()
    res = runner.invoke(registry_app, ["add", "http://10.1.2.3/", "--registry", reg.url])
    assert res.exit_code == 1
    assert "URL_NOT_ALLOWED" in res.output
    res = runner.invoke(registry_app, ["search", "x", "--registry", "http://127.0.0.1:9"])
    assert res.exit_code == 2
    assert "cannot reach" in res.output

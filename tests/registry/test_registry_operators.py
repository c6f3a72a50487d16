"""Registry operators: an account made with ``athkit admin create-operator --registry`` signs
in and uses the admin API with its session (and the console CSRF token), no bearer token."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from typer.testing import CliRunner

from athkit.cli.main import app as cli

PASSWORD = "registry operator password"


def test_operator_session_opens_the_registry_admin_api(start_registry: Callable[..., Any]) -> None:
    reg = start_registry()
    made = CliRunner().invoke(
        cli,
        [
            "admin",
            "create-operator",
            "reg-ops",
            "--registry",
            "--database-url",
            reg.service.db.url,
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
    )
    assert made.exit_code == 0, made.output
    with httpx.Client(base_url=reg.url) as http:
        assert http.post("/api/admin/revalidate").status_code == 401
        page = http.get("/ath/operator/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert page.status_code == 200 and csrf
        signed = http.post(
            "/ath/operator/signin",
            data={"csrf": csrf.group(1), "name": "reg-ops", "password": PASSWORD, "next": "/ath/x"},
        )
        assert signed.status_code == 303
        no_csrf = http.post("/api/admin/revalidate")
        assert no_csrf.status_code == 401  # a session alone is not enough for a change
        ok = http.post("/api/admin/revalidate", headers={"X-CSRF-Token": csrf.group(1)})
        assert ok.status_code == 200, ok.text
        assert ok.json()["checked"] == 0

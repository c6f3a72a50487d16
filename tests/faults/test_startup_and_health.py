"""Items 4 and 5: start-up with the database down says what is wrong in one line (no
traceback, no password); /healthz and /readyz on the native mount, the gateway and the registry."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from athkit.crypto.sealing import new_key_spec
from athkit.demo.mail_gateway import to_toml
from athkit.native import ATH
from athkit.registry.app import create_registry_app
from athkit.registry.service import RegistrySettings
from athkit.store.errors import DatabaseUnreachableError
from athkit.web.serving import BackgroundServer, free_port
from tests.conftest import Shop, start_shop
from tests.faults.conftest import via_proxy
from tests.faults.tcpfault import FaultyTCPProxy


def closed_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed


def down_url() -> str:
    return f"postgresql+psycopg://athkit:s3cret-pw@127.0.0.1:{closed_port()}/athkit"


def athkit(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **env}
    full_env.pop("ATHKIT_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "athkit.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
    )


def assert_one_clear_line(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err and "Traceback" not in proc.stdout
    assert len(err.splitlines()) == 1, err
    assert "cannot reach the database at" in err and "connection_refused" in err, err
    assert "s3cret-pw" not in err and "***" in err, err
    assert "ATHKIT_DATABASE_URL" in err


def test_serve_shop_with_the_database_down(tmp_path: Path) -> None:
    proc = athkit(
        "serve-shop", "--port", str(closed_port()), "--database-url", down_url(),
        "--data-dir", str(tmp_path),
    )
    assert_one_clear_line(proc)


def test_registry_serve_with_the_database_down(tmp_path: Path) -> None:
    proc = athkit(
        "registry", "serve", "--port", str(closed_port()), "--database-url", down_url(),
        "--data-dir", str(tmp_path), "--keyword-only",
    )
    assert_one_clear_line(proc)


def test_gateway_serve_with_the_database_down(tmp_path: Path) -> None:
    config = {
        "gateway": {
            "public_url": "http://127.0.0.1:9",
            "database_url": down_url(),
            "dev_mode": True,
        },
        "providers": [
            {
                "provider_id": "mail",
                "display_name": "Example Mail",
                "authorization_endpoint": "http://127.0.0.1:9/authorize",
                "token_endpoint": "http://127.0.0.1:9/token",
                "client_id": "gw",
                "client_secret_env": "ATHKIT_TEST_FAULT_SECRET",
                "api_base": "http://127.0.0.1:9/api",
                "scopes": {"mail:read": {"description": "Read", "upstream": ["api:read"]}},
                "routes": [{"method": "GET", "path": "/v1/me", "scope": "mail:read"}],
            }
        ],
    }
    path = tmp_path / "gateway.toml"
    path.write_text(to_toml(config))
    proc = athkit(
        "gateway", "serve", "--config", str(path), "--port", str(closed_port()),
        ATHKIT_GATEWAY_TOKEN_KEYS=new_key_spec("k1"), ATHKIT_TEST_FAULT_SECRET="x",
    )
    assert_one_clear_line(proc)


def test_native_mount_raises_one_clear_error() -> None:
    with pytest.raises(DatabaseUnreachableError) as err:
        ATH(
            FastAPI(),
            current_user=lambda request: None,
            public_url="http://127.0.0.1:9",
            database_url=down_url(),
        )
    text = str(err.value)
    assert "\n" not in text and "s3cret-pw" not in text
    assert text.startswith("cannot reach the database at postgresql+psycopg://athkit:***@")


# -- health ------------------------------------------------------------------------------------


@pytest.fixture
def pg_shop(tmp_path: Path, pg_database: str, pg_proxy: FaultyTCPProxy) -> Iterator[Shop]:
    shop = start_shop(tmp_path, database_url=via_proxy(pg_database, pg_proxy))
    try:
        yield shop
    finally:
        pg_proxy.set_mode("refuse")
        shop.server.stop()


def test_native_health_and_readiness(pg_shop: Shop, pg_proxy: FaultyTCPProxy) -> None:
    ready = httpx.get(f"{pg_shop.url}/ath/readyz")
    assert ready.status_code == 200 and ready.json() == {
        "status": "ok", "checks": {"database": "ok"},
    }
    pg_proxy.set_mode("refuse")
    assert httpx.get(f"{pg_shop.url}/ath/healthz").json() == {"status": "ok"}
    down = httpx.get(f"{pg_shop.url}/ath/readyz")
    assert down.status_code == 503 and down.headers["retry-after"] == "5"
    body = down.json()
    assert body["code"] == "SERVICE_UNAVAILABLE"
    assert body["details"]["checks"]["database"].startswith("unavailable")


def test_readiness_names_an_unreachable_redis(tmp_path: Path) -> None:
    from athkit.demo.shop import create_shop_app

    port = free_port()
    app = create_shop_app(
        public_url=f"http://127.0.0.1:{port}",
        data_dir=tmp_path / "shop",
        dev_mode=True,
        redis_url=f"redis://127.0.0.1:{closed_port()}/0",
    )
    with BackgroundServer(app, port=port) as server:
        resp = httpx.get(f"{server.url}/ath/readyz")
    assert resp.status_code == 503
    checks = resp.json()["details"]["checks"]
    assert checks["database"] == "ok" and checks["redis"].startswith("unavailable")


def test_registry_health_and_readiness(tmp_path: Path) -> None:
    app = create_registry_app(
        RegistrySettings(data_dir=tmp_path, semantic="off", revalidate_interval=0)
    )
    with BackgroundServer(app) as server:
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}

"""Fixtures of the OAuth/MCP tests: the example MCP notes service, Bob, a TLS host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from athkit.web.serving import BackgroundServer, free_port
from tests.oauth.support import (
    ConsentingUser,
    MetadataHost,
    load_example,
    loopback_tls,
    start_metadata_host,
)


class NotesService:
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch, ca: Path | None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        monkeypatch.setenv("ATHKIT_PUBLIC_URL", self.base)
        monkeypatch.setenv("ATHKIT_DEV_MODE", "true")
        monkeypatch.setenv("ATHKIT_DATA_DIR", str(tmp / "svc"))
        if ca is not None:
            monkeypatch.setenv("ATHKIT_OUTBOUND_CA_FILE", str(ca))
        self.module = load_example("mcp_notes.py")
        self.server = BackgroundServer(self.module.app, port=self.port).start()

    def close(self) -> None:
        self.server.stop()
        self.module.ath.close()


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[Path, MetadataHost]]:
    ca, cert, key = loopback_tls(tmp_path)
    host = start_metadata_host(cert, key)
    try:
        yield ca, host
    finally:
        host.server.stop()


@pytest.fixture
def notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotesService]:
    svc = NotesService(tmp_path, monkeypatch, None)
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture
def bob() -> Iterator[ConsentingUser]:
    user = ConsentingUser("bob")
    try:
        yield user
    finally:
        user.close()



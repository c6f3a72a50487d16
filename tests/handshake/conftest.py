"""Handshake servers: ATH Shop (or a variant policy) on a real uvicorn on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from athkit.core.handshake import HandshakeService
from athkit.demo.shop import create_shop_app, shop_handshake_policy
from athkit.web.serving import BackgroundServer, free_port
from tests.handshake.support import FakeClock, Party

SCOPES = ["goods:read", "order:create"]


@dataclass
class HSServer:
    url: str
    app: FastAPI
    server: BackgroundServer
    clock: FakeClock

    @property
    def hs(self) -> HandshakeService:
        hs = self.app.state.ath.handshake
        assert hs is not None
        return hs


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., HSServer]]:
    started: list[HSServer] = []

    def make(**policy: Any) -> HSServer:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        clock = FakeClock()
        app = create_shop_app(
            public_url=url,
            data_dir=tmp_path / f"shop-{port}",
            dev_mode=True,
            password="wonderland-test",
            clock=clock,
            handshake=shop_handshake_policy(**policy),
        )
        s = HSServer(url, app, BackgroundServer(app, port=port).start(), clock)
        started.append(s)
        return s

    yield make
    for s in started:
        s.server.stop()


@pytest.fixture
def server(make_server: Callable[..., HSServer]) -> HSServer:
    return make_server()


@pytest.fixture
def agent() -> Party:
    return Party.new()


@pytest.fixture
def user() -> Party:
    return Party.new()

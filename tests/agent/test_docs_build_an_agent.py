"""docs/build-an-agent.md runs as printed: every Python block as its own process, the MCP
client configuration by starting the server exactly as it says, against a real ATH Shop; the
user's consents are given in a real (HTTP) browser as they appear in the vault."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from athkit.client.vault import default_vault
from tests.agent.conftest import AgentHome, Published, approve
from tests.conftest import Shop

DOC = Path(__file__).resolve().parents[2] / "docs" / "build-an-agent.md"
DEFAULT_SHOP = "http://127.0.0.1:8000"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture
def consenting_user(published: Published) -> Iterator[list[str]]:
    """Approves every pending consent of any user of the vault, once, until the test ends."""
    done: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        vault = default_vault()
        while not stop.is_set():
            for user in vault.users():
                for pending in vault.pending(user):
                    if pending.ath_session_id not in done:
                        done.append(pending.ath_session_id)
                        approve(pending.authorization_url)
            stop.wait(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    yield done
    stop.set()
    thread.join(10)


def _run(code: str, home: AgentHome, shop: Shop, tmp_path: Path) -> str:
    script = tmp_path / "example.py"
    script.write_text(code.replace(DEFAULT_SHOP, shop.url))
    env = {**os.environ, **home.env, "SHOP_URL": shop.url, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_the_doc_has_the_promised_examples() -> None:
    python = blocks("python")
    assert len(python) == 4
    quick = python[0].strip().splitlines()
    assert len(quick) <= 15, len(quick)
    assert "langchain" in python[1] and "openai_agents" in python[2]
    assert "pydantic_ai" in python[3]


@pytest.mark.parametrize("index", [0, 1, 2, 3], ids=["quickstart", "langchain",
                                                      "openai-agents", "pydantic-ai"])
def test_python_example_runs(
    index: int, agent_home: AgentHome, published: Published, shop: Shop,
    consenting_user: list[str], tmp_path: Path,
) -> None:
    out = _run(blocks("python")[index], agent_home, shop, tmp_path)
    assert f"{shop.url}/ath/oauth/authorize?" in out  # every example shows the consent link
    if index == 0:
        assert "'items'" in out and "p-100" in out
    if index == 1:
        assert "Trail running shoes" in out
    if index == 2:
        assert "ath-shop" in out and "products:read" in out


def test_mcp_client_config_starts_the_server(
    agent_home: AgentHome, published: Published, shop: Shop
) -> None:
    [config] = [json.loads(b) for b in blocks("json")]
    entry = config["mcpServers"]["athkit"]
    command = shutil.which(entry["command"])
    assert command, "the athkit console script is not installed"
    args = [a.replace(DEFAULT_SHOP, shop.url) for a in entry["args"]]
    env = {**os.environ, **agent_home.env, "PYTHONPATH": os.pathsep.join(sys.path)}

    async def run() -> None:
        params = StdioServerParameters(command=command, args=args, env=env)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool("discover_provider", {"url": shop.url})
            assert result.structuredContent and result.structuredContent["status"] == "ok"

    anyio.run(run)

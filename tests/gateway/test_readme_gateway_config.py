"""The README's gateway.toml example is a valid configuration (it documents config.py)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from athkit.gateway.config import parse_config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_gateway_toml_parses() -> None:
    text = README.read_text()
    section = text[text.index("## Set up a gateway") :]
    block = re.search(r"```toml\n(.*?)```", section, re.S)
    assert block is not None
    cfg = parse_config(tomllib.loads(block.group(1)))
    mail = cfg.provider("mail")
    assert mail is not None and mail.client_secret_env == "MAIL_CLIENT_SECRET"
    assert mail.route_map().required_scope("DELETE", "/v1/messages/42") == "mail:delete"
    assert mail.route_map().required_scope("GET", "/v1/admin") is None
    assert cfg.gateway.token_keys_env == "ATHKIT_GATEWAY_TOKEN_KEYS"

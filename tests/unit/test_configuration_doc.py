"""docs/configuration.md is generated from the settings classes and names every setting."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_matches_the_code() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == _generator().render(), (
        "docs/configuration.md is stale: run python scripts/config_reference.py"
    )


def test_every_setting_is_described() -> None:
    undescribed = [line for line in _generator().render().splitlines()
                   if re.match(r"^\| `", line) and line.rstrip().endswith("|  |")]
    assert undescribed == [], "add a #: comment or description to these settings"

"""Write docs/configuration.md from the settings classes, so the reference cannot drift.

    python scripts/config_reference.py          # rewrite docs/configuration.md
    python scripts/config_reference.py --check  # exit 1 when the file is out of date

Descriptions come from each field's ``description`` or the ``#:`` comment lines above it.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

HEADER = """\
# Configuration reference

Generated from the settings classes by `python scripts/config_reference.py` (a test checks that
this file matches the code). Defaults are safe for one machine with no setup; `dev_mode` must
stay off in production.
"""


def _comments(cls: type) -> dict[str, str]:
    """``#:`` comment blocks directly above ``name:`` lines in the class body."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    found: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = re.match(r"^\s{4}([a-z_][a-z0-9_]*)\s*:", line)
        if match and pending:
            found[match.group(1)] = " ".join(pending)
        if stripped:
            pending = []
    return found


def _type_name(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", None)
    text = text or str(annotation)
    return str(text).replace("typing.", "").replace("pathlib.", "")


def _default(value: Any) -> str:
    if value is PydanticUndefined or value is dataclasses.MISSING:
        return "*required*"
    if isinstance(value, Path):
        return f"`{value}`"
    return f"`{value!r}`"


def _rows(cls: type) -> list[tuple[str, str, str, str]]:
    notes = _comments(cls)
    rows = []
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        for name, field in cls.model_fields.items():
            if field.default_factory is not None:
                default = _default(field.default_factory())  # type: ignore[call-arg]
            else:
                default = _default(field.default)
            rows.append((name, _type_name(field.annotation), default,
                         field.description or notes.get(name, "")))
    else:
        for f in dataclasses.fields(cls):
            if f.default_factory is not dataclasses.MISSING:
                default = _default(f.default_factory())
            else:
                default = _default(f.default)
            rows.append((f.name, _type_name(f.type), default, notes.get(f.name, "")))
    return rows


def _table(rows: list[tuple[str, str, str, str]], env_prefix: str | None) -> str:
    head = "| setting | env var | type | default | what |\n|---|---|---|---|---|\n"
    if env_prefix is None:
        head = "| key | type | default | what |\n|---|---|---|---|\n"
    lines = []
    for name, typ, default, what in rows:
        what = what.replace("|", "\\|")
        typ = typ.replace("|", "\\|")
        if env_prefix is None:
            lines.append(f"| `{name}` | {typ} | {default} | {what} |")
        else:
            env = f"{env_prefix}{name.upper()}"
            lines.append(f"| `{name}` | `{env}` | {typ} | {default} | {what} |")
    return head + "\n".join(lines) + "\n"


def render() -> str:
    from athkit.core.settings import ATHSettings
    from athkit.gateway import config as gw
    from athkit.registry.service import RegistrySettings

    parts = [HEADER]
    parts.append(
        "\n## Native mode: `ATHSettings`\n\n"
        "Keyword arguments of `ATH(app, ...)` (or an `ATHSettings(...)` passed as `settings=`), "
        "else `ATHKIT_*` environment variables. Lists and nested values take JSON in the "
        "environment.\n\n"
    )
    parts.append(_table(_rows(ATHSettings), "ATHKIT_"))
    parts.append(
        "\n## Registry: `RegistrySettings`\n\n"
        "Set by `athkit registry serve` options (`--data-dir`, `--database-url` / "
        "`ATHKIT_REGISTRY_DATABASE_URL`, `--dev`, `--revalidate-every`, "
        "`--semantic/--keyword-only`, `--model` / `ATHKIT_REGISTRY_MODEL`; "
        "the admin token from `ATHKIT_REGISTRY_ADMIN_TOKEN`) or in code.\n\n"
    )
    parts.append(_table(_rows(RegistrySettings), None))
    parts.append(
        "\n## Gateway: the TOML file\n\n"
        "`athkit gateway check|serve --config gateway.toml`. Unknown keys are refused at start "
        "with the key's name; secrets are named by environment variable, never written in the "
        "file.\n"
    )
    sections = [
        ("[gateway]", gw.GatewaySection),
        ("[policy]", gw.PolicyConfig),
        ("[[providers]]", gw.ProviderConfig),
        ("[providers.scopes.\"<scope>\"]", gw.ScopeConfig),
        ("[[providers.routes]]", gw.RouteConfig),
        ("[handshake]", gw.HandshakeConfig),
    ]
    for title, cls in sections:
        parts.append(f"\n### `{title}`\n\n")
        parts.append(_table(_rows(cls), None))
    return "".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if DOC.read_text() != text:
            print(f"{DOC} is out of date: run python scripts/config_reference.py")
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

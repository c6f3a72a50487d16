"""The house rules of docs/architecture.md, checked on the source itself.

One concept per module: no module over 500 lines (generated migrations aside). Arrows point
down the house: ``protocol`` imports nothing else of ours, ``oauth`` never imports ``web``,
``client`` never imports ``core`` or ``store``. Imports are read with :mod:`ast`, so an import
inside a function or under ``TYPE_CHECKING`` counts too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import athkit

SRC = Path(athkit.__file__).resolve().parent
MAX_LINES = 500
ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
MODULES = sorted(
    p
    for p in SRC.rglob("*.py")
    if not {"migrations", "versions"} <= set(p.relative_to(SRC).parts)  # generated revisions
)

#: package -> packages of ours it must never import.
NEVER = {
    "protocol": "every other package of athkit",
    "oauth": ("web",),
    "client": ("core", "store"),
}


def _name(path: Path) -> str:
    return ".".join(("athkit", *path.relative_to(SRC).with_suffix("").parts))


def _imports(path: Path) -> set[str]:
    """Every ``athkit...`` module ``path`` imports, wherever the import stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = _name(path).split(".")[: -node.level]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return {m for m in found if m == "athkit" or m.startswith("athkit.")}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_the_modules_are_found() -> None:
    names = {_name(p) for p in MODULES}
    assert {"athkit.protocol.errors", "athkit.core.service", "athkit.client.errors"} <= names
    assert not any(".migrations.versions." in n for n in names)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_is_over_500_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(SRC)} has {lines} lines: split it by concept"


@pytest.mark.parametrize("package", sorted(NEVER))
def test_no_arrow_runs_back_up(package: str) -> None:
    wrong = []
    for path in sorted((SRC / package).rglob("*.py")):
        for module in sorted(_imports(path)):
            target = _package(module)
            if target is None or target == package:
                continue
            # ``from athkit import netguard``: the top-level module ``athkit.netguard``
            forbidden = NEVER[package]
            if package == "protocol" or target in forbidden:
                wrong.append(f"{path.relative_to(SRC)} imports {module}")
    assert not wrong, "\n".join(wrong)


def _documented() -> dict[str, list[str]]:
    """``docs/architecture.md``'s module list: package -> the modules named under it."""
    listed: dict[str, list[str]] = {}
    package = ""
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"### `(\w+)/`", line.strip())
        if heading:
            package = heading.group(1)
            listed[package] = []
        elif line.strip() == "### top level":
            package = "."
            listed[package] = []
        elif package and (item := re.match(r"- `([\w/]+\.py)`: ", line)):
            listed[package].append(item.group(1))
    return listed


def test_the_architecture_page_matches_the_tree() -> None:
    """Every package has its section there, and every module it names exists."""
    listed = _documented()
    packages = {p.parent.name for p in SRC.glob("*/__init__.py")}
    assert packages <= set(listed), f"no section for {sorted(packages - set(listed))}"
    stale = [
        f"{package}/{name}"
        for package, names in listed.items()
        for name in names
        if not (SRC / package / name).is_file()
    ]
    assert not stale, f"docs/architecture.md names modules that are gone: {stale}"


def test_imports_are_read_wherever_they_stand(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "import athkit.store.db\n"
        "if TYPE_CHECKING:\n"
        "    from athkit.core import service\n"
        "def f() -> None:\n"
        "    from athkit.web.errors import templates\n",
        encoding="utf-8",
    )
    found = _imports(module)
    assert {"athkit.store.db", "athkit.core.service", "athkit.web.errors"} <= found

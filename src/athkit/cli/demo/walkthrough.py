"""The printer every ``athkit demo`` walkthrough shares: steps, expectations, the verdict."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from athkit.client.errors import ATHError


class Abort(Exception):
    """A step failed in a way the following steps cannot recover from."""


@dataclass
class DemoOptions:
    """The ``athkit demo`` command's options (``--browser``, ``--gateway``, ``--data-dir``, ...)."""

    browser: bool = False
    gateway: bool = False
    data_dir: Path | None = None
    quiet: bool = False
    password: str | None = None
    wait_seconds: float = 300.0
    poll_interval: float = 1.5
    #: ``--serve``: keep the servers up for your own agent instead of walking the steps.
    serve: bool = False
    #: ``--port``: the gateway's port with ``--serve`` (default: a free one).
    port: int | None = None


@dataclass
class Walkthrough:
    """Prints the steps and collects every expectation that did not hold."""

    console: Console
    quiet: bool = False
    failures: list[str] = field(default_factory=list)
    current: str = ""

    def step(self, number: int, title: str, question: str) -> None:
        self.current = f"step {number} ({title})"
        if not self.quiet:
            self.console.print()
            self.console.rule(f"[bold]Step {number}: {title}[/] [dim]— {question}[/]", align="left")

    def say(self, text: str) -> None:
        if not self.quiet:
            self.console.print(f"  {text}", soft_wrap=True)

    def show(self, renderable: Any) -> None:
        if not self.quiet:
            self.console.print(renderable)

    def expect(self, ok: bool, what: str, got: Any = None) -> bool:
        """Record ``what`` as expected; print a check mark or what differed."""
        if ok:
            self.say(f"[green]✓[/] {escape(what)}")
        else:
            detail = f" (got {got!r})" if got is not None else ""
            self.failures.append(f"{self.current}: expected {what}{detail}")
            self.console.print(f"  [bold red]✗ expected {escape(what)}{escape(detail)}[/]")
        return ok


def scope_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False, pad_edge=True)
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "center")
    for row in rows:
        table.add_row(*row)
    return table


def mark(ok: bool) -> str:
    return "[green]✓[/]" if ok else "[red]✗[/]"


@contextmanager
def demo_data_dir(given: Path | None) -> Iterator[Path]:
    """The given directory (kept), or a fresh temporary one (removed afterwards)."""
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    tmp = Path(tempfile.mkdtemp(prefix="athkit-demo-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def verdict(walk: Walkthrough, steps: int = 7) -> int:
    console = walk.console
    console.print()
    if walk.failures:
        console.print("[bold red]The demo did not behave as expected:[/]")
        for failure in walk.failures:
            console.print(f"  [red]•[/] {escape(failure)}", soft_wrap=True)
        return 1
    console.print(f"[bold green]All {steps} steps behaved as expected.[/]")
    return 0


def guard(walk: Walkthrough, action: Callable[[], Any]) -> Any:
    """Run one SDK call; an unexpected error ends the walkthrough as a failure."""
    try:
        return action()
    except ATHError as exc:
        walk.failures.append(f"{walk.current}: unexpected {exc.code_str} ({exc.message})")
        walk.console.print(f"  [bold red]✗ {escape(exc.code_str)}: {escape(exc.message)}[/]")
        raise Abort from exc
    except (httpx.HTTPError, RuntimeError) as exc:
        walk.failures.append(f"{walk.current}: {type(exc).__name__}: {exc}")
        walk.console.print(f"  [bold red]✗ {type(exc).__name__}: {escape(str(exc))}[/]")
        raise Abort from exc

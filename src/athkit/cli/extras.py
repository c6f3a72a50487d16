"""Missing optional dependencies become one line of advice and exit code 2, never a traceback.

The agent-side install (``pip install athkit``) has no server dependencies; the commands that run
or inspect a service import them inside the command, under :func:`server_extras`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

#: Top-level modules of the ``athkit[server]`` extra.
SERVER_PACKAGES = frozenset(
    {
        "fastapi",
        "starlette",
        "uvicorn",
        "sqlalchemy",
        "alembic",
        "jinja2",
        "multipart",
        "python_multipart",
        "authlib",
        "pydantic_settings",
        "prometheus_client",
    }
)

_err = Console(stderr=True)


@contextmanager
def server_extras(command: str) -> Iterator[None]:
    """Turn a missing server dependency inside ``command`` into a clear message and exit 2."""
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in SERVER_PACKAGES:
            raise
        _err.print(
            f"[red]`athkit {command}` needs the server dependencies ({top} is missing).[/]\n"
            "Install them with:  pip install 'athkit\\[server]'"
        )
        raise typer.Exit(2) from None

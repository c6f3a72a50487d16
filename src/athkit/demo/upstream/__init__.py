"""A real upstream OpenID provider for ``athkit demo --gateway`` and the gateway tests.

The provider is node's ``oidc-provider`` (pinned by ``package-lock.json`` next to this file),
run by ``provider.js`` on a loopback port with one confidential client and one JWT resource
server. This package ships only those three files; the node modules are installed on first use
with ``npm ci`` into a cache directory:

* ``$ATHKIT_UPSTREAM_NODE_MODULES`` when set (the directory that gets ``node_modules/``; a path
  ending in ``node_modules`` means its parent), otherwise
* ``$XDG_CACHE_HOME/athkit/upstream-<hash>`` (``~/.cache/...`` when XDG_CACHE_HOME is unset),
  where ``<hash>`` covers ``package.json`` and ``package-lock.json``, so a new lock file gets a
  fresh install and an old one is never reused by mistake.

``package.json``, ``package-lock.json`` and ``provider.js`` are copied there (node resolves a
script's imports from the script's own directory). A lock file serialises concurrent installs
and a marker records a complete one. Install ahead of time with
``python -m athkit.demo.upstream --install``.

Needs Node.js >= 20 and npm on PATH; :class:`ProviderSetupError` says what is missing.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from athkit.web.serving import free_port

PACKAGE_DIR = Path(__file__).resolve().parent
PROVIDER_SCRIPT = "provider.js"
NPM_FILES = ("package.json", "package-lock.json")
NODE_MODULES_ENV = "ATHKIT_UPSTREAM_NODE_MODULES"
MIN_NODE_MAJOR = 20
DEFAULT_API_SCOPES = "api:read api:write"
_MARKER = ".athkit-npm-ci-done"
INSTALL_HINT = "python -m athkit.demo.upstream --install"


class ProviderSetupError(RuntimeError):
    """The provider cannot be installed or started (no node/npm, npm ci failed, crash, timeout)."""


# -- node, npm and the node_modules cache -----------------------------------------------------


def find_node() -> str:
    """The ``node`` executable (Node.js >= 20); raises :class:`ProviderSetupError` otherwise."""
    node = shutil.which("node")
    if node is None:
        raise ProviderSetupError(
            "node is not on PATH: the local upstream OpenID provider needs Node.js >= "
            f"{MIN_NODE_MAJOR} (https://nodejs.org)"
        )
    major = _node_major(node)
    if major is not None and major < MIN_NODE_MAJOR:
        raise ProviderSetupError(
            f"{node} is Node.js {major}; the upstream OpenID provider needs >= {MIN_NODE_MAJOR}"
        )
    return node


@functools.lru_cache(maxsize=8)
def _node_major(node: str) -> int | None:
    try:
        out = subprocess.run(  # noqa: S603 - a resolved executable, fixed arguments
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v?(\d+)\.", out.strip())
    return int(match.group(1)) if match else None


def find_npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise ProviderSetupError(
            "npm is not on PATH: it installs the upstream OpenID provider's node modules once "
            "(npm ships with Node.js)"
        )
    return npm


@functools.lru_cache(maxsize=1)
def lock_digest() -> str:
    """A short hash of ``package.json`` + ``package-lock.json``: names the cache directory."""
    digest = hashlib.sha256()
    for name in NPM_FILES:
        digest.update(name.encode() + b"\0" + (PACKAGE_DIR / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "athkit"


def install_dir() -> Path:
    """Where ``node_modules/`` lives (see the module docstring); nothing is created here."""
    explicit = os.environ.get(NODE_MODULES_ENV, "").strip()
    if explicit:
        path = Path(explicit).expanduser().resolve()
        return path.parent if path.name == "node_modules" else path
    return cache_root() / f"upstream-{lock_digest()}"


def is_installed(directory: Path | None = None) -> bool:
    directory = directory or install_dir()
    marker = directory / _MARKER
    try:
        done = marker.read_text().strip() == lock_digest()
    except OSError:
        return False
    return done and (directory / "node_modules" / "oidc-provider" / "package.json").is_file()


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An advisory lock on ``path`` held for the block (POSIX; no locking elsewhere)."""
    with open(path, "a+b") as handle:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def _copy_if_changed(src: Path, dest: Path) -> None:
    data = src.read_bytes()
    try:
        if dest.read_bytes() == data:
            return
    except OSError:
        pass
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dest)


def ensure_installed(*, log: Callable[[str], None] | None = None, timeout: float = 600.0) -> Path:
    """Install the node modules (``npm ci``) unless already done; return the install dir.

    ``log`` hears one line before a (slow, networked) install starts. Safe to call from
    several processes at once: one installs, the others wait and reuse it.
    """
    directory = install_dir()
    if not is_installed(directory):
        find_node()
        npm = find_npm()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProviderSetupError(f"cannot create {directory}: {exc}") from exc
        with _exclusive(directory / ".install.lock"):
            if not is_installed(directory):
                if log is not None:
                    log(f"installing the upstream OpenID provider (npm ci) into {directory}")
                _npm_ci(npm, directory, timeout)
    _copy_if_changed(PACKAGE_DIR / PROVIDER_SCRIPT, directory / PROVIDER_SCRIPT)
    return directory


def _npm_ci(npm: str, directory: Path, timeout: float) -> None:
    (directory / _MARKER).unlink(missing_ok=True)
    for name in NPM_FILES:
        _copy_if_changed(PACKAGE_DIR / name, directory / name)
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"}
    env.pop("NODE_OPTIONS", None)
    command = [npm, "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--loglevel=error"]
    try:
        done = subprocess.run(  # noqa: S603 - npm from PATH, fixed arguments
            command,
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise ProviderSetupError(f"npm ci in {directory} took longer than {timeout:.0f} s") from exc
    except OSError as exc:
        raise ProviderSetupError(f"could not run npm: {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise ProviderSetupError(
            f"npm ci failed in {directory} (exit {done.returncode}); is the npm registry "
            f"reachable?\n{tail}"
        )
    (directory / _MARKER).write_text(lock_digest() + "\n")


# -- a running provider ------------------------------------------------------------------------


@dataclass
class OIDCProvider:
    """A running oidc-provider with one confidential client and one JWT resource server."""

    issuer: str
    client_id: str
    client_secret: str
    resource: str
    port: int
    process: subprocess.Popen[bytes]
    redirect_uris: list[str] = field(default_factory=list)
    api_scopes: str = DEFAULT_API_SCOPES
    access_token_ttl: int = 60
    metadata: dict[str, Any] = field(default_factory=dict)
    stdout_lines: list[str] = field(default_factory=list, repr=False)
    stderr_path: Path | None = field(default=None, repr=False)
    _reader: threading.Thread | None = field(default=None, repr=False, init=False)

    @property
    def authorization_endpoint(self) -> str:
        return str(self.metadata["authorization_endpoint"])

    @property
    def token_endpoint(self) -> str:
        return str(self.metadata["token_endpoint"])

    @property
    def jwks_uri(self) -> str:
        return str(self.metadata["jwks_uri"])

    @property
    def userinfo_endpoint(self) -> str:
        return str(self.metadata["userinfo_endpoint"])

    @property
    def revocation_endpoint(self) -> str:
        return str(self.metadata["revocation_endpoint"])

    @property
    def introspection_endpoint(self) -> str:
        return str(self.metadata["introspection_endpoint"])

    def stderr(self) -> str:
        """What the node process wrote to stderr so far (warnings, crashes)."""
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.stderr_path is not None:
            self.stderr_path.unlink(missing_ok=True)

    def __enter__(self) -> OIDCProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_oidc_provider(
    redirect_uris: list[str],
    access_token_ttl: int = 60,
    *,
    resource: str | None = None,
    api_scopes: str = DEFAULT_API_SCOPES,
    client_id: str | None = None,
    client_secret: str | None = None,
    rotate_refresh_tokens: bool = False,
    timeout: float = 20.0,
    log: Callable[[str], None] | None = None,
) -> OIDCProvider:
    """Start ``provider.js`` and return once it printed ``READY <issuer>`` (installing first).

    ``resource`` defaults to ``http://127.0.0.1:<a free port>`` so that a resource API can then
    be started on exactly that URL; ``client_secret`` defaults to a random one. The caller must
    ``stop()`` the result (or use it as a context manager). ``log`` is passed to
    :func:`ensure_installed`.
    """
    node = find_node()
    directory = ensure_installed(log=log)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    resource = resource or f"http://127.0.0.1:{free_port()}"
    client_id = client_id or f"gateway-{secrets.token_hex(4)}"
    client_secret = client_secret or secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "PORT": str(port),
        "CLIENT_ID": client_id,
        "CLIENT_SECRET": client_secret,
        "REDIRECT_URIS": ",".join(redirect_uris),
        "RESOURCE": resource,
        "API_SCOPES": api_scopes,
        "ACCESS_TOKEN_TTL": str(access_token_ttl),
        "ROTATE_REFRESH_TOKENS": "1" if rotate_refresh_tokens else "0",
    }
    env.pop("NODE_OPTIONS", None)
    fd, stderr_name = tempfile.mkstemp(prefix="oidc-provider-", suffix=".log")
    stderr_path = Path(stderr_name)
    with os.fdopen(fd, "wb") as stderr_file:
        process = subprocess.Popen(  # noqa: S603 - node from PATH, our own script
            [node, str(directory / PROVIDER_SCRIPT)],
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr_file,
        )
    provider = OIDCProvider(
        issuer=issuer,
        client_id=client_id,
        client_secret=client_secret,
        resource=resource,
        port=port,
        process=process,
        redirect_uris=list(redirect_uris),
        api_scopes=api_scopes,
        access_token_ttl=access_token_ttl,
        stderr_path=stderr_path,
    )
    ready = threading.Event()
    seen_ready: list[bool] = []

    def drain() -> None:
        stdout = process.stdout
        if stdout is None:
            ready.set()
            return
        for raw in stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            provider.stdout_lines.append(line)
            if line == f"READY {issuer}":
                seen_ready.append(True)
                ready.set()
        ready.set()  # EOF: the process has exited (or is exiting)

    provider._reader = threading.Thread(target=drain, name=f"oidc-provider:{port}", daemon=True)
    provider._reader.start()
    try:
        if not ready.wait(timeout) or not seen_ready:
            raise ProviderSetupError(
                f"oidc provider did not become ready (exit={process.poll()}); "
                f"stdout={provider.stdout_lines!r}\nstderr:\n{provider.stderr()}"
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=5)
                response.raise_for_status()
                provider.metadata = response.json()
                break
            except httpx.HTTPError as exc:
                if time.monotonic() > deadline:
                    raise ProviderSetupError(f"no discovery document at {issuer}: {exc}") from exc
                time.sleep(0.05)
    except BaseException:
        provider.stop()
        raise
    return provider

"""A gateway in front of Example Mail (:mod:`athkit.demo.mail_api`): its configuration, as a dict
or a gateway.toml, and ``athkit gateway serve`` as a child process.

``athkit demo --gateway`` runs the gateway in-process from :func:`mail_gateway_config`; the
gateway memory test and ``bench/proxy.py`` write the same configuration with :func:`to_toml` and
start the real command with :class:`GatewayProcess`, so its memory and speed are its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from athkit.web.serving import free_port

PROVIDER_ID = "mail"
#: ATH scope -> (description, upstream scopes it needs).
SCOPES: dict[str, tuple[str, list[str]]] = {
    "mail:read": ("Read your mail", ["api:read"]),
    "mail:send": ("Send mail as you", ["api:write"]),
    "mail:delete": ("Delete your mail", ["api:write"]),
}
#: The scope→route map: anything not listed here is refused with ROUTE_NOT_MAPPED.
ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/v1/me", "mail:read"),
    ("GET", "/v1/messages", "mail:read"),
    ("GET", "/v1/download", "mail:read"),
    ("POST", "/v1/messages", "mail:send"),
    ("POST", "/v1/upload", "mail:send"),
    ("DELETE", "/v1/messages/{id}", "mail:delete"),
]
#: Scopes the gateway's policy grants only to trusted agents.
TRUSTED_ONLY = ["mail:delete"]


def mail_gateway_config(
    public_url: str,
    *,
    issuer: str,
    resource: str,
    client_id: str,
    secret_env: str,
    data_dir: str | Path | None = None,
    token_keys_env: str | None = None,
) -> dict[str, Any]:
    """The gateway configuration (the shape of gateway.toml, see athkit.gateway.config)."""
    gateway: dict[str, Any] = {
        "public_url": public_url,
        "gateway_id": "athkit-demo-gateway",
        "name": "athkit demo gateway",
        "dev_mode": True,
    }
    if data_dir is not None:
        gateway["data_dir"] = str(data_dir)
    if token_keys_env is not None:
        gateway["token_keys_env"] = token_keys_env
    return {
        "gateway": gateway,
        "policy": {"auto_approve": True, "scope_rules": dict.fromkeys(TRUSTED_ONLY, "trusted")},
        "providers": [
            {
                "provider_id": PROVIDER_ID,
                "display_name": "Example Mail",
                "categories": ["email"],
                "issuer": issuer,
                "client_id": client_id,
                "client_secret_env": secret_env,
                "upstream_scopes": ["openid", "offline_access"],
                "resource": resource,
                "api_base": resource,
                "scopes": {
                    name: {"description": text, "upstream": upstream}
                    for name, (text, upstream) in SCOPES.items()
                },
                "routes": [{"method": m, "path": p, "scope": s} for m, p, s in ROUTES],
            }
        ],
    }


# -- TOML ----------------------------------------------------------------------------------


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _key(key: str) -> str:
    plain = key.replace("_", "").replace("-", "").isalnum()
    return key if plain else _value(key)


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _table(lines: list[str], path: str, table: Mapping[str, Any], header: str | None) -> None:
    if header is not None:
        lines += ["", header]
    nested = []
    for key, value in table.items():
        if isinstance(value, Mapping) or _is_table_list(value):
            nested.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in nested:
        sub = f"{path}.{_key(key)}" if path else _key(key)
        if isinstance(value, Mapping):
            _table(lines, sub, value, f"[{sub}]")
        else:
            for item in value:
                _table(lines, sub, item, f"[[{sub}]]")


def to_toml(data: Mapping[str, Any]) -> str:
    """Write a configuration dict as TOML (tables, arrays of tables, strings, numbers, lists)."""
    lines: list[str] = []
    _table(lines, "", data, None)
    return "\n".join(lines).lstrip("\n") + "\n"


# -- ``athkit gateway serve`` as a child process -----------------------------------------------


@dataclass
class GatewayProcess:
    """``athkit gateway serve`` in a child process; ``stop()`` (or ``with``) ends it."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls,
        config_path: Path,
        env: Mapping[str, str],
        *,
        port: int | None = None,
        log_level: str = "info",
        timeout: float = 30.0,
    ) -> GatewayProcess:
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = config_path.with_suffix(".log")
        command = [sys.executable, "-m", "athkit.cli", "gateway", "serve"]
        command += ["--config", str(config_path), "--port", str(port), "--log-level", log_level]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
                command,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        gateway = cls(url, process, log_path)
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gateway exited ({process.returncode}):\n{gateway.log()}")
            try:
                if httpx.get(f"{url}/.well-known/ath.json", timeout=2).status_code == 200:
                    return gateway
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                gateway.stop()
                raise RuntimeError(f"gateway did not start within {timeout} s:\n{gateway.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def memory_kib(self) -> dict[str, int]:
        """``VmRSS`` and ``VmHWM`` (peak RSS) of the process in KiB, from /proc (Linux)."""
        out: dict[str, int] = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(rest.split()[0])
        return out

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Providers changed while the gateway runs: saved as numbered versions, picked up by every node.

The TOML file is the bootstrap. An operator's change (console or admin API) is validated
exactly as the TOML is (:func:`athkit.gateway.config.parse_config` over the whole
configuration), its upstream discovered, then written as a new
:class:`~athkit.store.provider_versions.ProviderVersionRow` with its audit row. Each node polls
the newest version id (one indexed ``max(id)``, every ``provider_poll_seconds``) off the request
path and, when it moved, rebuilds its provider tables and swaps them in whole. A provider whose
upstream cannot be discovered on some node keeps its previous configuration there until the
next poll succeeds.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from pydantic import PrivateAttr

from athkit.core import audit_events as ev
from athkit.core.audit import audit_row
from athkit.core.clock import to_datetime
from athkit.gateway.config import ConfigError, GatewayConfig, ProviderConfig, parse_config
from athkit.gateway.service import GatewayService
from athkit.gateway.upstream import UpstreamProvider
from athkit.protocol.errors import ATHError, ErrorCode
from athkit.store.provider_versions import ProviderVersionRow, ProviderVersionStore

log = logging.getLogger("athkit.gateway.providers")


class LiveProviderConfig(ProviderConfig):
    """A provider saved at run time: its client secret may come sealed from the database."""

    _secret: str | None = PrivateAttr(default=None)

    def client_secret(self) -> str:
        return self._secret if self._secret is not None else super().client_secret()


@dataclass(frozen=True)
class ProviderEntry:
    """What the console and the admin API show of one provider."""

    provider_id: str
    display_name: str
    source: str  # "toml" or "database"
    version: int | None
    operator: str | None
    disabled: bool
    config: dict[str, Any]


def _invalid(exc: ConfigError) -> ATHError:
    return ATHError(
        ErrorCode.VALIDATION_ERROR, "invalid provider configuration", {"errors": str(exc)}
    )


def secret_purpose(provider_id: str) -> str:
    """Associated data binding a sealed client secret to its provider."""
    return f"provider-secret\x00{provider_id}"


class LiveProviders:
    """The gateway's providers: TOML bootstrap overlaid with the database's newest versions."""

    def __init__(self, svc: GatewayService, *, poll_seconds: float = 2.0) -> None:
        self.svc = svc
        self.bootstrap = list(svc.config.providers)
        self.versions = ProviderVersionStore(svc.store.db)
        self.poll_seconds = poll_seconds
        self.applied = -1
        self._row_ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- reading ------------------------------------------------------------------------

    def _merged(self, rows: list[ProviderVersionRow]) -> GatewayConfig:
        by_id: dict[str, ProviderConfig | None] = {p.provider_id: p for p in self.bootstrap}
        sealed: dict[str, str | None] = {}
        for row in rows:
            by_id[row.provider_id] = None if row.disabled else ProviderConfig(**row.config)
            sealed[row.provider_id] = row.sealed_secret
        data = self.svc.config.model_dump()
        data["providers"] = [p.model_dump() for p in by_id.values() if p is not None]
        cfg = parse_config(data)
        live = []
        for p in cfg.providers:
            lp = LiveProviderConfig(**p.model_dump())
            secret = sealed.get(p.provider_id)
            if secret:
                lp._secret = self.svc.sealer.open(secret, secret_purpose(p.provider_id))
            live.append(lp)
        return cfg.model_copy(update={"providers": live})

    def reload(self) -> bool:
        """Apply the newest versions if the database moved on; True when something changed."""
        with self._lock:
            latest = self.versions.latest_id()
            if latest == self.applied:
                return False
            rows = list(self.versions.current())
            cfg = self._merged(rows)
            svc = self.svc
            row_ids = {r.provider_id: r.id for r in rows}
            upstreams = dict(svc.providers)
            timeout = svc.config.gateway.upstream_timeout
            for p in cfg.providers:
                old = svc.config.provider(p.provider_id)
                same = old is not None and old.model_dump() == p.model_dump()
                if not same or self._row_ids.get(p.provider_id) != row_ids.get(p.provider_id):
                    up = UpstreamProvider(p, timeout=timeout)
                    up.discover()
                    upstreams[p.provider_id] = up
            # Whole tables swapped in: a request sees the old set or the new one.
            svc.providers = upstreams
            svc.route_maps = {p.provider_id: p.route_map() for p in cfg.providers}
            svc.config = cfg
            self.applied = latest
            self._row_ids = row_ids
            log.info("providers at version %s: %s", latest, [p.provider_id for p in cfg.providers])
            return True

    def entries(self) -> list[ProviderEntry]:
        rows = {r.provider_id: r for r in self.versions.current()}
        out = []
        seen = set()
        for p in [*self.bootstrap, *(ProviderConfig(**r.config) for r in rows.values())]:
            if p.provider_id in seen:
                continue
            seen.add(p.provider_id)
            row = rows.get(p.provider_id)
            cfg = ProviderConfig(**row.config) if row else p
            out.append(
                ProviderEntry(
                    provider_id=p.provider_id,
                    display_name=cfg.display_name,
                    source="database" if row else "toml",
                    version=row.id if row else None,
                    operator=row.operator if row else None,
                    disabled=bool(row and row.disabled),
                    config=cfg.model_dump(),
                )
            )
        return out

    # -- writing ------------------------------------------------------------------------

    def save(self, data: dict[str, Any], *, operator: str, client_secret: str | None) -> int:
        """Validate, discover and store a new version of one provider; apply it here at once."""
        try:
            full = self.svc.config.model_dump()
            others = [p.model_dump() for p in self.svc.config.providers]
            pid = str(data.get("provider_id", ""))
            full["providers"] = [p for p in others if p["provider_id"] != pid] + [data]
            checked = parse_config(full).provider(pid)
        except ConfigError as exc:
            raise _invalid(exc) from None
        assert checked is not None
        sealed = None
        if client_secret:
            sealed = self.svc.sealer.seal(client_secret, secret_purpose(pid))
        else:
            try:
                checked.client_secret()
            except KeyError:
                raise ATHError(
                    ErrorCode.VALIDATION_ERROR,
                    "invalid provider configuration",
                    {
                        "errors": f"client_secret_env: environment variable "
                        f"{checked.client_secret_env} is not set; give client_secret instead"
                    },
                ) from None
        try:
            UpstreamProvider(checked, timeout=self.svc.config.gateway.upstream_timeout).discover()
        except ConfigError as exc:
            raise _invalid(exc) from None
        return self._add(pid, checked.model_dump(), sealed, False, operator, ev.PROVIDER_CHANGED)

    def disable(self, provider_id: str, *, operator: str) -> int:
        current = self.svc.config.provider(provider_id)
        if current is None:
            raise ATHError(ErrorCode.NOT_FOUND, "no such provider", {"provider_id": provider_id})
        if len(self.svc.config.providers) == 1:
            raise ATHError(ErrorCode.INVALID_REQUEST, "the last provider cannot be disabled")
        return self._add(
            provider_id, current.model_dump(), None, True, operator, ev.PROVIDER_DISABLED
        )

    def _add(
        self,
        pid: str,
        config: dict[str, Any],
        sealed: str | None,
        disabled: bool,
        operator: str,
        event: str,
    ) -> int:
        now = self.svc.clock()
        version = self.versions.add(
            ProviderVersionRow(
                provider_id=pid,
                config=json.loads(json.dumps(config, default=str)),
                sealed_secret=sealed,
                disabled=disabled,
                operator=operator,
                created_at=to_datetime(now),
            )
        )
        self.svc.store.add_audit(
            audit_row(
                now,
                event,
                "disabled" if disabled else "saved",
                provider_id=pid,
                details={"operator": operator, "version": version},
            )
        )
        self.reload()
        return version

    # -- polling ------------------------------------------------------------------------

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.reload()
            except Exception:  # keep serving the last good set; try again next round
                log.exception("reloading providers failed; keeping the current ones")

    def start(self) -> None:
        try:
            self.reload()
        except Exception:
            log.exception("loading saved providers failed; serving the TOML ones")
        self._thread = threading.Thread(target=self._poll, name="athkit-providers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

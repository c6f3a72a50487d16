"""What the sync and async clients share: construction, credentials, URL builders (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from athkit.client._core import (
    DEFAULT_TIMEOUT,
    ClientCore,
    RedirectParams,
    load_manual_config,
    manual_base_url,
    parse_redirect,
)
from athkit.crypto import AgentKey
from athkit.protocol.messages import ManualServiceConfig, ServiceDiscoveryDocument

_C = TypeVar("_C", bound="BaseATHClient")


class BaseATHClient:
    """Holds a :class:`ClientCore`; subclasses add only the send loop."""

    def __init__(
        self,
        base_url: str,
        agent_id: str,
        key: AgentKey,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        api_base: str | None = None,
    ) -> None:
        self._core = ClientCore(
            base_url,
            agent_id,
            key,
            timeout=timeout,
            client_id=client_id,
            client_secret=client_secret,
            api_base=api_base,
        )

    @classmethod
    def from_manual_config(
        cls: type[_C],
        config: ManualServiceConfig | Mapping[str, Any] | str | Path,
        *,
        agent_id: str,
        key: AgentKey,
        **kwargs: Any,
    ) -> _C:
        """A client for a service described by hand (§2 manual mode).

        ``config`` is ``{provider, api_base, oauth:{authorization_url, token_url}}`` (a mapping,
        a model, or a JSON file path). The ATH base URL is ``oauth.token_url`` with its trailing
        ``/ath/token`` removed; ``api_base`` is taken as given.
        """
        if not isinstance(config, ManualServiceConfig):
            config = load_manual_config(config)
        client = cls(manual_base_url(config), agent_id, key, **kwargs)
        client._core.apply_manual_config(config)
        return client

    # -- state --------------------------------------------------------------------------

    @property
    def core(self) -> ClientCore:
        """The sans-I/O core (for advanced use and tests)."""
        return self._core

    @property
    def base_url(self) -> str:
        return self._core.base_url

    @property
    def agent_id(self) -> str:
        return self._core.agent_id

    @property
    def api_base(self) -> str | None:
        return self._core.api_base

    @property
    def discovery(self) -> ServiceDiscoveryDocument | None:
        return self._core.discovery

    @property
    def client_id(self) -> str | None:
        return self._core.client_id

    @property
    def client_secret(self) -> str | None:
        return self._core.client_secret

    @property
    def access_token(self) -> str | None:
        return self._core.access_token

    def set_credentials(self, client_id: str, client_secret: str) -> None:
        """Use credentials from an earlier registration (e.g. a credential store)."""
        self._core.set_credentials(client_id, client_secret)

    def set_token(self, token: str | None, provider_id: str | None = None) -> None:
        """Use (or with ``None`` forget) an access token, optionally for one provider."""
        self._core.set_token(token, provider_id)

    # -- builders -----------------------------------------------------------------------

    def proxy_url(self, provider_id: str, path: str) -> str:
        """``{base}/ath/proxy/{provider_id}/{path}`` (§7 gateway shape)."""
        return self._core.proxy_url(provider_id, path)

    @staticmethod
    def parse_redirect(url: str) -> RedirectParams:
        """``code``/``state``/``error`` of the redirect to ``user_redirect_uri`` (§5)."""
        return parse_redirect(url)

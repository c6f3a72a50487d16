"""The user's own channel (PROTOCOL.md §8): the agents a user has let in, and withdrawing them."""

from __future__ import annotations

from dataclasses import dataclass

from athkit.core import audit_events as ev
from athkit.core.audit import audit_row
from athkit.core.clock import iso, to_datetime
from athkit.core.service_base import ServiceBase
from athkit.store.models import AgentRow


@dataclass(frozen=True)
class UserGrant:
    """One agent's live access for a user, as the "my agents" page shows it."""

    client_id: str
    agent_name: str
    agent_id: str
    developer_name: str
    provider_id: str
    scopes: list[str]
    expires_at: str


class UserGrants(ServiceBase):
    """§8 what the "my agents" page lists and its revoke button."""

    def user_grants(self, user_id: str, provider_id: str | None = None) -> list[UserGrant]:
        """The user's live grants (at one provider, when given: a gateway account)."""
        grants = []
        names: dict[str, AgentRow | None] = {}
        now = to_datetime(self.clock())
        for t in self.store.live_tokens_for_user(user_id, now, provider_id):
            if t.client_id not in names:
                names[t.client_id] = self.store.get_agent(t.client_id)
            agent = names[t.client_id]
            grants.append(
                UserGrant(
                    client_id=t.client_id,
                    agent_name=agent.name if agent else t.agent_id,
                    agent_id=t.agent_id,
                    developer_name=agent.developer_name if agent else "",
                    provider_id=t.provider_id,
                    scopes=list(t.scopes),
                    expires_at=iso(t.expires_at),
                )
            )
        return grants

    def revoke_for_user(self, user_id: str, client_id: str, provider_id: str | None = None) -> int:
        """The signed-in user withdraws an agent's access (all its live tokens for this user)."""
        now = self.clock()
        agent = self.store.get_agent(client_id)
        return self.store.revoke_user_client_tokens(
            user_id,
            client_id,
            to_datetime(now),
            audit_row(
                now,
                ev.TOKEN_REVOKED,
                "revoked_by_user",
                agent_id=agent.agent_id if agent else None,
                user_id=user_id,
                provider_id=provider_id,
                details={"actor": "user", "client_id": client_id},
            ),
            provider_id,
        )

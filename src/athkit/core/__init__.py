"""The ATH implementer, framework-free (PROTOCOL.md §3–§8, §11).

:class:`ATHService` wires the pieces; ``web/`` turns its results and :class:`ATHError` values
into HTTP.
"""

from athkit.core.policy import ApprovalPolicy
from athkit.core.service import ATHService
from athkit.core.settings import ATHSettings, ScopeInfo
from athkit.core.tokens import TokenInfo

__all__ = ["ATHService", "ATHSettings", "ApprovalPolicy", "ScopeInfo", "TokenInfo"]

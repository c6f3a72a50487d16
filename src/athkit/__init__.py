"""athkit: the Agent Trust Handshake (ATH 0.1) for Python.

Server-side names live in :mod:`athkit.native`; agent-side names in :mod:`athkit.client`.
"""

__version__ = "0.1.0"
ATH_VERSION = "0.1"

__all__ = ["ATH_VERSION", "__version__"]

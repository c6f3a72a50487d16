"""Old home of ``athkit demo --handshake``: now :mod:`athkit.cli.demo.handshake`."""

from athkit.cli.demo.handshake import run_handshake_demo

__all__ = ["run_handshake_demo"]

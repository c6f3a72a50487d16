"""``athkit demo``: the walkthroughs, run for real against servers on loopback ports.

``native`` walks the seed (ATH Shop, seed 001) in seven steps; ``gateway`` (``--gateway``) the
same seven steps through an ATH gateway in front of an OAuth API; ``handshake``
(``--handshake``) the nine-step handshake (seed 003). All print through one
:class:`~athkit.cli.demo.walkthrough.Walkthrough` and share the steps in ``steps``. Each step
states what it expects; a walkthrough exits 0 only when every expectation held.

Imports the server packages at import time: :mod:`athkit.cli.main` loads it lazily.
"""

from rich.console import Console

from athkit.cli.demo.gateway import run_gateway_demo, serve_gateway_stack
from athkit.cli.demo.native import DEFAULT_PASSWORD, run_native_demo
from athkit.cli.demo.walkthrough import DemoOptions, Walkthrough
from athkit.cli.demo.walkthrough import demo_data_dir as _data_dir
from athkit.cli.demo.walkthrough import verdict as _verdict

__all__ = [
    "DEFAULT_PASSWORD",
    "DemoOptions",
    "Walkthrough",
    "_data_dir",
    "_verdict",
    "run_demo",
    "run_gateway_demo",
    "run_native_demo",
    "serve_gateway_stack",
]


def run_demo(options: DemoOptions, console: Console) -> int:
    """Walk the native demo, or the gateway one with ``options.gateway``; 0: all as expected."""
    if options.gateway:
        if options.serve:
            return serve_gateway_stack(options, console)
        return run_gateway_demo(options, console)
    return run_native_demo(options, console)

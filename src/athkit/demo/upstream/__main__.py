"""``python -m athkit.demo.upstream --install``: install the provider's node modules ahead of time.

``--where`` prints the install directory and whether it is complete, without installing.
Exit status 0 on success, 1 with the reason on stderr otherwise.
"""

from __future__ import annotations

import argparse
import sys

from athkit.demo.upstream import ProviderSetupError, ensure_installed, install_dir, is_installed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m athkit.demo.upstream",
        description="The local upstream OpenID provider (node oidc-provider) of athkit's "
        "gateway demo and tests.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--install", action="store_true", help="npm ci into the cache, once")
    action.add_argument("--where", action="store_true", help="print the install directory")
    args = parser.parse_args(argv)
    if args.where:
        directory = install_dir()
        print(f"{directory} ({'installed' if is_installed(directory) else 'not installed'})")
        return 0
    try:
        directory = ensure_installed(log=lambda line: print(line, file=sys.stderr))
    except ProviderSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(directory)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

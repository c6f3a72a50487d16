"""``python -m athkit.cli``."""

from athkit.cli.main import main

main()

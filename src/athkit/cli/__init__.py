"""The ``athkit`` command line: demo walkthrough, demo shop server, operator and key tools.

Only :mod:`athkit.cli.main` is imported at start-up, and it needs just the agent-side install
(typer, rich, the client SDK). Commands that run or inspect a service import the server packages
when they are invoked and say ``install athkit[server]`` if those are missing.
"""

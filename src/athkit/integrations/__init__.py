"""Thin adapters between athkit, MCP and agent frameworks."""

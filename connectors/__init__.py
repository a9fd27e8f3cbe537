"""Upstream MCP servers as providers: supervision, clients, OAuth linking (arrives with the gateway issue)."""

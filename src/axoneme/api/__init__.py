"""Clients of the agent's local API (the CLI's and the lab's side of api/agent-api.md)."""

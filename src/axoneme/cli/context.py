"""Where the CLI finds the store and the agents: the running lab, or explicit settings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from axoneme.agent.config import DEFAULT_SOCKET
from axoneme.lab.control import LabError, read_state, require_state
from axoneme.store.etcd import EtcdStore
from axoneme.store.memory import MemoryStore
from axoneme.store.types import Store

STORE_ENV = "AXONEME_STORE"


class CLIError(Exception):
    """A user-facing error: printed as ``error: <message>``, exit status 1."""


def open_store() -> Store:
    spec = os.environ.get(STORE_ENV)
    if spec:
        if spec.startswith("embedded:"):
            return MemoryStore(Path(spec.removeprefix("embedded:")))
        if spec.startswith(("http://", "unix:")):
            return EtcdStore(spec)
        raise CLIError(
            f"{STORE_ENV}: {spec!r} must be http://HOST:PORT, unix:PATH or embedded:PATH"
        )
    try:
        state = require_state()
    except LabError as exc:
        raise CLIError(f"{exc}, or set {STORE_ENV}") from exc
    return EtcdStore(f"unix:{state['store']['unix']}")


@dataclass(frozen=True)
class AgentRef:
    node: str
    socket: Path


def agents(node: str | None = None) -> list[AgentRef]:
    """The agents to ask: the lab's (optionally one node), else the local default socket."""
    state = read_state()
    if state is None:
        if node:
            raise CLIError(f"--node {node}: no lab is running to find that node in")
        return [AgentRef(os.uname().nodename, DEFAULT_SOCKET)]
    refs = [AgentRef(n["name"], Path(n["socket"])) for n in state["nodes"]]
    if node:
        refs = [r for r in refs if r.node == node]
        if not refs:
            known = ", ".join(n["name"] for n in state["nodes"])
            raise CLIError(f"--node: no node {node!r} in the lab (nodes: {known})")
    return refs

"""Garbage the operator collects (pure parts): stale CiliumEndpoints, live nodes.

A node is live while its agent's ``ClusterNode`` entry exists (it is written
under the node lease). A CiliumEndpoint is stale when its pod is gone or its
node is not live; the runner deletes it only if it is still stale on a later
pass at least ``grace`` seconds on, so an endpoint being created (its CEP
written just before its pod shows up here) is never taken for garbage.
Identity GC is ``identity.allocator.collect_garbage`` with the live nodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from axoneme.store.types import Key

Resource = dict[str, Any]


def live_nodes(entries: Iterable[Resource]) -> dict[str, str]:
    """Node name → its InternalIP, for every ClusterNode entry (one per live agent)."""
    out = {}
    for entry in entries:
        name = str(entry.get("metadata", {}).get("name", ""))
        ips = [
            str(a.get("ip", ""))
            for a in entry.get("spec", {}).get("addresses", [])
            if isinstance(a, dict) and a.get("type") == "InternalIP"
        ]
        if name:
            out[name] = ips[0] if ips else ""
    return out


def stale_endpoints(
    ceps: Iterable[Resource], pods: Iterable[Resource], live_ips: set[str]
) -> dict[Key, str]:
    """CiliumEndpoints to collect → why."""
    pod_keys = {
        (p.get("metadata", {}).get("namespace", ""), p.get("metadata", {}).get("name", ""))
        for p in pods
    }
    out: dict[Key, str] = {}
    for cep in ceps:
        meta = cep.get("metadata", {})
        key = Key("CiliumEndpoint", str(meta.get("namespace", "")), str(meta.get("name", "")))
        node_ip = str(cep.get("status", {}).get("networking", {}).get("node", ""))
        if (key.namespace, key.name) not in pod_keys:
            out[key] = "its pod is gone"
        elif node_ip not in live_ips:
            out[key] = f"its node {node_ip or '?'} is not live"
    return out


@dataclass
class Suspects:
    """Debounce: a key is collected only when stale on two passes ``grace`` apart."""

    grace: float
    first_seen: dict[Key, float] = field(default_factory=dict)

    def due(self, stale: Iterable[Key], now: float) -> list[Key]:
        stale = set(stale)
        self.first_seen = {k: t for k, t in self.first_seen.items() if k in stale}
        due = []
        for key in sorted(stale, key=str):
            seen = self.first_seen.setdefault(key, now)
            if now - seen >= self.grace:
                due.append(key)
        return due

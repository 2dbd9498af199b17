"""Node registration and removal (pure): Nodes and CiliumNodes in, CiliumNode changes out.

Every Node gets a CiliumNode carrying its pod CIDR from the cluster pool
(``spec.ipam.podCIDRs``) and its share of every CiliumPodIPPool
(``spec.ipam.pools.allocated``). A CiliumNode whose Node is gone is deleted,
which releases its CIDRs (the runner also deletes the node's endpoints).
The operator keeps no allocation state of its own: each pass rebuilds it
from the CiliumNodes, so a restarted or newly elected operator continues
exactly where the last one stopped.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from axoneme.ipam.pools import ciliumnode_ip
from axoneme.k8s.errors import ValidationError
from axoneme.k8s.objects import parse_node
from axoneme.operator.clusterpool import (
    ClusterPool,
    PoolConfig,
    PoolExhaustedError,
    StaleCIDRError,
)
from axoneme.operator.multipool import IPPool, pool_allocator

CILIUM_NODE_KIND = "CiliumNode"
__all__ = ["CILIUM_NODE_KIND", "NodeSync", "ciliumnode_ip", "ciliumnode_object", "plan_nodes"]

Resource = dict[str, Any]


@dataclass
class NodeSync:
    puts: list[Resource] = field(default_factory=list)  # CiliumNodes to write
    deletes: list[Resource] = field(default_factory=list)  # CiliumNodes of removed nodes
    errors: dict[str, str] = field(default_factory=dict)  # node → what is wrong


def ciliumnode_object(name: str, ip: str) -> Resource:
    return {
        "apiVersion": "cilium.io/v2",
        "kind": CILIUM_NODE_KIND,
        "metadata": {"name": name},
        "spec": {
            "addresses": [{"type": "InternalIP", "ip": ip}] if ip else [],
            "ipam": {"podCIDRs": [], "pools": {"allocated": []}},
        },
        "status": {"ipam": {"operatorStatus": {}}},
    }


def _bare(obj: Resource) -> Resource:
    out = copy.deepcopy(obj)
    out.get("metadata", {}).pop("resourceVersion", None)
    return out


def plan_nodes(
    config: PoolConfig,
    pools: list[IPPool],
    nodes: list[Resource],
    ciliumnodes: list[Resource],
) -> NodeSync:
    sync = NodeSync()
    cluster = ClusterPool(config)
    shares = {p.name: pool_allocator(p) for p in pools}
    by_name = {str(c["metadata"]["name"]): c for c in ciliumnodes}
    node_ips: dict[str, str] = {}
    preferred: dict[str, str] = {}
    for raw in nodes:
        try:
            node = parse_node(raw)
        except ValidationError as exc:
            sync.errors[str(raw.get("metadata", {}).get("name", "?"))] = str(exc)
            continue
        node_ips[node.name] = node.internal_ip
        if node.pod_cidrs:
            preferred[node.name] = node.pod_cidrs[0]

    # Removed nodes first, so their CIDRs are free for this pass.
    for name in sorted(by_name):
        if name not in node_ips:
            sync.deletes.append(by_name[name])

    # Occupy what live CiliumNodes hold (an operator restart or takeover).
    stale: set[str] = set()
    for name in sorted(n for n in by_name if n in node_ips):
        ipam = by_name[name].get("spec", {}).get("ipam", {})
        for cidr in ipam.get("podCIDRs", [])[:1]:
            try:
                cluster.occupy(name, str(cidr))
            except StaleCIDRError as exc:
                sync.errors[name] = str(exc)
                stale.add(name)
        for entry in ipam.get("pools", {}).get("allocated", []):
            share = shares.get(str(entry.get("pool", "")))
            for cidr in entry.get("cidrs", [])[:1]:
                if share is not None:
                    try:
                        share.occupy(name, str(cidr))
                    except StaleCIDRError as exc:
                        sync.errors.setdefault(name, str(exc))

    for name in sorted(node_ips):
        current = by_name.get(name)
        wanted = _bare(current) if current else ciliumnode_object(name, node_ips[name])
        spec = wanted.setdefault("spec", {})
        spec["addresses"] = [{"type": "InternalIP", "ip": node_ips[name]}] if node_ips[name] else []
        ipam = spec.setdefault("ipam", {})
        if name not in stale:
            try:
                ipam["podCIDRs"] = [cluster.allocate(name, preferred.get(name))]
            except PoolExhaustedError as exc:
                sync.errors[name] = str(exc)
        allocated = []
        for pool_name, share in sorted(shares.items()):
            try:
                allocated.append({"pool": pool_name, "cidrs": [share.allocate(name)]})
            except PoolExhaustedError as exc:
                sync.errors.setdefault(name, f"pool {pool_name}: {exc}")
        ipam["pools"] = {"allocated": allocated}
        status = wanted.setdefault("status", {}).setdefault("ipam", {})
        status["operatorStatus"] = {"error": sync.errors[name]} if name in sync.errors else {}
        if current is None or _bare(current) != wanted:
            sync.puts.append(wanted)
    return sync

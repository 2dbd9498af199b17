"""Which IP pool a pod's address comes from (pure): the ``ipam.cilium.io/ip-pool`` annotation.

As Cilium's multi-pool IPAM: the pod's annotation wins, then its
namespace's, then the ``default`` pool (the node's cluster-pool CIDR).
A node's share of each pool is on its CiliumNode (``spec.ipam.pools.allocated``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

POOL_ANNOTATION = "ipam.cilium.io/ip-pool"
DEFAULT_POOL = "default"


def pool_for(pod_annotations: Mapping[str, str], namespace_annotations: Mapping[str, str]) -> str:
    for found in (pod_annotations, namespace_annotations):
        name = found.get(POOL_ANNOTATION, "").strip()
        if name:
            return name
    return DEFAULT_POOL


def node_pool_cidrs(ciliumnode: Mapping[str, Any]) -> dict[str, list[str]]:
    """Pool name → the node's CIDRs of it, from a CiliumNode (``default``: spec.ipam.podCIDRs)."""
    ipam = ciliumnode.get("spec", {}).get("ipam", {})
    out: dict[str, list[str]] = {}
    if ipam.get("podCIDRs"):
        out[DEFAULT_POOL] = list(ipam["podCIDRs"])
    for entry in ipam.get("pools", {}).get("allocated", []):
        if isinstance(entry, dict) and entry.get("pool"):
            out[str(entry["pool"])] = list(entry.get("cidrs", []))
    return out


def ciliumnode_ip(ciliumnode: Mapping[str, Any]) -> str:
    """The node's InternalIP recorded on its CiliumNode ("" if none)."""
    for address in ciliumnode.get("spec", {}).get("addresses", []):
        if isinstance(address, dict) and address.get("type") == "InternalIP":
            return str(address.get("ip", ""))
    return ""

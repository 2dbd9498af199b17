"""Multi-pool IPAM (pure): CiliumPodIPPool resources, each carved into per-node shares.

A pool is ``spec.ipv4.cidrs`` and ``spec.ipv4.maskSize`` (Cilium's
CiliumPodIPPool). The operator gives every node one CIDR of every pool and
records it on the node's CiliumNode (``spec.ipam.pools.allocated``); the
agent hands a pod an address from its node's share of the pool the pod (or
its namespace) names in ``ipam.cilium.io/ip-pool``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from axoneme.operator.clusterpool import ClusterPool, PoolConfigError, parse_pool_config

POOL_KIND = "CiliumPodIPPool"


@dataclass(frozen=True)
class IPPool:
    name: str
    cidrs: tuple[str, ...]
    mask_size: int


def parse_ip_pool(obj: dict[str, Any]) -> IPPool:
    """Validate a CiliumPodIPPool; PoolConfigError names the field."""
    name = str(obj.get("metadata", {}).get("name", ""))
    if not name:
        raise PoolConfigError("metadata.name: required")
    v4 = obj.get("spec", {}).get("ipv4")
    if not isinstance(v4, dict):
        raise PoolConfigError(f"CiliumPodIPPool {name}: spec.ipv4: required (an object)")
    cidrs = v4.get("cidrs")
    if not isinstance(cidrs, list) or not all(isinstance(c, str) for c in cidrs):
        raise PoolConfigError(f"CiliumPodIPPool {name}: spec.ipv4.cidrs: must be a list of CIDRs")
    mask = v4.get("maskSize")
    if not isinstance(mask, int) or isinstance(mask, bool):
        raise PoolConfigError(f"CiliumPodIPPool {name}: spec.ipv4.maskSize: must be an integer")
    try:
        parse_pool_config(cidrs, mask)
    except PoolConfigError as exc:
        text = str(exc).replace("clusterPoolIPv4PodCIDRList", "spec.ipv4.cidrs")
        text = text.replace("clusterPoolIPv4MaskSize", "spec.ipv4.maskSize")
        raise PoolConfigError(f"CiliumPodIPPool {name}: {text}") from exc
    return IPPool(name, tuple(cidrs), mask)


def pool_allocator(pool: IPPool) -> ClusterPool:
    return ClusterPool(parse_pool_config(pool.cidrs, pool.mask_size))

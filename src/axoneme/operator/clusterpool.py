"""Cluster-pool IPAM (pure): carve per-node pod CIDRs out of the cluster's pod CIDR list.

As Cilium's ``cluster-pool`` mode: ``clusterPoolIPv4PodCIDRList`` lists the
cluster's ranges and ``clusterPoolIPv4MaskSize`` the size of each node's
share. Allocations are recorded on CiliumNodes (``spec.ipam.podCIDRs``), so
an operator that restarts (or takes over) first *occupies* what the
CiliumNodes hold, then allocates for nodes that have nothing yet: the lowest
free CIDR, or the node's own ``Node.spec.podCIDR`` when that is free and
inside the pool (switching a cluster to the operator renumbers nothing).

The trap the reference document hit: re-installing with another pod CIDR
list while old CiliumNodes still hold CIDRs from the previous one. Cilium's
operator then logs "allocator not configured for the requested cidr";
``occupy`` raises ``StaleCIDRError`` saying which resource to clean instead,
and the node keeps its old CIDR (never renumbered under running pods).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

IPv4Network = ipaddress.IPv4Network


class PoolConfigError(ValueError):
    """A pool setting is invalid; the message names the setting."""


class PoolExhaustedError(Exception):
    pass


class StaleCIDRError(Exception):
    """A CiliumNode holds a CIDR this pool cannot account for (a previous install's)."""


@dataclass(frozen=True)
class PoolConfig:
    cidrs: tuple[IPv4Network, ...]
    mask_size: int

    @property
    def capacity(self) -> int:
        return sum(2 ** (self.mask_size - c.prefixlen) for c in self.cidrs)


def parse_pool_config(cidr_list: Sequence[str], mask_size: int) -> PoolConfig:
    """Validate ``clusterPoolIPv4PodCIDRList`` and ``clusterPoolIPv4MaskSize``."""
    if not cidr_list:
        raise PoolConfigError("clusterPoolIPv4PodCIDRList: at least one CIDR is required")
    nets: list[IPv4Network] = []
    for i, text in enumerate(cidr_list):
        field = f"clusterPoolIPv4PodCIDRList[{i}]"
        try:
            net = ipaddress.ip_network(text.strip())
        except ValueError as exc:
            raise PoolConfigError(f"{field}: {exc}") from exc
        if not isinstance(net, IPv4Network):
            raise PoolConfigError(f"{field}: {text} is not an IPv4 CIDR")
        if mask_size < net.prefixlen:
            raise PoolConfigError(
                f"clusterPoolIPv4MaskSize: /{mask_size} is larger than {field} {net}"
            )
        for other in nets:
            if net.overlaps(other):
                raise PoolConfigError(f"{field}: {net} overlaps {other}")
        nets.append(net)
    if not 8 <= mask_size <= 30:
        raise PoolConfigError(f"clusterPoolIPv4MaskSize: {mask_size} is not in 8..30")
    return PoolConfig(tuple(nets), mask_size)


def stale_cidr_message(node: str, cidr: str, config: PoolConfig) -> str:
    pools = ", ".join(map(str, config.cidrs))
    return (
        f"CiliumNode {node} holds pod CIDR {cidr}, which the cluster pool [{pools}] "
        f"(/{config.mask_size} per node) does not contain: allocator not configured for the "
        f"requested cidr. It is left from an install with another pod CIDR config. Either put "
        f"the old range back into clusterPoolIPv4PodCIDRList, or clean it up: drain node "
        f"{node}, delete the resource (`axoneme delete ciliumnode {node}`), and remove the "
        f"node agent's IPAM state (its state.json, under --state-dir) before it restarts"
    )


class ClusterPool:
    """Which node holds which CIDR of one PoolConfig."""

    def __init__(self, config: PoolConfig) -> None:
        self.config = config
        self._by_cidr: dict[IPv4Network, str] = {}

    def _valid(self, cidr: IPv4Network) -> bool:
        return cidr.prefixlen == self.config.mask_size and any(
            cidr.subnet_of(pool) for pool in self.config.cidrs
        )

    def allocations(self) -> dict[str, str]:
        """Node → CIDR."""
        return {node: str(cidr) for cidr, node in sorted(self._by_cidr.items())}

    def cidr_of(self, node: str) -> str | None:
        for cidr, owner in self._by_cidr.items():
            if owner == node:
                return str(cidr)
        return None

    def occupy(self, node: str, text: str) -> None:
        """Record a CIDR a CiliumNode already holds."""
        try:
            cidr = ipaddress.ip_network(text)
        except ValueError as exc:
            raise StaleCIDRError(f"CiliumNode {node}: spec.ipam.podCIDRs: {exc}") from exc
        if not isinstance(cidr, IPv4Network) or not self._valid(cidr):
            raise StaleCIDRError(stale_cidr_message(node, text, self.config))
        owner = self._by_cidr.get(cidr)
        if owner is not None and owner != node:
            raise StaleCIDRError(
                f"CiliumNode {node} holds pod CIDR {cidr}, already allocated to {owner}: "
                f"delete one of the two CiliumNodes (`axoneme delete ciliumnode NAME`)"
            )
        self._by_cidr[cidr] = node

    def allocate(self, node: str, prefer: str | None = None) -> str:
        """The node's CIDR: the one it holds, else ``prefer`` if usable, else the lowest free."""
        held = self.cidr_of(node)
        if held is not None:
            return held
        if prefer:
            try:
                wanted = ipaddress.ip_network(prefer)
            except ValueError:
                wanted = None
            if (
                isinstance(wanted, IPv4Network)
                and self._valid(wanted)
                and wanted not in self._by_cidr
            ):
                self._by_cidr[wanted] = node
                return str(wanted)
        for pool in self.config.cidrs:
            for cidr in pool.subnets(new_prefix=self.config.mask_size):
                if cidr not in self._by_cidr:
                    self._by_cidr[cidr] = node
                    return str(cidr)
        raise PoolExhaustedError(
            f"cluster pool exhausted: all {self.config.capacity} /{self.config.mask_size} "
            f"CIDRs of {', '.join(map(str, self.config.cidrs))} are allocated"
        )

    def release(self, node: str) -> str | None:
        for cidr, owner in list(self._by_cidr.items()):
            if owner == node:
                del self._by_cidr[cidr]
                return str(cidr)
        return None

"""Host-scope IPAM: hand out addresses of one pod CIDR, one owner each.

Pure state: ``Allocator`` holds the CIDR and the address → owner map and
knows nothing about files or the kernel; the agent persists ``snapshot()``.
Works on offsets into the network, so an IPv6 /64 costs no more than a /24
(the data model is family-neutral; the agent runs IPv4 today).

Reserved in every pool, as Cilium does: the network address, the broadcast
address (IPv4), and the node's router address (the first host address).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class IPAMError(Exception):
    """Base of IPAM errors."""


class PoolExhaustedError(IPAMError):
    pass


class AddressConflictError(IPAMError):
    pass


class CIDRMismatchError(IPAMError):
    pass


@dataclass(frozen=True)
class Usage:
    cidr: str
    allocated: int
    capacity: int

    def __str__(self) -> str:
        return f"{self.allocated}/{self.capacity} allocated from {self.cidr}"


def router_address(cidr: IPNetwork) -> IPAddress:
    """The node's own address in its pod CIDR (the pods' gateway)."""
    return cidr.network_address + 1


class Allocator:
    def __init__(self, cidr: str, allocations: dict[str, str] | None = None) -> None:
        self.cidr: IPNetwork = ipaddress.ip_network(cidr)
        if self.cidr.num_addresses < 4 and self.cidr.version == 4:
            raise IPAMError(f"pod CIDR {cidr} is too small: at least a /30 is needed")
        self.router = router_address(self.cidr)
        self._reserved = {self.cidr.network_address, self.router}
        if self.cidr.version == 4:
            self._reserved.add(self.cidr.broadcast_address)
        self._by_ip: dict[IPAddress, str] = {}
        self._next = 0
        for ip, owner in (allocations or {}).items():
            self.claim(ipaddress.ip_address(ip), owner)

    @property
    def capacity(self) -> int:
        return self.cidr.num_addresses - len(self._reserved)

    def usage(self) -> Usage:
        return Usage(str(self.cidr), len(self._by_ip), self.capacity)

    def owner_of(self, ip: IPAddress) -> str | None:
        return self._by_ip.get(ip)

    def ip_of(self, owner: str) -> IPAddress | None:
        for ip, who in self._by_ip.items():
            if who == owner:
                return ip
        return None

    def claim(self, ip: IPAddress, owner: str) -> None:
        """Record a specific address for ``owner`` (restoring state, or a requested IP)."""
        if ip not in self.cidr:
            raise CIDRMismatchError(f"{ip} is outside the pod CIDR {self.cidr}")
        if ip in self._reserved:
            raise AddressConflictError(f"{ip} is reserved in {self.cidr}")
        current = self._by_ip.get(ip)
        if current is not None and current != owner:
            raise AddressConflictError(f"{ip} is already allocated to {current}")
        self._by_ip[ip] = owner

    def allocate(self, owner: str) -> IPAddress:
        """The owner's address: its existing one, else the next free one after the last handed out.

        Handing out round-robin (rather than lowest-free) keeps a just-released
        address out of use for as long as possible, so late packets for a
        deleted pod do not reach its successor.
        """
        existing = self.ip_of(owner)
        if existing is not None:
            return existing
        size = self.cidr.num_addresses
        if len(self._by_ip) >= self.capacity:
            raise PoolExhaustedError(
                f"range is full: all {self.capacity} addresses of {self.cidr} are allocated"
            )
        for step in range(size):
            offset = (self._next + step) % size
            ip = self.cidr.network_address + offset
            if ip not in self._reserved and ip not in self._by_ip:
                self._by_ip[ip] = owner
                self._next = (offset + 1) % size
                return ip
        raise PoolExhaustedError(f"range is full: {self.cidr}")  # unreachable by the count above

    def release(self, owner: str) -> IPAddress | None:
        ip = self.ip_of(owner)
        if ip is not None:
            del self._by_ip[ip]
        return ip

    def snapshot(self) -> dict[str, Any]:
        return {
            "cidr": str(self.cidr),
            "next": self._next,
            "allocations": {str(ip): owner for ip, owner in sorted(self._by_ip.items())},
        }

    @classmethod
    def restore(cls, data: dict[str, Any], cidr: str, source: str = "") -> Allocator:
        """Rebuild from a snapshot; refuse a snapshot of a different CIDR that still has owners.

        ``source`` names where the snapshot came from (the agent's state file),
        so the refusal can say exactly what to clean.
        """
        saved = str(data.get("cidr", cidr))
        allocations: dict[str, str] = dict(data.get("allocations", {}))
        if ipaddress.ip_network(saved) != ipaddress.ip_network(cidr) and allocations:
            raise CIDRMismatchError(reinstall_message(saved, cidr, len(allocations), source))
        alloc = cls(cidr, allocations if saved == cidr else {})
        alloc._next = int(data.get("next", 0)) if saved == cidr else 0
        return alloc


def reinstall_message(saved: str, cidr: str, allocated: int, source: str = "") -> str:
    """The reference document's trap (re-install with another pod CIDR over leftovers), told
    as what to clean instead of Cilium's bare "allocator not configured for the requested cidr"."""
    state = source or "the agent's IPAM state (state.json in its --state-dir)"
    return (
        f"IPAM state {state} was made for pod CIDR {saved}, but this node's pod CIDR is now "
        f"{cidr} (from its CiliumNode spec.ipam.podCIDRs, else Node spec.podCIDR), and "
        f"{allocated} address(es) are still allocated from the old range (allocator not "
        f"configured for the requested cidr). These are leftovers of an install with another "
        f"pod CIDR config: delete the pods on this node, remove {state}, and restart the agent; "
        f"or give the node back its old pod CIDR"
    )

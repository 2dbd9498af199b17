"""The desired ipcache of one node (pure).

Entries, keyed by normalized prefix (``10.0.1.5/32``):

* this node's addresses (internal IP, router IP) → ``host`` (1), source ``local``;
* every other node's addresses → ``remote-node`` (6), source ``k8s``; its
  router IP tunnels to its internal IP;
* every node's health endpoint (its node entry's ``spec.health.ipv4``) →
  ``health`` (4), source ``custom-resource``, tunnelling to that node's
  internal IP (none for this node's own);
* every endpoint in the cluster → its identity, source ``custom-resource``
  (CiliumEndpoint); ``tunnel_ip`` = the IP of the node hosting it, or None
  when that is this node (local endpoints are never tunnelled);
* this node's CIDR identities → their prefix, source ``generated``.

When two of these claim the same prefix, the first in that list wins (an
endpoint cannot take over a node's address; a stale CiliumEndpoint for an IP
in use here loses to the local one; otherwise the lowest node IP, then
identity, wins so the result is deterministic). ``/0`` is never an entry:
``world`` is the implicit answer to a lookup miss.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple

from axoneme.identity.reserved import HEALTH, HOST, REMOTE_NODE

Source = Literal["local", "k8s", "custom-resource", "generated"]


@dataclass(frozen=True)
class IPCacheEntry:
    identity: int
    tunnel_ip: str | None = None
    source: Source = "custom-resource"


class EndpointIP(NamedTuple):
    """An endpoint anywhere in the cluster: its IP, identity and its node's IP."""

    ip: str
    identity: int
    node_ip: str


class NodeAddresses(NamedTuple):
    name: str
    internal_ip: str
    router_ip: str | None = None
    health_ip: str | None = None  # its health endpoint, when health checking is on


def host_prefix(ip: str) -> str:
    """``10.0.1.5`` → ``10.0.1.5/32`` (``/128`` for IPv6); ValueError if not an IP."""
    addr = ipaddress.ip_address(ip.split("/", 1)[0].strip())
    return f"{addr}/{addr.max_prefixlen}"


def desired_ipcache(
    endpoints: Iterable[EndpointIP],
    nodes: Iterable[NodeAddresses],
    self_node: str,
    cidr_identities: Mapping[str, int],
) -> dict[str, IPCacheEntry]:
    table: dict[str, IPCacheEntry] = {}

    def put(prefix: str, entry: IPCacheEntry) -> None:
        table.setdefault(prefix, entry)

    node_list = list(nodes)
    self_ips: set[str] = set()
    for node in node_list:
        if node.name == self_node:
            for ip in (node.internal_ip, node.router_ip):
                if ip:
                    put(host_prefix(ip), IPCacheEntry(HOST, None, "local"))
                    self_ips.add(str(ipaddress.ip_address(ip)))
    for node in sorted(node_list, key=lambda n: (n.name, n.internal_ip)):
        if node.name == self_node:
            continue
        if node.internal_ip:
            put(host_prefix(node.internal_ip), IPCacheEntry(REMOTE_NODE, None, "k8s"))
        if node.router_ip:
            tunnel = node.internal_ip or None
            put(host_prefix(node.router_ip), IPCacheEntry(REMOTE_NODE, tunnel, "k8s"))
    # Before endpoints: the node itself says which of its addresses is its health
    # endpoint, which outranks a stale CiliumEndpoint that still names that IP.
    for node in sorted(node_list, key=lambda n: (n.name, n.internal_ip)):
        if node.health_ip:
            local = node.name == self_node
            tunnel = None if local else node.internal_ip or None
            put(host_prefix(node.health_ip), IPCacheEntry(HEALTH, tunnel, "custom-resource"))

    def is_local(ep: EndpointIP) -> bool:
        return bool(ep.node_ip) and str(ipaddress.ip_address(ep.node_ip)) in self_ips

    def order(ep: EndpointIP) -> tuple[bool, str, int]:
        return (not is_local(ep), ep.node_ip, ep.identity)

    for ep in sorted(endpoints, key=order):
        if not ep.ip:
            continue
        local = is_local(ep)
        put(
            host_prefix(ep.ip),
            IPCacheEntry(ep.identity, None if local else ep.node_ip or None, "custom-resource"),
        )

    for prefix, identity in sorted(cidr_identities.items()):
        net = ipaddress.ip_network(prefix.strip(), strict=False)
        if net.prefixlen == 0:
            continue
        put(str(net), IPCacheEntry(identity, None, "generated"))
    return dict(sorted(table.items()))


def diff(
    old: Mapping[str, IPCacheEntry], new: Mapping[str, IPCacheEntry]
) -> tuple[dict[str, IPCacheEntry], list[str]]:
    """(entries to write: new or changed, prefixes to delete), both sorted."""
    upserts = {p: e for p, e in sorted(new.items()) if old.get(p) != e}
    deletes = sorted(p for p in old if p not in new)
    return upserts, deletes

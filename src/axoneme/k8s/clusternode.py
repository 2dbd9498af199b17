"""A node's own entry (``ClusterNode``, Cilium's kvstore node / CiliumNode), validated.

Each agent writes its entry under its node lease (``agent/nodelease.py``): the
node's InternalIP, its pod CIDRs and, when health checking is on, the address
of its health endpoint (Cilium's ``spec.health.ipv4``). Every agent reads the
others' entries to map those health addresses to the ``health`` identity.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from axoneme.k8s.errors import ValidationError
from axoneme.k8s.names import dns_label
from axoneme.k8s.objects import field_list, field_object

KIND = "ClusterNode"
API_VERSION = "axoneme.io/v1"


@dataclass(frozen=True)
class ClusterNode:
    name: str
    internal_ip: str  # "" when the agent knew none
    pod_cidrs: tuple[str, ...]
    health_ipv4: str = ""  # "" when health checking is off


def _ip(field: str, value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not isinstance(value, str):
        raise ValidationError(field, "must be an IP address string")
    try:
        return ipaddress.ip_address(value)
    except ValueError as exc:
        raise ValidationError(field, f"{value!r} is not an IP address") from exc


def _health_ipv4(spec: dict[str, Any], pod_cidrs: tuple[str, ...]) -> str:
    """``spec.health.ipv4``: an IPv4 address inside one of the node's own pod CIDRs.

    The CIDR check keeps a node from giving the ``health`` identity to an
    address the cluster did not give it (another node's pod, a world IP)."""
    health = field_object("spec.health", spec.get("health"))
    raw = health.get("ipv4")
    if raw is None or raw == "":
        return ""
    address = _ip("spec.health.ipv4", raw)
    if address.version != 4:
        raise ValidationError("spec.health.ipv4", f"{raw!r} is not an IPv4 address")
    if not any(address in ipaddress.ip_network(c) for c in pod_cidrs):
        raise ValidationError(
            "spec.health.ipv4", f"{raw} is outside the node's pod CIDRs ({', '.join(pod_cidrs)})"
        )
    return str(address)


def parse_cluster_node(raw: dict[str, Any]) -> ClusterNode:
    if raw.get("kind") != KIND:
        raise ValidationError("kind", f"must be {KIND!r}")
    if raw.get("apiVersion") != API_VERSION:
        raise ValidationError("apiVersion", f"must be {API_VERSION!r} for kind {KIND}")
    meta = field_object("metadata", raw.get("metadata"))
    name = dns_label("metadata.name", meta.get("name"))
    spec = field_object("spec", raw.get("spec"))
    internal = ""
    for i, item in enumerate(field_list("spec.addresses", spec.get("addresses"))):
        address = field_object(f"spec.addresses[{i}]", item)
        ip = str(_ip(f"spec.addresses[{i}].ip", address.get("ip")))
        if address.get("type") == "InternalIP" and not internal:
            internal = ip
    cidrs = []
    for i, cidr in enumerate(field_list("spec.podCIDRs", spec.get("podCIDRs"))):
        try:
            cidrs.append(str(ipaddress.ip_network(cidr)))
        except (ValueError, TypeError) as exc:
            raise ValidationError(f"spec.podCIDRs[{i}]", f"{cidr!r} is not a CIDR") from exc
    pod_cidrs = tuple(cidrs)
    return ClusterNode(name, internal, pod_cidrs, _health_ipv4(spec, pod_cidrs))

"""``axoneme policy trace``: what policy would decide for a flow, and which rules decide it.

It reads the cluster from the store (pods, their identities, nodes, policies)
and asks the reference evaluator, the same semantics the datapath is tested
against. Pods are policy-bearing on both ends (each pod's node enforces for
it); an address that is no pod is the peer the destination's node would see:
its own node (host), another node (remote-node), a CIDR identity for a prefix
a CiliumNetworkPolicy selects, or the world.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from axoneme.agent.enforcement import (
    POLICY_KINDS,
    cidr_prefixes,
    named_ports_by_identity,
    named_ports_of,
)
from axoneme.cli.context import CLIError, open_store
from axoneme.identity.allocator import parse_identity, reserved_identities
from axoneme.identity.endpoints import EndpointRecord, parse_endpoint
from axoneme.identity.reserved import HOST, LOCAL_IDENTITY_FLAG, REMOTE_NODE, WORLD
from axoneme.k8s.objects import Node, Pod, parse_node, parse_pod
from axoneme.k8s.service import EndpointSlice, Service, parse_endpointslice, parse_service
from axoneme.labels.derive import cidr_labels, reserved
from axoneme.labels.model import LabelSet
from axoneme.policy.parse import parse_policy
from axoneme.policy.reference import LocalEndpoint, Peer, RemotePeer
from axoneme.policy.services import ServiceView, expand
from axoneme.policy.trace import TraceResult, trace
from axoneme.policy.types import EnforcementMode, Policy, PolicyContext
from axoneme.store.types import Resource, StoreError


@dataclass
class ClusterView:
    pods: dict[str, Pod]
    endpoints: dict[str, EndpointRecord]
    identities: dict[int, LabelSet]
    nodes: list[Node]
    policies: list[Policy]
    services: list[Service] = field(default_factory=list)
    slices: list[EndpointSlice] = field(default_factory=list)


async def load_cluster() -> ClusterView:
    store = open_store()
    try:
        listing = await store.list_all()
    except StoreError as exc:
        raise CLIError(str(exc)) from exc
    finally:
        await store.close()
    view = ClusterView({}, {}, dict(reserved_identities()), [], [])
    for obj in listing.items:
        _add(view, obj)
    # toServices peers become the services' backends, as the agents expand them.
    services = ServiceView(view.services, view.slices, view.pods.values())
    view.policies = list(expand(tuple(view.policies), services))
    return view


def _add(view: ClusterView, obj: Resource) -> None:
    kind = obj.get("kind")
    meta = obj.get("metadata", {})
    ref = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    try:
        if kind == "Pod":
            view.pods[ref] = parse_pod(obj)
        elif kind == "CiliumEndpoint":
            view.endpoints[ref] = parse_endpoint(obj)
        elif kind == "CiliumIdentity":
            parsed = parse_identity(obj)
            if parsed is not None:
                view.identities[int(parsed[0])] = parsed[1]
        elif kind == "Node":
            view.nodes.append(parse_node(obj))
        elif kind in POLICY_KINDS:
            view.policies.extend(parse_policy(obj))
        elif kind == "Service":
            view.services.append(parse_service(obj))
        elif kind == "EndpointSlice":
            view.slices.append(parse_endpointslice(obj))
    except ValueError:
        pass  # what the agents would also skip


def _pod_peer(view: ClusterView, ref: str) -> LocalEndpoint:
    record = view.endpoints.get(ref)
    pod = view.pods.get(ref)
    if record is None or pod is None:
        raise CLIError(f"{ref}: no such running pod (it has no endpoint yet)")
    labels = view.identities.get(int(record.identity), record.labels)
    return LocalEndpoint(
        record.endpoint_id, int(record.identity), labels, record.ipv4, named_ports_of(pod)
    )


def _node_of(view: ClusterView, peer: Peer | None) -> str:
    if isinstance(peer, LocalEndpoint):
        for record in view.endpoints.values():
            if record.ipv4 == peer.ip:
                return record.node_ip
    return ""


def _address_peer(view: ClusterView, ip: str, other: Peer | None) -> Peer:
    for ref, record in view.endpoints.items():
        if record.ipv4 == ip:
            return _pod_peer(view, ref)
    for node in view.nodes:
        if ip == node.internal_ip:
            own = node.internal_ip == _node_of(view, other)
            node_identity = HOST if own else REMOTE_NODE
            return RemotePeer(int(node_identity), reserved("host" if own else "remote-node"), ip)
    address = ipaddress.ip_address(ip)
    matching = sorted(
        (ipaddress.ip_network(p, strict=False) for p in cidr_prefixes(view.policies)),
        key=lambda n: n.prefixlen,
        reverse=True,
    )
    for number, net in enumerate(matching, start=1):
        if address in net and net.prefixlen > 0:
            identity = LOCAL_IDENTITY_FLAG | number
            labels = cidr_labels(str(net))
            view.identities[identity] = labels
            return RemotePeer(identity, labels, ip)
    return RemotePeer(int(WORLD), reserved("world"), ip)


def parse_port(text: str) -> tuple[int, str]:
    number, _, proto = text.partition("/")
    proto = (proto or "TCP").upper()
    if proto not in ("TCP", "UDP", "SCTP"):
        raise CLIError(f"--dport: protocol {proto!r} must be TCP, UDP or SCTP")
    if not number.isdigit() or not 0 < int(number) < 65536:
        raise CLIError(f"--dport: {number!r} is not a port in 1..65535")
    return int(number), proto


def run_trace(
    view: ClusterView, src: str, dst: str, dport: str, mode: EnforcementMode, audit: bool
) -> TraceResult:
    port, proto = parse_port(dport)

    def peer(text: str, other: Peer | None) -> Peer:
        if "/" in text:
            return _pod_peer(view, text)
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise CLIError(f"{text!r} is neither NAMESPACE/POD nor an IP address") from None
        return _address_peer(view, text, other)

    src_peer = peer(src, None) if "/" in src else None
    dst_peer = peer(dst, src_peer)
    if src_peer is None:
        src_peer = peer(src, dst_peer)
    ctx = PolicyContext(
        identities=view.identities,
        named_ports=named_ports_by_identity(view.endpoints, view.pods),
        mode=mode,
        audit=audit,
    )
    return trace(src_peer, dst_peer, proto, port, view.policies, ctx)


def agent_settings(status: dict[str, Any] | None) -> tuple[EnforcementMode, bool]:
    if not status:
        return "default", False
    mode = status.get("mode", "default")
    return (
        mode if mode in ("default", "always", "never") else "default",
        bool(status.get("audit", False)),
    )

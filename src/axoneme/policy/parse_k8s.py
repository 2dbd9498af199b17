"""``networking.k8s.io/v1`` NetworkPolicy → ``Policy``, as Cilium translates it.

Translation (cilium-semantics.md §2.6, Cilium's ``pkg/k8s/network_policy.go``):

- every selector key gets the ``k8s:`` source; ``spec.podSelector`` and a peer
  ``podSelector`` alone also get ``k8s:io.kubernetes.pod.namespace=<ns>``;
- a peer ``namespaceSelector`` becomes requirements on
  ``k8s:io.cilium.k8s.namespace.labels.<key>`` (ANDed with the peer's
  ``podSelector``); an empty one becomes ``k8s:io.kubernetes.pod.namespace
  Exists`` (every namespace, but no reserved identity);
- ``ipBlock`` → ``CIDRPeer(match_pods=True)`` (matched by address, pods included);
- a rule without ``from``/``to`` → ``Peers(any_peer=True)``; without ``ports``
  → every protocol and port; a port without ``port`` → every port of its protocol;
- ``default_deny_<dir>`` = the direction is in ``policyTypes`` (defaulted to
  Ingress, plus Egress when egress rules exist), even with no rules; rules of a
  direction missing from an explicit ``policyTypes`` are ignored with a warning.
"""

from __future__ import annotations

from typing import Any, TypedDict

from axoneme.k8s.errors import ValidationError
from axoneme.k8s.names import port_name, port_number
from axoneme.labels.model import NAMESPACE_LABEL_PREFIX, SOURCE_K8S
from axoneme.policy.parse_common import (
    NAMESPACE_EXISTS,
    NAMESPACE_K8S_KEY,
    Raw,
    at,
    canonical,
    cidr_peer,
    expect_kind,
    lst,
    meta,
    namespace_is,
    obj,
    selector,
    strict,
)
from axoneme.policy.types import (
    CIDRPeer,
    Direction,
    L4Protocol,
    Peers,
    Policy,
    PolicyKind,
    PortProtocol,
    Requirement,
    Rule,
    Selector,
)

API_VERSION = "networking.k8s.io/v1"
KIND: PolicyKind = "NetworkPolicy"
PROTOCOLS: tuple[L4Protocol, ...] = ("TCP", "UDP", "SCTP")
POLICY_TYPES = ("Ingress", "Egress")
_K8S = f"{SOURCE_K8S}:"


# The raw schema, for the reader and for the strict field check.
class LabelSelectorRaw(TypedDict, total=False):
    matchLabels: dict[str, str]
    matchExpressions: list[dict[str, Any]]


# "except" and "from" are Python keywords, hence the functional form.
IPBlockRaw = TypedDict("IPBlockRaw", {"cidr": str, "except": list[str]}, total=False)


class PeerRaw(TypedDict, total=False):
    podSelector: LabelSelectorRaw
    namespaceSelector: LabelSelectorRaw
    ipBlock: IPBlockRaw


class PortRaw(TypedDict, total=False):
    protocol: str
    port: int | str
    endPort: int


IngressRuleRaw = TypedDict(
    "IngressRuleRaw", {"from": list[PeerRaw], "ports": list[PortRaw]}, total=False
)


class EgressRuleRaw(TypedDict, total=False):
    to: list[PeerRaw]
    ports: list[PortRaw]


class NetworkPolicySpecRaw(TypedDict, total=False):
    podSelector: LabelSelectorRaw
    policyTypes: list[str]
    ingress: list[IngressRuleRaw]
    egress: list[EgressRuleRaw]


_TOP_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status")


def parse_network_policy(raw: Raw) -> tuple[Policy, ...]:
    expect_kind(raw, KIND, API_VERSION)
    strict("", raw, _TOP_FIELDS)
    m = meta(raw, namespaced=True)
    if raw.get("spec") is None:
        raise ValidationError("spec", "required")
    spec = obj("spec", raw["spec"])
    strict("spec", spec, NetworkPolicySpecRaw.__optional_keys__)
    if "podSelector" not in spec:
        raise ValidationError("spec.podSelector", "required (use {} to select every pod)")
    pod_reqs = selector("spec.podSelector", spec["podSelector"], sources=False, prefix=_K8S)
    subject = _in_namespace(pod_reqs, m.namespace)

    types = _policy_types(spec)
    warnings = list(m.warnings)
    rules: list[Rule] = []
    directions: tuple[tuple[Direction, str, str], ...] = (
        ("ingress", "Ingress", "from"),
        ("egress", "Egress", "to"),
    )
    for direction, policy_type, peers_key in directions:
        entries = lst(f"spec.{direction}", spec.get(direction))
        if policy_type not in types:
            if entries:
                warnings.append(
                    f"spec.{direction}: ignored, policyTypes does not include {policy_type}"
                )
            continue
        for i, entry in enumerate(entries):
            rules.append(
                _rule(f"spec.{direction}[{i}]", entry, direction, peers_key, i, m.namespace)
            )
    return (
        Policy(
            kind=KIND,
            namespace=m.namespace,
            name=m.name,
            subject=subject,
            rules=tuple(rules),
            default_deny_ingress="Ingress" in types,
            default_deny_egress="Egress" in types,
            uid=m.uid,
            warnings=tuple(warnings),
        ),
    )


def _policy_types(spec: Raw) -> tuple[str, ...]:
    values = lst("spec.policyTypes", spec.get("policyTypes"))
    if not values:
        return ("Ingress", "Egress") if lst("spec.egress", spec.get("egress")) else ("Ingress",)
    seen: list[str] = []
    for i, value in enumerate(values):
        if value not in POLICY_TYPES:
            raise ValidationError(
                f"spec.policyTypes[{i}]", f"{value!r} is not one of Ingress, Egress"
            )
        if value in seen:
            raise ValidationError(f"spec.policyTypes[{i}]", f"duplicate {value!r}")
        seen.append(value)
    return tuple(seen)


def _rule(
    path: str, value: Any, direction: Direction, peers_key: str, index: int, namespace: str
) -> Rule:
    entry = obj(path, value)
    strict(path, entry, (peers_key, "ports"))
    raw_peers = lst(at(path, peers_key), entry.get(peers_key))
    selectors: list[Selector] = []
    cidrs: list[CIDRPeer] = []
    for i, item in enumerate(raw_peers):
        where = f"{path}.{peers_key}[{i}]"
        peer = _peer(where, item, namespace)
        if isinstance(peer, CIDRPeer):
            cidrs.append(peer)
        else:
            selectors.append(peer)
    peers = (
        Peers(any_peer=True)
        if not raw_peers
        else Peers(selectors=tuple(selectors), cidrs=tuple(cidrs))
    )
    ports = tuple(
        _port(f"{path}.ports[{i}]", item)
        for i, item in enumerate(lst(at(path, "ports"), entry.get("ports")))
    )
    return Rule(direction, "allow", peers, ports, index=index)


def _peer(path: str, value: Any, namespace: str) -> Selector | CIDRPeer:
    peer = obj(path, value)
    strict(path, peer, PeerRaw.__optional_keys__)
    has_pods = peer.get("podSelector") is not None
    has_ns = peer.get("namespaceSelector") is not None
    if peer.get("ipBlock") is not None:
        if has_pods or has_ns:
            other = "podSelector" if has_pods else "namespaceSelector"
            raise ValidationError(
                at(path, "ipBlock"), f"may not be combined with {other} in the same peer"
            )
        where = at(path, "ipBlock")
        block = obj(where, peer["ipBlock"])
        strict(where, block, IPBlockRaw.__optional_keys__)
        return cidr_peer(
            where, block.get("cidr"), block.get("except"), strict_subset=True, match_pods=True
        )
    if not (has_pods or has_ns):
        raise ValidationError(
            path, "must specify at least one of podSelector, namespaceSelector, ipBlock"
        )
    reqs = selector(at(path, "podSelector"), peer.get("podSelector"), sources=False, prefix=_K8S)
    if not has_ns:
        return _in_namespace(reqs, namespace)
    ns_path = at(path, "namespaceSelector")
    ns_reqs = selector(
        ns_path, peer["namespaceSelector"], sources=False, prefix=_K8S + NAMESPACE_LABEL_PREFIX
    )
    return canonical([*reqs, *(ns_reqs or [NAMESPACE_EXISTS])])


def _in_namespace(reqs: list[Requirement], namespace: str) -> Selector:
    """The selector limited to ``namespace``; like Cilium's ``AddMatch``, the
    namespace requirement replaces one the user wrote on the same key."""
    return canonical([*(r for r in reqs if r.key != NAMESPACE_K8S_KEY), namespace_is(namespace)])


def _port(path: str, value: Any) -> PortProtocol:
    raw = obj(path, value)
    strict(path, raw, PortRaw.__optional_keys__)
    protocol = raw.get("protocol") or "TCP"
    if protocol not in PROTOCOLS:
        raise ValidationError(at(path, "protocol"), f"{protocol!r} is not one of TCP, UDP, SCTP")
    port = raw.get("port")
    end = raw.get("endPort")
    if isinstance(port, str):
        if end is not None:
            raise ValidationError(at(path, "endPort"), "may not be used with a named port")
        return PortProtocol(protocol=protocol, name=port_name(at(path, "port"), port))
    if port is None:
        if end is not None:
            raise ValidationError(at(path, "endPort"), "requires a numeric port")
        return PortProtocol(protocol=protocol)
    number = port_number(at(path, "port"), port)
    end_port = 0
    if end is not None:
        end_port = port_number(at(path, "endPort"), end)
        if end_port < number:
            raise ValidationError(
                at(path, "endPort"), f"{end_port} must be greater than or equal to port {number}"
            )
        if end_port == number:
            end_port = 0  # a one-port range is just the port
    return PortProtocol(number, end_port, protocol)
